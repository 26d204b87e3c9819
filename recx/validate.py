"""Check a composed config before any work starts: every value's type, range, and the rules between keys.

One source per fact, so the config and the code cannot disagree:

* **type** -- from the type hints of the constructor a node's ``_target_`` names (the model class, the dataset
  source, the split, the datamodule, the click model...); the module keys every model carries (``lr``,
  ``weight_decay``, ``lr_decay``, ``lr_decay_every``; :data:`recx.topn.models.base.MODULE_KEYS`) from
  :data:`MODULE_TYPES`; any other key (families without a ``_target_``, metric/trainer/callback keys) from the type of
  its default in the YAML that defines it (the config composed with the same groups but without value overrides);
* **range** -- from the small table :data:`RANGES`, matched on the key's name (``lr`` > 0, ``*_dim`` >= 1,
  ``n_*layers`` >= 0, ``dropout`` in [0, 1], ``batch_size`` >= 1, ``trainer.max_epochs`` >= 1, ...); every numeric
  key of every model config has a rule (``tests/unit/test_validate.py`` enforces it);
* **choices** -- text keys with a fixed set of values (:data:`CHOICES`, often the code's own constant);
* **cross-key rules** -- :func:`check_rules`: the monitor is a metric that is computed (name among
  ``metric.metrics``, K among ``metric.ks``), split ratios sum to 1, modalities are ones the dataset source builds.

:func:`check_config` runs after compose and before any data is read or model built (``recx train``/``eval``, every
job of a sweep before the first starts, every step of a reproduction suite); it raises a ConfigError that names the
key, the value, the allowed type or range and the YAML file where the default lives. No Lightning import here.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from recx.errors import ConfigError

from recx.config_paths import CONF_DIR, search_dirs

#: top-level sections that are not checked here (Hydra's own node; paths are folders, checked when used)
SKIPPED_SECTIONS = ("hydra", "paths", "reproduce", "defaults")

#: config groups whose YAML holds the defaults of the section of the same name
GROUP_SECTIONS = ("model", "dataset", "metric", "hardware", "logger", "callbacks", "click_model", "simulator", "lm",
                  "plugin")

#: keys whose values are wider than their default's type (the code reads several forms); checked against these
KEY_TYPES: dict[str, tuple[frozenset[str], bool]] = {
    "resume": (frozenset({"bool", "str"}), True),  # true / false / a run folder
    "progress": (frozenset({"bool", "str"}), True),  # auto / true / false
    "seed": (frozenset({"int"}), True),
    "trainer.deterministic": (frozenset({"bool", "str"}), True),  # Lightning also takes "warn"
    "trainer.limit_train_batches": (frozenset({"int", "float"}), True),
    "trainer.limit_val_batches": (frozenset({"int", "float"}), True),
    "trainer.gradient_clip_val": (frozenset({"int", "float"}), True),
    "hardware.precision": (frozenset({"str", "int"}), False),  # "32-true", "bf16-mixed", 32, 16
    "hardware.devices": (frozenset({"int", "str", "list"}), False),  # 1, "auto", "0,1", [0, 1]
    "hardware.num_threads": (frozenset({"int", "str"}), True),  # an integer, auto (recx.threads) or null
    "preference": (frozenset({"list", "str"}), False),  # recx eval lis: one spec or a list
    "representation": (frozenset({"list", "str"}), False),
    "features": (frozenset({"list", "str"}), False),  # recx eval metric=feature_quality
}

#: the keys every trainable model config carries for its LightningModule (recx.topn.models.base.MODULE_KEYS)
MODULE_TYPES: dict[str, type] = {"lr": float, "weight_decay": float, "lr_decay": float, "lr_decay_every": int}


# ---------------------------------------------------------------------------------------------------------- ranges
@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (either bound open with ``*_open``, or absent); ``integer`` also asks for an int."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
PROBABILITY = Range(0, 1)
FRACTION = Range(0, 1, low_open=True)  # a share that must keep something (label fractions, logging fraction)
FINITE = Range()

#: dotted paths with their own rule (checked before the name rules)
PATH_RANGES: dict[str, Range] = {
    "trainer.max_epochs": AT_LEAST_ONE,  # Lightning reads -1 as "no limit": recx always wants a bound
    "trainer.check_val_every_n_epoch": AT_LEAST_ONE,
    "trainer.log_every_n_steps": AT_LEAST_ONE,
    "trainer.gradient_clip_val": NON_NEGATIVE,
    "trainer.limit_train_batches": POSITIVE,
    "trainer.limit_val_batches": POSITIVE,
    "trainer.max_steps": Range(-1),
    "model.path_type": Range(0, 3),  # SRC's candidate sets p0..p3
    "dataset.source.fold": Range(1, 5),  # MSLR-WEB10K folds
    "model.shots": NON_NEGATIVE,  # 0 = zero-shot
    "model.feeder.shots": AT_LEAST_ONE,
    "model.title_tokens": NON_NEGATIVE,
    "model.latent_words": NON_NEGATIVE,
    "model.graph.threshold": PROBABILITY,  # MAGUS: |correlation| of per-user word shares
    "model.user.error_rate": Range(0, 0.5, high_open=True),  # interactive users: at 0.5 answers carry nothing
    "model.user.unknown_rate": Range(0, 1, high_open=True),  # recx.interactive.rounds.UserModel
    "dataset.ltr.source.relevant_rating": NON_NEGATIVE,
}

#: rules by the key's own name (regular expressions, first match wins); lists are checked element by element
NAME_RANGES: tuple[tuple[str, Range], ...] = (
    (r"min_lr|warmup_epochs", NON_NEGATIVE),  # a cosine schedule may end at 0; warm-up may be off
    (r"lr|.*_lr|learning_rate", POSITIVE),
    (r".*weight_decay", NON_NEGATIVE),
    (r"lr_decay", Range(0, 1, low_open=True)),
    (r"lr_decay_every", AT_LEAST_ONE),
    (r"dropout|mask_ratio|.*_fraction|lambda_coeff|noise|feature_noise|transfer|gain", PROBABILITY),
    (r"label_fraction|logging_fraction", FRACTION),
    (r"ratios|betas|.*_rate", PROBABILITY),
    (r".*temperature|sigma", POSITIVE),
    (r".*_weight|.*_alpha|alpha|beta|eta|popularity_beta|image|text|genre|min_delta|max_weight", NON_NEGATIVE),
    (r"n_layers|.*_layers|depth|.*_depth|cross_layers|attention_layers|user_layers|patience|cold_threshold|n_routing",
     NON_NEGATIVE),
    (r".*seed", NON_NEGATIVE),
    (r"embedding_dim|.*_dim|dim|dim_head|embed|hidden|mlp|vq_mlp|heads|.*_heads|n_codes|n_centroids|n_subspaces",
     AT_LEAST_ONE),
    (r".*batch_size|.*_batches|batches", AT_LEAST_ONE),
    (r"epochs|.*_epochs|iterations|.*_iters|rounds|runs|decode_steps|steps", AT_LEAST_ONE),
    (r"k|ks|.*_k|knn_k|cutoff|window|max_positions|.*_per_round|.*_per_query|.*_per_user|.*_per_centroid",
     AT_LEAST_ONE),
    (r"n_.*|min_items|max_pairs|max_len|max_length|min_length|path_length|max_slate_length|pool_size|test_size"
     r"|max_label", AT_LEAST_ONE),
    (r"devices|num_nodes|num_threads|memory_budget_mb|negatives|max_positives|new_items_k|sampling|leads"
     r"|docs_per_query", AT_LEAST_ONE),
    (r"seconds|relevant_rating|min_rating", NON_NEGATIVE),
)


def range_of(path: str) -> Range | None:
    """The range rule of a dotted key path, or None when the table has none."""
    if path in PATH_RANGES:
        return PATH_RANGES[path]
    name = path.rsplit(".", 1)[-1]
    for pattern, rule in NAME_RANGES:
        if re.fullmatch(pattern, name):
            return rule
    return None


# ----------------------------------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Expected:
    """The types a key accepts: a subset of {bool, int, float, str, list, dict}, plus whether null is allowed."""

    kinds: frozenset[str]
    nullable: bool = False
    source: str = ""  # where the type comes from (for the message)

    def describe(self) -> str:
        names = {"bool": "true/false", "int": "an integer", "float": "a number", "str": "text", "list": "a list",
                 "dict": "a mapping"}
        kinds = [names[k] for k in ("bool", "int", "float", "str", "list", "dict") if k in self.kinds]
        if "float" in self.kinds and "int" in self.kinds:
            kinds.remove("an integer")
        text = " or ".join(kinds)
        return f"{text} or null" if self.nullable else text


def _kinds_of_hint(hint: Any) -> tuple[set[str], bool] | None:
    """The value kinds a type hint allows (``None`` when the hint says nothing checkable, e.g. Any)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        nullable = False
        for arg in typing.get_args(hint):
            if arg is type(None):
                nullable = True
                continue
            sub = _kinds_of_hint(arg)
            if sub is None:
                return None
            kinds |= sub[0]
            nullable |= sub[1]
        return kinds, nullable
    if hint is type(None):
        return set(), True
    target = origin or hint
    if target is bool:
        return {"bool"}, False
    if target is int:
        return {"int"}, False
    if target is float:
        return {"float", "int"}, False
    if target is str:
        return {"str"}, False
    if inspect.isclass(target) and issubclass(target, Path):
        return {"str"}, False
    if target in (list, tuple, Sequence, typing.Sequence) or (inspect.isclass(target) and target is not str
                                                                and issubclass(target, Sequence)):
        return {"list"}, False
    if target in (dict, Mapping) or (inspect.isclass(target) and issubclass(target, Mapping)):
        return {"dict"}, False
    return None


