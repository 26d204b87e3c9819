"""The config check (recx.validate): every numeric key of every model config refuses a wrong type and an out-of-range
value with a ConfigError naming the key, through the compose API, without reading data or creating a run folder."""

from __future__ import annotations

import math
import time

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf

from recx import cli, validate
from recx.errors import ConfigError
from recx.families import default_metrics

#: a dataset of each family, so that every model config composes as it would run (no data is read by the check)
FAMILY_DATASET = {"topn": "synthetic_mm", "ltr": "synthetic_ltr", "pathrec": "synthetic_kt", "ecg": "synthetic_ecg",
                  "icl": "sst2", "interactive": "synthetic_mm"}
MODELS = cli.group_choices("model")


def composed(model: str) -> tuple[DictConfig, DictConfig, dict]:
    """``(cfg, reference, choices)`` for ``model=<model>`` on a dataset of its family, as the CLI composes them."""
    family = OmegaConf.load(cli.CONF_DIR / "model" / f"{model}.yaml").get("family")
    overrides = [f"model={model}", f"dataset={FAMILY_DATASET[family]}", f"metric={default_metrics()[family]}"]
    with initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base="1.3"):
        reference = compose("train", overrides=overrides, return_hydra_config=True)
    choices = OmegaConf.to_container(reference.hydra.runtime.choices)
    cfg = OmegaConf.create(OmegaConf.to_container(reference))
    del cfg["hydra"]
    return cfg, reference, choices


def leaves(node, prefix: str = "model"):
    """``(path, _target_ of the holding node, value)`` of every value under ``node`` that is not a node itself
    (nested nodes walked; ``_target_`` itself and interpolations that only resolve at run time left out)."""
    target = node.get("_target_") if "_target_" in node else None
    for key in node:
        path = f"{prefix}.{key}"
        try:
            value = node[key]
        except Exception:  # noqa: BLE001 - interpolations that only resolve at run time
            continue
        if isinstance(value, DictConfig):
            yield from leaves(value, path)
        elif key != "_target_":
            yield path, target, value


def numeric_keys(node, prefix: str = "model"):
    """``(path, value)`` of every number, or list of numbers, under ``node`` (nested nodes included)."""
    for path, _, value in leaves(node, prefix):
        if isinstance(value, ListConfig):
            items = list(value)
            if items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                yield path, items
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path, value


def out_of_range(rule: validate.Range, default):
    """A value just outside ``rule`` (of the default's kind)."""
    whole = isinstance(default, int) or (isinstance(default, list) and all(isinstance(v, int) for v in default))
    if rule.low is not None:
        bad = rule.low - 1 if not rule.low_open or whole else rule.low
    elif rule.high is not None:
        bad = rule.high + 1
    else:
        bad = math.inf
    bad = int(bad) if whole and math.isfinite(bad) else float(bad)
    return [bad] if isinstance(default, list) else bad


_CACHE: dict[str, tuple] = {}


def cached(model: str):
    if model not in _CACHE:
        _CACHE[model] = composed(model)
    return _CACHE[model]


def cases():
    """Every (model, key, bad value, what) the table-driven test runs."""
    out = []
    for model in MODELS:
        cfg, _, _ = cached(model)
        for path, default in numeric_keys(cfg.model):
            rule = validate.range_of(path)
            out.append((model, path, "abc" if not isinstance(default, list) else ["abc"], "type"))
            if isinstance(default, int) and not isinstance(default, bool):
                out.append((model, path, 1.5, "fraction"))
            if rule is not None:
                out.append((model, path, out_of_range(rule, default), "range"))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_passes_its_own_check(model):
    """The defaults agree with the constructors' type hints and the range table (config and code cannot disagree)."""
    cfg, reference, choices = cached(model)
    validate.check_config(cfg, reference, choices=choices)


@pytest.mark.parametrize("model", MODELS)
def test_every_numeric_model_key_has_a_range(model):
    cfg, _, _ = cached(model)
    missing = [path for path, _ in numeric_keys(cfg.model) if validate.range_of(path) is None]
    assert not missing, f"add a rule to recx.validate.NAME_RANGES/PATH_RANGES for {missing}"


def test_table_of_bad_values_every_model_key():
    """For each numeric key of each model config: a wrong type, a fractional int, an out-of-range value -> a
    ConfigError naming the key, its value and the model's YAML file."""
    started = time.perf_counter()
    table = cases()
    assert len(table) > 300
    for model, path, bad, what in table:
        cfg, reference, choices = cached(model)
        original = OmegaConf.select(cfg, path)
        if isinstance(original, ListConfig):
            original = OmegaConf.to_container(original)  # the node itself changes with the update
        OmegaConf.update(cfg, path, bad, force_add=False)  # as the override `path=bad` would set it
        try:
            with pytest.raises(ConfigError) as info:
                validate.check_config(cfg, reference, choices=choices)
        finally:
            OmegaConf.update(cfg, path, original, force_add=False)
        err = info.value
        assert err.field == path, (model, path, bad, what, err.render())
        assert path in err.render() and "conf/model/" in err.render(), err.render()
    print(f"\n{len(table)} (key, bad value) cases over {len(MODELS)} model configs in "
          f"{time.perf_counter() - started:.1f} s")


