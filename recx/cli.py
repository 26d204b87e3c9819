"""``recx train|sweep|eval|data``: argv -> compose -> dispatch.

Only hydra/omegaconf/rich are imported here at module level; torch and Lightning are imported inside the task
functions, after the config has been composed and checked, so ``recx --help`` answers at once and a wrong
model×dataset pairing fails before any heavy import.

* ``recx train [overrides]``  one run (Hydra app, config ``recx/conf/train.yaml``)
* ``recx sweep [overrides]``  the same app in multirun mode (``-m``), plus a summary table of all runs
* ``recx eval ckpt=PATH``     re-score a checkpoint (``recx/conf/eval.yaml``)

Every command takes ``--config-dir DIR`` (repeatable) beside ``RECX_CONFIG_PATH``: user config folders whose groups
merge with recx's (``recx.config_paths``).
* ``recx data list|download|prepare NAME``  fetch and cache datasets (argparse; no Lightning)
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from recx import config_paths
from recx.config_paths import CONF_DIR
from recx.console import console, fail, is_debug, print_error, tee_output
from recx.errors import ConfigError, RecxError

CHOICE_GROUPS = ("model", "dataset", "metric", "hardware", "logger", "callbacks", "experiment", "plugin",
                 "click_model", "simulator", "lm")
COMMANDS = {
    "train": "train one model on one dataset (Hydra overrides: model=bpr dataset=ml100k trainer.max_epochs=50)",
    "sweep": "Hydra multirun over comma-separated values ('model.lr=1e-3,1e-2'), then a summary table;\n"
             "         experiment=reproduce_small|reproduce_full runs a reproduction suite (report.md, exit 1 if off)",
    "eval": "re-score a checkpoint with the training evaluator: recx eval ckpt=outputs/.../checkpoints/best.ckpt;\n"
            "         recx eval lis dataset=ml100k preference=test representation=feature:text  (AIS / LIS)",
    "data": "datasets: recx data list | download NAME [--from DIR] | prepare NAME [--modalities a,b]",
    "report": "plots + markdown summary of a run or sweep folder: recx report outputs/<run>/<timestamp>",
}


# ------------------------------------------------------------------------------------------------- config helpers
def group_choices(group: str) -> list[str]:
    """A group's choices, recx's and the user's config folders together."""
    return config_paths.group_choices(group)


def serves(dataset: DictConfig, family: str | None) -> bool:
    """A dataset serves its own family, and another one when it carries a view for it (ml100k's ``ltr`` node)."""
    return dataset.get("family") == family or (family is not None and dataset.get(family) is not None)


def datasets_for_family(family: str) -> list[str]:
    return [name for name in group_choices("dataset")
            if serves(OmegaConf.load(config_paths.config_file("dataset", name)), family)]