@lru_cache(maxsize=None)
def target_hints(target: str) -> dict[str, tuple[frozenset[str], bool]]:
    """``{argument: (kinds, nullable)}`` from the type hints of the class or factory ``target`` names (empty when it
    cannot be imported or has no usable hints: the defaults' types apply then)."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
        fn = obj.__init__ if inspect.isclass(obj) else obj
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an import error is reported when the object is built, with its own message
        return {}
    out = {}
    for name, hint in hints.items():
        if name == "return":
            continue
        kinds = _kinds_of_hint(hint)
        if kinds is not None and kinds[0]:
            out[name] = (frozenset(kinds[0]), kinds[1])
    return out


def _kind_of_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple, ListConfig)):
        return "list"
    if isinstance(value, (dict, DictConfig)):
        return "dict"
    return None


def expected_type(path: str, parent_target: str | None, default: Any, has_default: bool) -> Expected | None:
    """What a key accepts: the constructor's hint, the module-key table, or the type of its default."""
    key = path.rsplit(".", 1)[-1]
    if path in KEY_TYPES:
        kinds, nullable = KEY_TYPES[path]
        return Expected(kinds, nullable, "recx.validate.KEY_TYPES")
    if parent_target:
        hints = target_hints(parent_target)
        if key in hints:
            kinds, nullable = hints[key]
            return Expected(kinds, nullable or default is None, f"the type hint of {parent_target}")
    if path.count(".") == 1 and path.startswith("model.") and key in MODULE_TYPES:
        kind = MODULE_TYPES[key]
        return Expected(frozenset({"float", "int"} if kind is float else {"int"}), False, "recx's module keys")
    if not has_default or default is None:
        return None
    kind = _kind_of_value(default)
    if kind is None:
        return None
    kinds = {"float", "int"} if kind == "float" else {kind}
    return Expected(frozenset(kinds), False, "the type of the default")