def text_keys(node, prefix: str = "model"):
    """``(path, _target_ of the holding node, value)`` of every text value under ``node``."""
    return ((path, target, value) for path, target, value in leaves(node, prefix) if isinstance(value, str))


def test_every_text_choice_of_every_model_is_checked_before_any_work():
    """A text key with a fixed set of values refuses a value outside it in the config check (not later, in a
    constructor, after the data were read), naming the key and the model's YAML file."""
    checked = 0
    for model in MODELS:
        cfg, reference, choices = cached(model)
        for path, target, default in text_keys(cfg.model):
            allowed = validate.choices_of(path, target)
            if allowed is None:
                continue
            assert default in allowed, (model, path, default, allowed)
            OmegaConf.update(cfg, path, "nosuch", force_add=False)
            try:
                with pytest.raises(ConfigError) as info:
                    validate.check_config(cfg, reference, choices=choices)
            finally:
                OmegaConf.update(cfg, path, default, force_add=False)
            assert info.value.field == path and ", ".join(allowed) in info.value.render(), info.value.render()
            checked += 1
    assert checked > 40


#: dotted keys a constructor refuses "unknown" values of that the check cannot list: lead names or numbers, any
#: supported value of a user's own choice (`reproduce.only` names steps of the chosen suite)
OPEN_VALUES = {"dataset.source.used_channels", "reproduce.only"}


def test_every_unknown_value_a_constructor_refuses_has_a_choice_entry():
    """Source scan: each ``raise ConfigError("unknown ...", field="<section>.<key>")`` in recx/ has a CHOICES entry
    for that key (path, ``*<key>`` or ``<_target_>:<key>``) or a range rule, so the CLI refuses it before reading
    data. (Fields without a dot are group choices: Hydra refuses those.)"""
    import re

    fields = set()
    for path in (cli.CONF_DIR.parent).rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r'ConfigError\(f?"unknown[^"]*"[^)]*?field="(\w+\.[\w.]+)"', text, re.S):
            fields.add(match.group(1))
    fields -= OPEN_VALUES
    assert len(fields) > 25, fields
    entries = set(validate.CHOICES)
    missing = [f for f in sorted(fields) if f not in entries and f"*{f.rsplit('.', 1)[-1]}" not in entries
               and not any(e.endswith(f":{f.rsplit('.', 1)[-1]}") for e in entries)
               and validate.range_of(f) is None]  # numbers ("unknown rate", "unknown path type p4"): range rules
    assert not missing, f"add these keys to recx.validate.CHOICES: {missing}"


