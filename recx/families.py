"""The family registry: what each task family contributes to a run, and nothing about the run's life.

A family package exposes one :class:`Family` object (``recx/<family>/family.py``, attribute ``FAMILY``). The run life
(:mod:`recx.run`) asks it for the datamodule and for the run's *task*: a :class:`Trainable` (a LightningModule that
the shared trainer fits, checkpoints, early-stops, resumes and tests on its best checkpoint) or an
:class:`Evaluation` (MAGUS's simulation, in-context inference, the path baselines: code that runs inside the same
folder / config / hardware / metrics.json life but fits nothing). ``recx.cli`` reads the default metric groups here.

Families import shared helpers from :mod:`recx.runtools`, never :mod:`recx.run` or :mod:`recx.cli`; a family that
needs a nested run (MAGUS's base model, SRC's cached simulator) gets the run life's ``train`` through
:class:`Life`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recx.errors import ConfigError

#: family name -> the module holding its FAMILY object
PACKAGES = {
    "topn": "recx.topn.family",
    "ltr": "recx.ltr.family",
    "interactive": "recx.interactive.family",
    "ecg": "recx.ecg.family",
    "pathrec": "recx.pathrec.family",
    "icl": "recx.icl.family",
}


@dataclass
class Trainable:
    """A run that Lightning fits: ``module`` over the family datamodule, selected on ``monitor`` (``val/...``).

    ``max_epochs`` / ``patience`` come from the model config for families whose recipes carry them (ECG, DKT, SRC;
    None = the ``trainer`` / ``callbacks.early_stopping`` groups, as top-N and LTR). ``report(module, dm)`` adds the
    family's own facts to metrics.json (parameter counts, the simulator, ...); ``conventions`` is written next to it.
    """

    module: Any
    monitor: str
    mode: str = "max"
    max_epochs: int | None = None
    patience: int | None | str = "config"  # "config": callbacks.early_stopping; None: no early stopping
    net: Any = None
    report: Callable[[Any, Any], dict] | None = None
    conventions: dict = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    cpu_only: bool = False  # generator-driven CPU work (SRC's simulator rollouts): one CPU process, fp32
    model_label: str | None = None


@dataclass
class Evaluation:
    """A run that fits nothing through Lightning: ``run()`` returns the metrics dict (valid/test/...)."""

    run: Callable[[], dict]
    conventions: dict = field(default_factory=dict)
    prints: bool = False  # the evaluation prints its own summary (MAGUS, ICL)


@dataclass
class Life:
    """What the run life lends a family: the run folder, a log line printer and a nested ``train(cfg)``."""

    run_dir: Path
    log: Callable[[str], None]
    train: Callable[[Any], dict]


@dataclass(frozen=True)
class Family:
    """One task family.

    ``metric``: the metric group evaluating it by default. ``datamodule(cfg)``: its LightningDataModule (or None for
    an evaluation that reads its own data). ``task(cfg, dm, life)``: a :class:`Trainable` or an :class:`Evaluation`.
    ``restore(cfg, dm, ckpt)``: the Trainable for ``recx eval ckpt=...`` (weights loaded by the run life).
    ``build_net``: top-N / LTR networks for the commands that need a bare model (LIS, MAGUS). ``ddp(cfg)``: whether
    the model can run under ``hardware=ddp``.
    """

    name: str
    metric: str
    task: Callable[..., Trainable | Evaluation]
    datamodule: Callable[[Any], Any] | None = None
    build_net: Callable[..., Any] | None = None
    data_stats: Callable[[Any], dict] | None = None
    #: ``(read, score)`` for ``recx eval new_items=<file>`` (ID-free top-N models), or None
    new_items: Any = None
    #: whether the run config's model trains under hardware=ddp (checked before any data is read)
    ddp: Callable[[Any], bool] = lambda cfg: True


def names() -> list[str]:
    return list(PACKAGES)


def get(name: str | None) -> Family:
    if name not in PACKAGES:
        raise ConfigError(f"unknown model family '{name}'", field="model.family", fix=f"one of {', '.join(PACKAGES)}")
    return importlib.import_module(PACKAGES[name]).FAMILY


def of(cfg) -> Family:
    """The family of a run config's (or a bare model config's) model."""
    model = cfg.get("model") if cfg.get("model") is not None else cfg
    return get(model.get("family"))


def default_metrics() -> dict[str, str]:
    """family -> the metric group that evaluates it unless the command line names one."""
    return {name: get(name).metric for name in PACKAGES}