# --------------------------------------------------------------------------------------------------------- choices
#: text keys with a fixed set of values: a tuple, or the dotted name of the constant the code checks against (one
#: source); keyed by dotted path, by the key's own name (``*`` = any path ending in that name), or by
#: ``<_target_>:<key>`` where two classes give one key name different values
CHOICES: dict[str, tuple[str, ...] | str] = {
    "*feature_norm": ("none", "standard", "l2"),  # recx.topn.features.normalize_features
    "*reg_form": "recx.topn.losses.REG_FORMS",
    "*feature_order": "recx.topn.features.FEATURE_ORDERS",
    "*user_aggr": "recx.topn.models.dualgnn.USER_AGGRS",
    "*tokenizer_backend": "recx.topn.tokenizer.BACKENDS",
    "model.ui_norm": "recx.topn.models.lattice.UI_NORMS",
    "recx.topn.models.lattice.LATTICE:projection_init": "recx.topn.layers.Projector.INITS",
    "model.layer_init": "recx.topn.models.mmgcn.LAYER_INITS",
    "model.fac_logits": "recx.topn.models.slmrec.FAC_LOGITS",
    "model.fac_chain": "recx.topn.models.slmrec.FAC_CHAINS",
    "recx.topn.models.slmrec.SLMRec:projection_init": "recx.topn.models.slmrec.PROJECTION_INITS",
    "model.reg_scope": "recx.topn.models.vbpr.REG_SCOPES",
    "model.decode": "recx.ltr.models.starank.DECODES",
    "model.schedule": "recx.ecg.recipe.SCHEDULES",
    "model.pool": "recx.icl.feeder.POOLS",
    "*sufficiency": "recx.icl.feeder.SUFFICIENCY",
    "*score_with": "recx.topn.models.base.SCORE_WITH",
    "model.family": "recx.families.PACKAGES",
    "model.fit.method": "recx.interactive.recipe.FIT_METHODS",
    "model.user.kind": "recx.interactive.rounds.USER_KINDS",
    "model.strategies": "recx.interactive.rounds.STRATEGIES",  # a list: each element
    "*logging_policy": "recx.ltr.logging_policy.POLICIES",
    "*normalization": "recx.ltr.data.NORMALIZATIONS",
    "*binarize": "recx.ltr.windows.BINARIZE",
    "*detector": "recx.ecg.qrs.DETECTORS",
    "recx.ltr.sources.MSLR10K:layout": "recx.ltr.sources.LAYOUTS",
    "recx.pathrec.sources.ASSIST2009:layout": "recx.pathrec.sources.LAYOUTS",
    "recx.icl.sources.LabelledFile:layout": "recx.icl.data.LAYOUTS",
    "recx.ecg.data.PTBXL:task": "recx.ecg.data.TASKS",
    "recx.icl.sources.RottenTomatoes:task": "recx.icl.data.RT_TASKS",
    "model.fusion": "recx.topn.models.drepmrec.FUSIONS",
    "model.weight_mode": "recx.topn.models.grcn.WEIGHT_MODES",
    "model.stage": "recx.topn.models.alignrec.STAGES",
    "model.linear_init": "recx.topn.models.alignrec.LINEAR_INITS",
    "model.knn_negatives": "recx.topn.models.alignrec.KNN_NEGATIVES",
    "model.selector": "recx.icl.selectors.SELECTORS",
    "model.main_loss": ("infonce", "bpr"),
    "model.aggregation": ("mean", "sum"),
    "model.combination": ("concat", "sum"),
    "model.item_representation": ("motor", "id"),
    "model.episodes": ("official", "students"),
    "model.baseline": ("none", "moving_average", "greedy"),
    "metric.scorer": ("torch", "faiss"),
    "metric.during_training": "recx.topn.module.DURING_TRAINING",
    "hardware.num_threads": ("auto",),
    "metric.idcg_zero": ("one", "zero"),
    "hardware.accelerator": ("cpu", "gpu", "cuda", "auto", "mps", "tpu"),
}