def check_choices(overrides: list[str], *, sweep: bool = False) -> None:
    """Unknown ``group=choice`` overrides fail here with the list of valid choices (before Hydra, exit 2)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in CHOICE_GROUPS or value in ("", "null"):
            continue
        values = value.split(",") if sweep else [value]
        for v in values:
            if any(ch in v for ch in "()[]*?"):
                continue  # sweep functions and globs: Hydra resolves them
            if v not in group_choices(key):
                raise ConfigError(f"unknown {key} '{v}'", field=key,
                                  fix=f"choose one of: {', '.join(group_choices(key))}")


def family_metric_override(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """``["metric=<family default>"]`` when the model's family is not what the default metric group evaluates and
    the user chose no metric (``recx train model=starank dataset=mslr10k`` gets the LTR metrics)."""
    if any(o.lstrip("+~").startswith("metric=") for o in overrides):
        return []
    from recx import families

    family = cfg.model.get("family")
    wanted = families.get(family).metric if family in families.names() else None
    current = cfg.metric.get("family") if cfg.get("metric") is not None else None
    return [f"metric={wanted}"] if wanted and current != wanted else []


def check_compatibility(cfg: DictConfig) -> None:
    """A model serves one task family (registered in :mod:`recx.families`) and a dataset serves one: refuse an
    unknown family, and a wrong pair with the datasets that fit."""
    from recx import families

    model_family = cfg.model.get("family")
    families.get(model_family)  # a ConfigError naming the registered families
    dataset_family = cfg.dataset.get("family")
    wanted = cfg.model.get("dataset_family", model_family)  # MAGUS (interactive) runs over top-N datasets
    if not serves(cfg.dataset, wanted):
        fits = datasets_for_family(wanted)
        raise ConfigError(
            f"model '{cfg.model.name}' ({model_family}) cannot train on dataset '{cfg.dataset.name}' ({dataset_family})",
            field="dataset", fix=f"datasets for {model_family} models: {', '.join(fits) or 'none yet'}",
        )
    metric_family = cfg.get("metric", {}).get("family") if cfg.get("metric") is not None else None
    if metric_family is not None and metric_family != model_family:
        raise ConfigError(f"metric group '{metric_family}' does not evaluate {model_family} models", field="metric",
                          fix=f"choose a metric config whose family is {model_family}")


def compose(config_name: str, overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose a config without running anything (Hydra's compose API); errors become ConfigError.

    A command composes the same overrides more than once (the first look, the checks, the reference defaults of the
    same group choices): each composition is made once per command, with Hydra's own node, and handed out as a copy
    (without that node unless asked for, exactly as Hydra's compose API removes it)."""
    import copy

    from omegaconf import open_dict

    key = (config_name, tuple(overrides), tuple(map(str, config_paths.user_config_dirs())))
    if key not in _COMPOSED:
        _COMPOSED[key] = _compose(config_name, overrides, return_hydra_config=True)
    cfg = copy.deepcopy(_COMPOSED[key])
    if not return_hydra_config and "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


_COMPOSED: dict[tuple, DictConfig] = {}  # emptied by main(): one command's compositions, never a stale file