def test_one_key_name_with_two_value_sets_is_checked_per_class():
    lattice, slmrec = "recx.topn.models.lattice.LATTICE", "recx.topn.models.slmrec.SLMRec"
    assert validate.choices_of("model.projection_init", lattice) == ("xavier_normal", "torch")
    assert validate.choices_of("model.projection_init", slmrec) == ("recx", "mmrec")


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["model=lattice", "model.projection_init=mmrec"], "model.projection_init", "xavier_normal, torch"),
        (["model=slmrec", "model.projection_init=torch"], "model.projection_init", "recx, mmrec"),
        (["model=mmgcn", "model.layer_init=kaiming"], "model.layer_init", "xavier_normal, mmrec"),
        (["model=vbpr", "protocol=mmrec", "model.reg_form=l1"], "model.reg_form", "l2, emb"),
        (["model=icl", "dataset=sst2", "model.pool=all"], "model.pool", "full, feeder"),
        (["model=magus", "model.strategies=[magus,best]"], "model.strategies", "'best'"),
        (["model=magus", "model.user.error_rate=0.5"], "model.user.error_rate", "in [0, 0.5)"),
        (["model=dkt", "dataset=assist2009", "dataset.source.layout=csv"], "dataset.source.layout",
         "three_line, skill_builder"),
        (["model=listnet", "dataset=synthetic_ltr", "dataset.source.normalization=l2"], "dataset.source.normalization",
         "zscore, minmax, none"),
        (["model.lr=abc"], "model.lr", "text, not a number"),
        (["model.lr=-5"], "model.lr", "> 0"),
        (["dataset.datamodule.batch_size=0"], "dataset.datamodule.batch_size", ">= 1"),
        (["metric.monitor=nosuch@20"], "metric.monitor", "recall@20"),
        (["trainer.max_epochs=-3"], "trainer.max_epochs", ">= 1"),
        (["model.embedding_dim=0"], "model.embedding_dim", ">= 1"),
        (["model=lightgcn", "model.n_layers=-1"], "model.n_layers", ">= 0"),
        (["metric.monitor=recall@50"], "metric.ks", "metric.ks=[10, 20, 50]"),
        (["metric.ks=[5,10]"], "metric.ks", "K=20"),
        (["model=freedom", "dataset=ml100k", "dataset.modalities=[audio]"], "dataset.modalities", "genre, text"),
        (["dataset.split.ratios=[0.8,0.1,0.2]"], "dataset.split.ratios", "sum to"),
        (["model=bpr", "model.embedding_dim=1.5"], "model.embedding_dim", "fractional"),
        (["model=starank", "dataset=synthetic_ltr", "metric.monitor=ndcg@7"], "metric.monitor", "ndcg@10"),
        (["model=dkt", "dataset=synthetic_kt", "model.dropout=1.5"], "model.dropout", "in [0, 1]"),
        (["model=icl", "dataset=sst2", "model.shots=-1"], "model.shots", ">= 0"),
        (["model=heartlang", "dataset=synthetic_ecg", "model.mask_ratio=abc"], "model.mask_ratio", "text"),
        (["callbacks.early_stopping.patience=-2"], "callbacks.early_stopping.patience", ">= 0"),
        (["model=starank", "dataset=synthetic_ltr", "click_model=pbm", "click_model.eta=-1"], "click_model.eta",
         ">= 0"),
        (["model=icl", "dataset=sst2", "lm.batch_size=0"], "lm.batch_size", ">= 1"),
        (["model=freedom", "model.feature_norm=l3"], "model.feature_norm", "none, standard, l2"),
        (["model=drepmrec", "model.fusion=max"], "model.fusion", "sum, concat"),
        (["model=icl", "dataset=sst2", "model.selector=best"], "model.selector", "random, similarity, diversity"),
    ],
)
def test_cli_refuses_bad_values_before_any_work(overrides, key, words, tmp_path, monkeypatch, capsys):
    """The issue's rows (and more) through the real entry point: exit 2, the key and the allowed range named, no run
    folder and no data."""
    out, data = tmp_path / "outputs", tmp_path / "data"
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(out))
    monkeypatch.setenv("RECX_DATA_DIR", str(data))
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *overrides])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert key in err and words in err, err
    assert "Traceback" not in err
    assert not out.exists() and not data.exists()


def test_sweep_checks_every_job_before_the_first_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(tmp_path / "outputs"))
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", "model=bpr", "model.lr=1e-3,abc"])
    assert info.value.code == 2
    assert "model.lr='abc'" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_sweep_jobs_are_the_cartesian_product():
    jobs = cli.sweep_jobs(["model=bpr,lightgcn", "model.lr=1e-3,1e-2", "seed=1"])
    assert len(jobs) == 4 and ["model=lightgcn", "model.lr=0.01", "seed=1"] in jobs


def test_reproduction_suite_steps_are_checked_first(monkeypatch):
    from recx import reproduce

    suite = reproduce.load_suite({"suite": "t", "seeds": [1], "papers": {"p": {"steps": {
        "a": {"command": "train", "overrides": ["model=bpr"]},
        "b": {"command": "train", "overrides": ["model=bpr", "model.embedding_dim=0"]}},
        "checks": [{"step": "a", "metric": "test.recall@20", "basis": "test", "kind": "report"}]}}})
    with pytest.raises(ConfigError) as info:
        cli.check_suite_steps(suite, [])
    assert "reproduction step p/b" in info.value.render() and info.value.field == "model.embedding_dim"


def test_shipped_suite_passes_the_check():
    """Every step of `make reproduce`'s suite is a valid config (the check must not refuse it)."""
    from recx import reproduce

    for name in ("reproduce_small",):
        node = OmegaConf.load(cli.CONF_DIR / "experiment" / f"{name}.yaml").reproduce
        node.output_dir = "unused"
        cli.check_suite_steps(reproduce.load_suite(node), [])


FAMILY_MODEL = {"topn": "bpr", "ltr": "listnet", "pathrec": "dkt", "ecg": "vqhbr", "icl": "icl"}


@pytest.mark.parametrize("dataset", cli.group_choices("dataset"))
def test_every_dataset_config_passes_the_check(dataset):
    family = OmegaConf.load(cli.CONF_DIR / "dataset" / f"{dataset}.yaml").get("family")
    overrides = [f"model={FAMILY_MODEL[family]}", f"dataset={dataset}"]
    cfg, extra = cli.prepare_job("train", "train", overrides)
    assert cfg.dataset.name == dataset


def test_eval_lis_and_feature_quality_entry_points_pass_the_check():
    for args in (["lis", "dataset=ml100k", "preference=test", "representation=feature:text"],
                 ["metric=feature_quality", "features=features"]):
        config_name, command, args = cli.entry_point("eval", args)
        cli.prepare_job(config_name, command, args)


def test_data_prepare_checks_its_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECX_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        cli.main(["data", "prepare", "synthetic_mm", "dataset.split.ratios=[0.8,0.1,0.2]"])
    assert info.value.code == 2 and "dataset.split.ratios" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