def choices_of(path: str, target: str | None = None) -> tuple[str, ...] | None:
    """The allowed values of a text key, or None when any text is allowed; ``target``: the ``_target_`` of the node
    holding the key (for the ``<_target_>:<key>`` entries)."""
    name = path.rsplit(".", 1)[-1]
    spec = CHOICES.get(f"{target}:{name}") if target else None
    if spec is None:
        spec = CHOICES.get(path)
    if spec is None:
        spec = CHOICES.get(f"*{name}")
    if spec is None:
        return None
    if isinstance(spec, str):
        from hydra.utils import get_object

        try:
            spec = tuple(get_object(spec))
        except Exception:  # noqa: BLE001 - the model's own check will speak
            return None
    return tuple(spec)


# ----------------------------------------------------------------------------------------------------- where from
def default_file(path: str, choices: Mapping[str, Any], config_name: str) -> str:
    """The YAML file (relative to the repository) where the default of ``path`` is set."""
    section = path.split(".", 1)[0]
    rest = path.split(".")[1:]
    candidates: list[Path] = []
    experiment = choices.get("experiment")
    if experiment:
        candidates.append(_file("experiment", experiment))  # @package _global_: full paths
    dataset_model = choices.get("dataset_model")
    if dataset_model:
        candidates.append(_file("dataset_model", dataset_model))
    for where in candidates:
        if where.is_file() and _holds(_load(where), path):
            return _rel(where)
    if section in GROUP_SECTIONS and choices.get(section):
        if len(rest) > 1:  # a nested group: model/backbone, model/base, model/size
            sub = f"{section}/{rest[0]}"
            if choices.get(sub):
                where = _file(f"{section}/{rest[0]}", choices[sub])
                if where.is_file():
                    return _rel(where)
        where = _file(section, choices[section])
        if where.is_file() and (not rest or _holds(_load(where), ".".join(rest)) or len(rest) == 1):
            return _rel(where)
        for sub, choice in choices.items():  # a key merged from a nested group (model/size into model)
            if isinstance(sub, str) and sub.startswith(f"{section}/") and choice:
                nested = _file(sub, choice)
                if nested.is_file() and _holds(_load(nested), ".".join(rest)):
                    return _rel(nested)
        return _rel(where)
    return _rel(CONF_DIR / f"{config_name}.yaml")