def _compose(config_name: str, overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name, overrides=[*overrides, *config_paths.hydra_searchpath_override()],
                                 return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ConfigError(f"invalid configuration: {message}",
                          fix=f"see `recx {config_name} --help` for the groups and keys") from None


def reference_overrides(overrides: list[str]) -> list[str]:
    """The group choices among ``overrides`` (``model=bpr``, ``model/backbone=vbpr``, ``experiment=...``), without
    the value overrides: composed, they give the defaults a value is checked against."""
    keep = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in CHOICE_GROUPS or "/" in key or key == "dataset_model" or key.startswith("hydra"):
            keep.append(item)
    return keep


def check_values(config_name: str, overrides: list[str], cfg: DictConfig) -> None:
    """Every value of the composed ``cfg``: types, ranges and cross-key rules (recx.validate), before any work."""
    from recx.validate import check_config

    reference, choices = _reference(config_name, tuple(reference_overrides(overrides)))
    check_config(cfg, reference, choices=choices, config_name=config_name)


@functools.lru_cache(maxsize=64)
def _reference(config_name: str, overrides: tuple[str, ...]) -> tuple[DictConfig, dict]:
    """The defaults for a set of group choices, and the choices (shared by the jobs of a sweep or suite)."""
    reference = compose(config_name, list(overrides), return_hydra_config=True)
    return reference, OmegaConf.to_container(reference.hydra.runtime.choices)


def prepare_job(config_name: str, command: str, overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """Compose one job's config and check it entirely (choices, family pairing, values); return it with the extra
    overrides the job needs (the family's metric group)."""
    cfg = compose(config_name, overrides)
    extra: list[str] = []
    if cfg.get("reproduce") is not None:
        return cfg, extra
    if command in ("train", "sweep"):
        extra = family_metric_override(cfg, overrides)
        if extra:
            cfg = compose(config_name, [*overrides, *extra])
        check_compatibility(cfg)
    check_values(config_name, [*overrides, *extra], cfg)
    return cfg, extra


def sweep_jobs(overrides: list[str], limit: int = 10_000) -> list[list[str]]:
    """The overrides of every job of a sweep (the cartesian product of its comma lists, as Hydra's basic sweeper
    runs them), so that all jobs are checked before the first starts."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # noqa: BLE001 - parse errors of any kind are user errors
        raise ConfigError(f"cannot parse overrides: {exc}", fix="quote sweep values: 'model.lr=1e-3,1e-2'") from None
    axes: list[list[str]] = []
    for ov in parsed:
        if ov.is_sweep_override():
            key = ov.get_key_element()
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([ov.input_line])
    jobs = []
    for combo in itertools.product(*axes):
        jobs.append(list(combo))
        if len(jobs) >= limit:
            break
    return jobs


def first_of_sweep(overrides: list[str]) -> list[str]:
    """The overrides of the first job of a sweep (for checking the config before launching)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # noqa: BLE001 - parse errors of any kind are user errors
        raise ConfigError(f"cannot parse overrides: {exc}", fix="quote sweep values: 'model.lr=1e-3,1e-2'") from None
    first = []
    for ov in parsed:
        if ov.is_sweep_override():
            first.append(f"{ov.get_key_element()}={next(iter(ov.sweep_string_iterator()))}")
        else:
            first.append(ov.input_line)
    return first


def resume_override(cfg: DictConfig) -> str | None:
    """For ``resume=...``: the ``hydra.run.dir`` override that points the run at the folder to continue."""
    value = cfg.get("resume")
    if value in (None, False, "false", "False"):
        return None
    if value is True or str(value).lower() == "true":
        parent = Path(cfg.paths.output_root) / cfg.run_name
        runs = sorted(p for p in parent.glob("*") if (p / "checkpoints" / "last.ckpt").is_file()
                      and not (p / "metrics.json").is_file()) if parent.is_dir() else []
        if not runs:
            raise ConfigError(f"no unfinished run of '{cfg.run_name}' to resume under {parent}", field="resume",
                              fix="pass resume=<run folder>, or start a fresh run without resume")
        target = runs[-1]
    else:
        target = Path(str(value))
        if target.is_file():  # a checkpoint: its run folder is two levels up
            target = target.parent.parent
        if not (target / "checkpoints" / "last.ckpt").is_file():
            raise ConfigError("no checkpoints/last.ckpt in the run folder to resume", path=target, field="resume",
                              fix="pass the folder of an interrupted run")
    return f"hydra.run.dir={target.resolve()}"


# ------------------------------------------------------------------------------------------------------ hydra apps
def _run_task(cfg: DictConfig, task: str):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    global _RUN_DIR
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    _RUN_DIR = run_dir
    log_name = f"{hydra_cfg.job.name}.log"  # the file Hydra's job logging writes (train.log): the run's log
    with tee_output(run_dir / log_name):
        return _run_task_logged(cfg, task, run_dir, multirun)


def _run_task_logged(cfg: DictConfig, task: str, run_dir: Path, multirun: bool):
    try:
        if task == "train":
            check_compatibility(cfg)
            from recx.run import train

            results = train(cfg)
            return results["valid"].get(cfg.metric.monitor)
        if task == "lis":
            from recx.run import evaluate_lis

            evaluate_lis(cfg)
            return None
        if task == "feature_quality":
            from recx.run import evaluate_feature_quality

            evaluate_feature_quality(cfg)
            return None
        from recx.run import evaluate

        evaluate(cfg)
        return None
    except RecxError as exc:
        if multirun and not is_debug():
            print_error(exc)
            _record_failure(run_dir, exc.render())
            return None
        _discard_if_empty(run_dir)
        fail(exc)
    except Exception:  # a bug, not a user error: keep the traceback, but let a sweep continue
        _record_failure(run_dir, traceback.format_exc())
        if multirun and not is_debug():
            console(stderr=True).print(f"[red]run {escape(str(run_dir))} failed[/]; traceback in "
                                       f"{escape(str(run_dir / 'error.txt'))}")
            return None
        raise


def _discard_if_empty(run_dir: Path) -> None:
    """A single run that failed before producing anything leaves no folder behind (Hydra created it for us).

    Only folders holding nothing but Hydra's bookkeeping and the log are removed; a resumed run's folder has
    checkpoints and is never touched.
    """
    import shutil

    if not run_dir.is_dir():
        return
    if all(p.name in (".hydra", "error.txt") or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        parent = run_dir.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _record_failure(run_dir: Path, text: str) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(text + "\n")
    except OSError:
        pass


def _hydra_app(config_name: str):
    import hydra

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig):
        return _run_task(cfg, cfg.task)

    return app


def run_timestamp() -> str:
    """The run folder's name: the start time to the second (as Hydra's default ``${now:...}``)."""
    import time

    return time.strftime("%Y-%m-%d_%H-%M-%S")


def claim_run_dir(parent: Path) -> Path:
    """Create and return a fresh run folder ``<parent>/<timestamp>``, or ``<timestamp>_<n>`` when another run (a job
    array starts many in the same second) has taken the name: ``mkdir`` without ``exist_ok`` is atomic, so two
    processes never share a folder. Called after the config is checked: a refused run leaves no folder."""
    stamp = run_timestamp()
    for n in range(10_000):
        candidate = parent / (stamp if n == 0 else f"{stamp}_{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate.resolve()
        except FileExistsError:
            continue
    raise ConfigError("cannot create a fresh run folder", path=parent, fix="clean up the folder or set run_name=...")


def one_sweep_folder(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Keep every job of a sweep in one folder (and one summary table).

    Hydra resolves ``hydra.sweep.dir`` per job, and the default ``run_name`` holds the model name, so a sweep over
    models (``recx sweep model=magus 'model/base=bpr,lightgcn'``) would scatter its jobs over several folders. When the
    user sets neither ``run_name`` nor ``hydra.sweep.dir``, the folder is pinned here: named after the first job's
    ``run_name``, or ``sweep-<dataset>`` when a model choice is swept.
    """
    import time

    if any(o.lstrip("+~").split("=", 1)[0] in ("run_name", "hydra.sweep.dir") for o in overrides):
        return []
    swept_model = any(o.lstrip("+~").split("=", 1)[0].startswith("model") and "," in o.split("=", 1)[-1]
                      and not o.split("=", 1)[0].startswith("model.") for o in overrides)
    name = f"sweep-{cfg.dataset.name}" if swept_model else cfg.run_name
    return [f"hydra.sweep.dir={cfg.paths.output_root}/sweeps/{name}/{time.strftime('%Y-%m-%d_%H-%M-%S')}"]


def entry_point(command: str, args: list[str]) -> tuple[str, str, list[str]]:
    """Which primary config a command line composes, and as which command it runs, with short keys expanded.

    ``recx eval lis ...`` composes ``lis.yaml``; ``recx eval model=heartlang_probe|icl ...`` are runs like ``train``
    (``label_fraction=``, ``selector=``, ``shots=``, ``pool=`` become ``model.*``); ``recx eval metric=feature_quality``
    composes ``feature_quality.yaml``. Returns ``(config_name, command, args)``.
    """
    config_name = "eval" if command == "eval" else "train"
    if command == "eval" and args and args[0] == "lis":  # recx eval lis ...: the standalone LIS evaluator
        config_name, args = "lis", args[1:]
    if command == "eval" and "model=heartlang_probe" in args:  # the linear probe: a run like `train`
        config_name, command = "train", "train"
        args = [f"model.label_fraction=[{a.split('=', 1)[1]}]" if a.startswith("label_fraction=") else a
                for a in args]
    if command == "eval" and "model=icl" in args:  # in-context accuracy: a run like `train`, short keys allowed
        config_name, command = "train", "train"
        short = ("selector=", "shots=", "pool=")
        args = [f"model.{a}" if a.startswith(short) else a for a in args]
    if command == "eval" and "metric=feature_quality" in args:  # AlignRec's intermediate metrics, no checkpoint
        config_name, args = "feature_quality", [a for a in args if a != "metric=feature_quality"]
    return config_name, command, args


def run_hydra(command: str, args: list[str]) -> int:
    passthrough = any(a.startswith("-") for a in args)  # --help, --cfg job, --info, -c ...
    config_name, command, args = entry_point(command, args)
    extra: list[str] = []
    if not passthrough:
        overrides = list(args)
        check_choices(overrides, sweep=command == "sweep")
        first = first_of_sweep(overrides) if command == "sweep" else overrides
        cfg = compose(config_name, first)
        if cfg.get("reproduce") is not None and config_name == "train":
            return run_reproduction(cfg, overrides, command)
        if config_name == "eval" and not cfg.get("ckpt"):
            raise ConfigError("recx eval needs a checkpoint", field="ckpt",
                              fix="recx eval ckpt=<run>/checkpoints/best.ckpt")
        if command == "sweep":  # every job is checked before the first starts
            jobs = sweep_jobs(overrides)
            for job in jobs[1:]:
                prepare_job(config_name, command, job)
        cfg, metric = prepare_job(config_name, command, first)
        extra += metric
        if command == "sweep":
            extra += one_sweep_folder(cfg, overrides)
        if command == "train":
            resume = resume_override(cfg)
            if resume:
                extra.append(resume)
        if command in ("train", "eval") and not any(e.startswith("hydra.run.dir=") for e in extra) and not any(
                o.lstrip("+~").startswith("hydra.run.dir=") for o in overrides):
            extra.append(f"hydra.run.dir={claim_run_dir(Path(cfg.paths.output_root) / str(cfg.run_name))}")
    if command == "train":  # for Lightning's DDP launcher, which re-runs argv[0] (or -m recx.cli) with argv[1:]
        os.environ[DDP_COMMAND_ENV] = config_name
    extra += config_paths.hydra_searchpath_override()
    sys.argv = [entry_script(), *args, *extra, *(["-m"] if command == "sweep" else [])]
    _hydra_app(config_name)()
    return 0


def run_reproduction(cfg: DictConfig, overrides: list[str], command: str) -> int:
    """``recx sweep experiment=reproduce_<suite>``: run the suite's papers, write the report; exit 1 when a number
    leaves its recorded range (or a step fails), 0 when all pass."""
    if command != "sweep":
        raise ConfigError(f"experiment '{cfg.get('run_name')}' is a reproduction suite (several runs)", field="experiment",
                          fix="run it with `recx sweep experiment=...` or `make reproduce`")
    from recx import reproduce

    node = cfg.reproduce
    suite = reproduce.load_suite(node)
    resume = node.get("resume")
    if resume not in (None, False) and str(resume).lower() not in ("true", "false"):
        folder, resume = Path(str(resume)), True  # resume=<suite folder>
        if not folder.is_dir():
            raise ConfigError("no such suite folder to resume", path=folder, field="reproduce.resume",
                              fix="pass the folder printed by the interrupted suite, or reproduce.resume=true")
    else:
        resume = str(resume).lower() == "true"
        folder = reproduce.suite_folder(node.output_dir, resume=resume)
    own = ("experiment", "reproduce")
    forwarded = [o for o in overrides if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] not in own]
    check_suite_steps(suite, forwarded)  # every step's config, before the first step starts
    out = console()
    out.print(f"suite [bold]{escape(suite.name)}[/]: {len(suite.papers)} papers × seeds "
              f"{escape(str(list(suite.seeds)))} -> {escape(str(folder))}")
    try:
        report = reproduce.run_suite(suite, folder, forwarded=forwarded, resume=resume,
                                     log=lambda line: out.print(line, markup=False))
    except KeyboardInterrupt:
        out.print(f"[yellow]interrupted[/]: finished steps are kept in {escape(str(folder))}; continue with the same "
                  f"command and reproduce.resume={escape(str(folder))}")
        return 130
    reproduce.print_report(report)
    out.print(f"report: {folder / 'report.md'} and report.json" +
              (f"; proposed ranges: {folder / 'calibration.yaml'}" if len(suite.seeds) > 1 else ""), markup=False)
    return 0 if report["passed"] else reproduce.EXIT_OUT_OF_RANGE


def check_suite_steps(suite, forwarded: list[str]) -> None:
    """Compose and check every step of a reproduction suite (first seed; folders of earlier steps stand in as
    placeholders), so a bad value in step 9 stops the suite before step 1 runs; the error names the step."""
    from recx import reproduce

    placeholder = Path("suite-folder")  # a stand-in: nothing is created by the check
    for paper in suite.papers:
        step_dirs: dict[str, Path] = {}
        for step in paper.steps:
            run_dir = placeholder / "runs" / paper.key / step.name
            step_dirs[step.name] = run_dir
            argv = reproduce.step_argv(step, seed=suite.seeds[0], run_dir=run_dir, step_dirs=step_dirs,
                                       forwarded=forwarded)
            config_name, command, args = entry_point(argv[0], argv[1:])
            try:
                check_choices(args)
                prepare_job(config_name, command, args)
            except ConfigError as exc:
                exc.message = f"reproduction step {paper.key}/{step.name}: {exc.message}"
                raise


# ------------------------------------------------------------------------------------------------------------ data
def unconfigured_dataset(name: str, verb: str, from_dir: str | None) -> None:
    """A dataset name without a config: say what works instead of a fix that would fail again (an MMRec folder runs
    in place as ``dataset=mmrec``; anything else needs a dataset config in a user folder)."""
    choices = group_choices("dataset")
    if name in choices:
        return
    folder = Path(from_dir) if from_dir else None
    if folder is not None and folder.is_dir() and any(folder.glob("*.inter")):
        raise ConfigError(f"no dataset config is named '{name}'; {folder} is an MMRec folder, which needs none",
                          field="dataset", path=folder,
                          fix=f"recx data prepare mmrec dataset.path={folder}  (and train with "
                              f"`recx train model=<m> dataset=mmrec dataset.path={folder}`)")
    raise ConfigError(f"unknown dataset '{name}'", field="dataset",
                      fix=f"choose one of: {', '.join(choices)}; an MMRec folder runs as `recx data {verb} mmrec "
                          "dataset.path=<folder>`; other data needs a dataset config in a --config-dir folder "
                          "(docs/extending.md)")


def data_main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recx data", description="Fetch (with checksums) and prepare datasets. "
                                     "--config-dir DIR (repeatable) or RECX_CONFIG_PATH adds the user's datasets.")
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("list", help="datasets, their family, modalities and whether they are prepared")
    for verb, text in (("download", "fetch the raw files (from --from, RECX_DATA_MIRROR, or the official URL)"),
                       ("prepare", "download if needed, then index, split and cache tensors (+ features)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name", help="dataset config name (see `recx data list`)")
        p.add_argument("--from", dest="from_dir", default=None, help="folder that holds the raw files")
        p.add_argument("--data-dir", default=None, help="data folder (default: RECX_DATA_DIR or ./data)")
        p.add_argument("overrides", nargs="*", help="dataset overrides, e.g. dataset.split.ratios=[0.7,0.1,0.2]")
        if verb == "prepare":
            p.add_argument("--modalities", default=None,
                           help="comma-separated modalities to build (default: the dataset's modalities)")
            p.add_argument("--force", action="store_true", help="rebuild even if cached")
    args, config_dirs = split_config_dirs(args)
    config_paths.add_user_config_dirs(config_dirs)
    ns, unknown = parser.parse_known_args(args)
    # dataset overrides may come anywhere, after --from too (argparse stops collecting positionals at an option)
    stray = [u for u in unknown if u.startswith("-") or "=" not in u]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if unknown:
        ns.overrides = [*getattr(ns, "overrides", []), *unknown]
    if ns.verb == "list":
        return _data_list()
    unconfigured_dataset(ns.name, ns.verb, getattr(ns, "from_dir", None))  # (also refuses any unknown name)
    cfg = compose("train", [f"dataset={ns.name}", *ns.overrides])
    check_values("train", [f"dataset={ns.name}", *ns.overrides], cfg)  # e.g. dataset.split.ratios, before any work
    from recx.data import prepare as prep
    from recx.runtools import construct  # not Hydra's instantiate: a source's own RecxError reaches the user as is

    out = console()
    data_dir = Path(ns.data_dir) if ns.data_dir else Path(cfg.paths.data_dir)
    source = construct(cfg.dataset.source)
    if ns.verb == "download":
        raw = prep.download(source, data_dir, from_dir=ns.from_dir, log=out.print)
        out.print(f"[green]ok[/] {escape(f'raw files of {ns.name} in {raw}')}")
        return 0
    if cfg.dataset.get("family") == "ltr":  # query lists, not interactions: no split node, no modalities
        from recx.ltr.sources import prepare_ltr

        data = prepare_ltr(source, data_dir, from_dir=ns.from_dir, force=ns.force, log=out.print)
        out.print(f"[green]ok[/] {escape(f'{ns.name}: {data.stats()} in {data.cache_dir}')}")
        return 0
    if cfg.dataset.get("family") == "ecg":  # records -> tokenized sentences, cached
        from recx.ecg.data import prepare_ecg

        data = prepare_ecg(source, data_dir, from_dir=ns.from_dir, force=ns.force, log=out.print)
        out.print(f"[green]ok[/] {escape(f'{ns.name}: {data.stats()}')}")
        return 0
    if cfg.dataset.get("family") == "pathrec":  # student sequences: read in about a second, nothing to cache
        from recx.pathrec.sources import load_kt

        if ns.from_dir:
            prep.download(source, data_dir, from_dir=ns.from_dir, log=out.print)
        data = load_kt(source, data_dir)
        out.print(f"[green]ok[/] {escape(f'{ns.name}: {data.stats()}')}")
        return 0
    split = construct(cfg.dataset.split)
    explicit = ns.modalities is not None
    modalities = [m for m in (ns.modalities.split(",") if explicit else cfg.dataset.get("modalities") or []) if m]
    data = prep.prepare(source, split, data_dir, from_dir=ns.from_dir, force=ns.force, log=out.print)
    if ns.force:  # features of the old build are stale too
        for stale in prep.prepared_dir_of(source, split, data_dir).glob("feat_*.npy"):
            stale.unlink()
    built = []
    for modality in modalities:
        try:
            # raw files are in place and interactions (re)built by now: only the feature is new
            data = prep.prepare(source, split, data_dir, modalities=(*built, modality), log=out.print)
            built.append(modality)
        except RecxError as exc:
            if explicit:
                raise
            out.print(f"[yellow]skipped modality '{escape(modality)}'[/]: {escape(exc.render())}")
    out.print(f"[green]ok[/] {escape(f'{ns.name}: {data.stats()} in {prep.prepared_dir_of(source, split, data_dir)}')}")
    return 0


def _data_list() -> int:
    from rich.table import Table

    table = Table(title="datasets (recx/conf/dataset and the user's config folders)")
    for col in ("name", "family", "modalities", "source"):
        table.add_column(col)
    for name in group_choices("dataset"):
        d = OmegaConf.load(config_paths.config_file("dataset", name))
        table.add_row(name, str(d.get("family")), ",".join(d.get("modalities") or []) or "-",
                      str(d.source.get("_target_", "")).rsplit(".", 1)[-1])
    console().print(table)
    return 0


# ---------------------------------------------------------------------------------------------------------- report
def report_main(args: list[str]) -> int:
    """``recx report FOLDER...``: plots and a markdown summary beside each run or sweep folder."""
    if not args or args[0] in ("-h", "--help"):
        console().print("usage: recx report <run folder or sweep folder> [...]\n  writes report.md and PNG plots "
                        "(report_curves.png per run, report_configs.png per sweep) into the folder", markup=False)
        return 0 if args else 2
    from recx.report import write_report

    for folder in args:
        for path in write_report(folder):
            console().print(f"wrote {path}", markup=False)
    return 0


# ------------------------------------------------------------------------------------------------------------ help
def print_help() -> None:
    from recx import __version__

    out = console()
    out.print(f"recx {__version__} — config-driven experiments for recommendation and ranking papers\n", markup=False)
    out.print("usage: recx <command> [overrides...]\n", markup=False)
    for cmd, text in COMMANDS.items():
        out.print(f"  {cmd:<6} {text}")
    out.print("\nconfig groups (choose with group=choice):")
    for group in CHOICE_GROUPS:
        out.print(f"  {group:<11} {', '.join(group_choices(group)) or '-'}")
    out.print("\n`recx train --help` shows the composed config; RECX_DEBUG=1 keeps tracebacks on errors.")


#: set by a ``train`` run: the config a DDP worker process (LOCAL_RANK > 0) composes
DDP_COMMAND_ENV = "RECX_DDP_CONFIG"


def entry_script() -> str:
    """``sys.argv[0]`` for Hydra: a runnable recx entry point (the ``recx`` script), because Lightning's DDP launcher
    starts every extra process as ``python <argv[0]> <argv[1:]>``; under ``python -m recx.cli`` it uses ``-m``."""
    script = Path(sys.argv[0])
    return str(script.resolve()) if script.name == "recx" and script.is_file() else "recx"


def is_ddp_worker(argv: list[str]) -> bool:
    """A process started by Lightning's DDP launcher: LOCAL_RANK > 0, argv = overrides only (no command)."""
    return (os.environ.get("LOCAL_RANK", "0") != "0" and bool(os.environ.get(DDP_COMMAND_ENV))
            and bool(argv) and argv[0] not in COMMANDS)


def split_config_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR`` anywhere on the command line, taken out of it
    (every command, ``recx data`` included, takes them)."""
    rest, dirs = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config-dir", "-cd"):
            if i + 1 >= len(argv):
                raise ConfigError(f"{arg} needs a folder", field=arg, fix=f"{arg} path/to/my_configs")
            dirs.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return rest, dirs


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Hydra re-raises instead of printing its own "Set the environment variable HYDRA_FULL_ERROR=1" line: every
    # exception reaches the handlers below, which print one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    _COMPOSED.clear()
    _reference.cache_clear()
    from recx.fast_imports import install

    install()  # ~1.5 s less start-up: torchmetrics skips transformers, matplotlib, scipy.signal (unused by recx there)
    try:
        argv, config_dirs = split_config_dirs(argv)
        config_paths.add_user_config_dirs(config_dirs)
        config_paths.activate_user_modules()
        if is_ddp_worker(argv):  # the rank-0 process already checked everything: compose and train as told
            sys.argv = [entry_script(), *argv]  # argv already holds the user folders' hydra.searchpath
            _hydra_app(os.environ[DDP_COMMAND_ENV])()
            return 0
        if not argv or argv[0] in ("-h", "--help", "help"):
            print_help()
            return 0
        if argv[0] in ("-V", "--version"):
            from recx import __version__

            print(__version__)
            return 0
        command, rest = argv[0], argv[1:]
        if command in ("train", "sweep", "eval"):
            from recx.threads import start_watch

            start_watch()  # other processes' CPU load, measured over start-up for hardware.num_threads=auto
            return run_hydra(command, rest)
        if command == "data":
            return data_main(rest)
        if command == "report":
            return report_main(rest)
        raise ConfigError(f"unknown command '{command}'", fix=f"use one of: {', '.join(COMMANDS)}")
    except RecxError as exc:
        fail(exc)
    except KeyboardInterrupt:
        if is_debug():
            raise
        console(stderr=True).print("interrupted", markup=False)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug in recx: one line for the user, the traceback in a file
        if is_debug():
            raise
        return report_internal_error(exc)
    return 2


#: the folder of the run in progress (set by the Hydra task), where an internal error's traceback is saved
_RUN_DIR: Path | None = None


def report_internal_error(exc: BaseException) -> int:
    """Print ``internal error: <what>, traceback saved to <file>; please report it`` and return exit status 1.

    The traceback goes to ``<run folder>/error.txt`` when a run had started, else to a file in the temp folder;
    RECX_DEBUG=1 shows it instead (the caller re-raises).
    """
    import tempfile
    import time

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    target: Path | None = None
    if _RUN_DIR is not None:
        target = _RUN_DIR / "error.txt"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        except OSError:
            target = None
    if target is None:
        fd, name = tempfile.mkstemp(prefix=f"recx-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        target = Path(name)
    what = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    console(stderr=True).print(f"internal error: {what}, traceback saved to {target}; please report it "
                               "(RECX_DEBUG=1 shows it)", markup=False, highlight=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