def _file(group: str, name: str) -> Path:
    """A choice's YAML in recx's config folder or a user's (RECX_CONFIG_PATH / --config-dir)."""
    for base in search_dirs():
        path = base / group / f"{name}.yaml"
        if path.is_file():
            return path
    return CONF_DIR / group / f"{name}.yaml"


@lru_cache(maxsize=None)
def _load(path: Path) -> DictConfig:
    return OmegaConf.load(path)


def _holds(node: DictConfig, path: str) -> bool:
    try:
        return OmegaConf.select(node, path, default="<missing>", throw_on_resolution_failure=False) != "<missing>"
    except Exception:  # noqa: BLE001
        return False


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(CONF_DIR.parent.parent))  # recx/conf/model/<name>.yaml
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------------- checks
def _leaf(node: DictConfig, key: str) -> tuple[bool, Any]:
    """``(ok, value)`` of one key, resolved; ``ok`` is False when it does not resolve here (``${hydra:...}``)."""
    try:
        value = node[key]
    except Exception:  # noqa: BLE001 - interpolations of the Hydra runtime, missing values (???)
        return False, None
    return True, value


def _fail(path: str, value: Any, problem: str, expected: str, where, default: Any, has_default: bool) -> None:
    where = where() if callable(where) else where
    shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
    known = f"; its default {_show(default)} is set in {where}" if has_default else f"; see {where}"
    raise ConfigError(f"{path}={_show(shown)} is {problem}", path=where, field=path,
                      fix=f"{path} takes {expected}{known}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check_value(path: str, value: Any, expected: Expected | None, where, default: Any, has_default: bool,
                 target: str | None = None) -> None:
    """Type, then range; ``where`` is the default's file, or a function that finds it (called on failure only);
    ``target`` the ``_target_`` of the node holding the key."""
    kind = _kind_of_value(value)
    if expected is not None:
        if value is None:
            if not expected.nullable:
                _fail(path, value, "not allowed (null)", expected.describe(), where, default, has_default)
        elif kind not in expected.kinds and not (kind in ("int", "float") and "str" in expected.kinds):
            # (a number is fine where text is expected: names, folders; Hydra reads `run_name=2024` as an int)
            problem = {"str": "text", "bool": "a true/false", "float": "a fractional number", "list": "a list",
                       "dict": "a mapping", "int": "an integer"}.get(kind or "", "of the wrong type")
            _fail(path, value, f"{problem}, not {expected.describe()}", expected.describe(), where, default,
                  has_default)
    allowed = choices_of(path, target) if kind in ("str", "list") else None
    if allowed is not None and kind == "str" and value not in allowed:
        _fail(path, value, f"not one of {', '.join(allowed)}", f"one of {', '.join(allowed)}", where, default,
              has_default)
    if allowed is not None and kind == "list":  # a list of choices (MAGUS's strategies): element by element
        for item in value:
            if isinstance(item, str) and item not in allowed:
                _fail(path, value, f"a list holding {item!r}, not one of {', '.join(allowed)}",
                      f"a list of {', '.join(allowed)}", where, default, has_default)
    rule = range_of(path)
    if rule is None:
        return
    numbers = []
    if kind in ("int", "float"):
        numbers = [value]
    elif kind == "list" and isinstance(value, (list, tuple, ListConfig)):
        for item in value:
            if isinstance(item, bool):
                continue
            if isinstance(item, (int, float)):
                numbers.append(item)
            elif isinstance(item, str) and _kind_of_value(default) == "list" and default and all(
                    isinstance(d, (int, float)) and not isinstance(d, bool) for d in default):
                _fail(path, value, f"a list holding text ({item!r}), not numbers", f"a list of numbers "
                      f"{rule.describe()}", where, default, has_default)
    for number in numbers:
        if not rule.contains(number):
            what = (f"out of range: it must be {rule.describe()}" if len(numbers) == 1 and kind != "list"
                    else f"out of range: {number} is not {rule.describe()}")
            allowed = f"{expected.describe() if expected else 'a number'} {rule.describe()}"
            if kind == "list":
                allowed = f"a list of numbers {rule.describe()}"
            _fail(path, value, what, allowed, where, default, has_default)


def _walk(node: DictConfig, ref: DictConfig | None, prefix: str, visit) -> None:
    target = None
    try:
        target = node.get("_target_") if "_target_" in node else None
    except Exception:  # noqa: BLE001
        target = None
    for key in node:
        key = str(key)
        if key == "_target_" or (not prefix and key in SKIPPED_SECTIONS):
            continue
        path = f"{prefix}.{key}" if prefix else key
        ok, value = _leaf(node, key)
        if not ok:
            continue
        has_default, default = (False, None)
        if ref is not None and key in ref:
            has_default, default = _leaf(ref, key)
        if isinstance(value, DictConfig):
            _walk(value, default if isinstance(default, DictConfig) else None, path, visit)
            continue
        visit(path, value, target if isinstance(target, str) else None, default, has_default)


def check_config(cfg: DictConfig, reference: DictConfig | None = None, *, choices: Mapping[str, Any] | None = None,
                 config_name: str = "train") -> None:
    """Raise a ConfigError for the first value of ``cfg`` whose type, range or cross-key rule is wrong.

    ``reference`` is the same config composed without the user's value overrides (its values are the defaults, and
    their types the expected types of keys no constructor annotates); ``choices`` the group choices (Hydra's
    ``hydra.runtime.choices``), used to name the file where a default lives.
    """
    choices = dict(choices or {})

    def visit(path: str, value: Any, target: str | None, default: Any, has_default: bool) -> None:
        expected = expected_type(path, target, default, has_default)
        if expected is None and value is None:
            return
        _check_value(path, value, expected, lambda: default_file(path, choices, config_name), default, has_default,
                     target)

    _walk(cfg, reference, "", visit)
    check_rules(cfg, choices=choices, config_name=config_name)


# ------------------------------------------------------------------------------------------------ cross-key rules
#: metrics the learning-to-rank module computes besides ndcg@K (recx.ltr.module.query_metrics)
LTR_FIXED_METRICS = ("err@10", "map", "mrr")
LTR_CLICK_METRICS = ("clicks_pbm@10", "clicks_ubm@10")


def check_rules(cfg: DictConfig, *, choices: Mapping[str, Any] | None = None, config_name: str = "train") -> None:
    """The rules between keys: the monitor is computed, split ratios sum to 1, modalities exist."""
    choices = dict(choices or {})
    metric = cfg.get("metric")
    family = metric.get("family") if isinstance(metric, DictConfig) else None
    where = default_file("metric.monitor", choices, config_name)
    if family == "topn" and metric.get("monitor") is not None:
        from recx.metrics.topk import TOPK_METRICS

        names = list(metric.get("metrics") or [])
        unknown = [m for m in names if m not in TOPK_METRICS]
        if unknown:
            raise ConfigError(f"metric.metrics={names} names unknown metric(s) {unknown}", field="metric.metrics",
                              path=where, fix=f"choose from {', '.join(TOPK_METRICS)}")
        ks = [int(k) for k in metric.get("ks") or []]
        monitor = str(metric.monitor)
        base, _, k = monitor.removeprefix("cold/").partition("@")
        computed = [f"{m}@{kk}" for m in names for kk in ks]
        if base not in names or not k.isdigit():
            raise ConfigError(f"metric.monitor={monitor!r} is not a computed metric", field="metric.monitor",
                              path=where, fix=f"choose one of {', '.join(computed)} (name@K with the name in "
                                              f"metric.metrics={names} and K in metric.ks={ks})")
        if int(k) not in ks:
            raise ConfigError(f"metric.monitor={monitor!r} asks for K={k}, which metric.ks={ks} does not cover",
                              field="metric.ks", path=where,
                              fix=f"add {k} to metric.ks (metric.ks=[{', '.join(map(str, sorted({*ks, int(k)})))}]) "
                                  f"or monitor one of {', '.join(computed)}")
        if monitor.startswith("cold/") and metric.get("cold_threshold") is None:
            raise ConfigError(f"metric.monitor={monitor!r} needs the cold-start view, but metric.cold_threshold is "
                              "null",
                              field="metric.monitor", path=where, fix="set metric.cold_threshold (e.g. 5)")
    if family == "ltr" and metric.get("monitor") is not None:
        ks = [int(k) for k in metric.get("ks") or []]
        computed = [f"ndcg@{k}" for k in ks] + list(LTR_FIXED_METRICS)
        if metric.get("simulated_clicks"):
            computed += list(LTR_CLICK_METRICS)
        monitor = str(metric.monitor)
        if monitor not in computed:
            raise ConfigError(f"metric.monitor={monitor!r} is not a computed metric", field="metric.monitor",
                              path=where, fix=f"choose one of {', '.join(computed)} (ndcg@K needs K in metric.ks)")
    dataset = cfg.get("dataset")
    if isinstance(dataset, DictConfig):
        split = dataset.get("split")
        if isinstance(split, DictConfig) and isinstance(split.get("ratios"), ListConfig):
            ratios = [float(r) for r in split.ratios]
            if abs(sum(ratios) - 1.0) > 1e-6:
                raise ConfigError(f"dataset.split.ratios={ratios} sum to {sum(ratios):g}, not 1",
                                  field="dataset.split.ratios",
                                  path=default_file("dataset.split", choices, config_name),
                                  fix="give train/valid/test shares that add up to 1, e.g. [0.8, 0.1, 0.1]")
        _check_modalities(dataset, choices, config_name)


def _check_modalities(dataset: DictConfig, choices: Mapping[str, Any], config_name: str) -> None:
    modalities = dataset.get("modalities")
    source = dataset.get("source")
    if not isinstance(modalities, ListConfig) or not isinstance(source, DictConfig) or not source.get("_target_"):
        return
    from hydra.utils import get_object

    try:
        available = getattr(get_object(str(source._target_)), "modalities", None)
    except Exception:  # noqa: BLE001 - reported when the source is built
        return
    if not isinstance(available, (tuple, list)):
        return  # set per instance (a generated dataset): checked when the data is prepared
    unknown = [str(m) for m in modalities if str(m) not in available]
    if unknown:
        listed = ", ".join(available) if available else "none (ID-based models only)"
        raise ConfigError(f"dataset.modalities={[str(m) for m in modalities]}: dataset '{dataset.get('name')}' has no "
                          f"modality {unknown}", field="dataset.modalities",
                          path=default_file("dataset.modalities", choices, config_name),
                          fix=f"choose a subset of: {listed}")
