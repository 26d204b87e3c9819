"""One run's life: seed, build datamodule + model + callbacks + trainer, fit, test the best checkpoint, write results.

Every completed run leaves in its folder::

    config.yaml        the fully resolved config (written before training starts)
    conventions.json   the metric conventions used (masking, gain, cut-offs, skipped users, selection rule)
    metrics.json       validation and test metrics of the best checkpoint, selection details, timings
    checkpoints/       best.ckpt (by the validation monitor) and last.ckpt (for resume=true)
    logs/              CSV logs (or wandb/, per the logger group)

Library use needs no CLI: ``train(cfg)`` takes a composed config (``hydra.compose``) whose ``paths.run_dir`` is set.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recx import families
from recx.errors import CheckpointError, ConfigError, TrainingError
from recx.runtools import (  # noqa: F401 - the shared helpers keep their recx.run names for library users
    check_hardware, construct, count_parameters, is_global_zero, load_checkpoint, load_checkpoint_of, model_class,
    model_reports, quiet_lightning, save_checkpoint, write_json,
)
from recx.runtools import cpu_processes, seconds_since_process_start
from recx.threads import governor


def build_datamodule(cfg: DictConfig):
    """The family datamodule of the run's model (:mod:`recx.families`)."""
    return families.of(cfg).datamodule(cfg)


def build_net(model_cfg: DictConfig, data, plugin: DictConfig | None = None):
    """A bare network of a family that has one per model (top-N, LTR): for LIS and MAGUS's base model."""
    family = families.of(model_cfg)
    if family.build_net is None:
        raise ConfigError(f"family '{family.name}' builds no bare network", field="model")
    return family.build_net(model_cfg, data, plugin)





def want_progress_bar(setting: Any) -> bool:
    if isinstance(setting, bool):
        return setting
    return sys.stdout.isatty()


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, *, max_epochs: int | None = None):
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import RichProgressBar

    from recx.callbacks.checkpoint_io import SafeCheckpointIO
    from recx.callbacks.console import EpochSummary

    logger = False
    if cfg.get("logger") is not None and cfg.logger.get("_target_"):
        try:
            logger = instantiate(cfg.logger)
        except Exception as exc:  # noqa: BLE001 - e.g. wandb not installed
            raise ConfigError(f"cannot create the logger {cfg.logger._target_}: {exc.__cause__ or exc}",
                              field="logger", fix="install the logger's extra (e.g. `.[wandb]`) or use logger=csv") from exc
    progress = want_progress_bar(cfg.get("progress", "auto"))
    callbacks = list(callbacks) + ([RichProgressBar(leave=False)] if progress else [EpochSummary()])
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if v is not None}
    if max_epochs is not None:
        kwargs["max_epochs"] = max_epochs
    hw = cfg.hardware
    return pl.Trainer(
        accelerator=hw.accelerator, devices=hw.devices, precision=hw.precision, strategy=hw.strategy,
        num_nodes=hw.get("num_nodes", 1), callbacks=callbacks, logger=logger, default_root_dir=str(run_dir),
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1, plugins=[SafeCheckpointIO()], **kwargs,
    )


def epoch_history():
    """A callback that keeps, per epoch, the logged training loss, the validation monitor and the seconds spent."""
    import lightning.pytorch as pl

    class EpochHistory(pl.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self._tic = 0.0
            self._val_tic = self._val_seconds = 0.0
            self.startup_s: float | None = None

        def on_train_start(self, trainer, module) -> None:
            #: process start to the first training step: imports, config, data, model, trainer (issue 19: ≤ 4 s)
            self.startup_s = seconds_since_process_start()

        def on_train_epoch_start(self, trainer, module) -> None:
            self._tic = time.perf_counter()
            self._val_seconds = 0.0

        def on_validation_start(self, trainer, module) -> None:
            self._val_tic = time.perf_counter()

        def on_validation_end(self, trainer, module) -> None:
            if trainer.state.fn == "fit":
                self._val_seconds += time.perf_counter() - self._val_tic

        def on_train_epoch_end(self, trainer, module) -> None:
            # seconds: the whole epoch, its validation round included (val_seconds: that round alone)
            row = {"epoch": trainer.current_epoch, "seconds": round(time.perf_counter() - self._tic, 3),
                   "val_seconds": round(self._val_seconds, 4)}
            row.update({k: round(float(v), 6) for k, v in trainer.callback_metrics.items()
                        if (k.startswith("val/") or k.startswith("train/")) and v.numel() == 1})
            # what recx.training.log_evaluation sent to the loggers directly (every metric of the round)
            row.update({k: round(v, 6) for k, v in getattr(module, "logged_evaluation", {}).items()
                        if k.startswith("val/")})
            if hasattr(module, "history_row"):  # what a family adds (ECG: the learning rate of the epoch's last step)
                row.update(module.history_row())
            self.rows.append(row)

        def state_dict(self) -> dict:
            return {"rows": self.rows}

        def load_state_dict(self, state: dict) -> None:
            self.rows = list(state.get("rows", []))

    return EpochHistory()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job of any family; return the metrics dict that is also written to ``metrics.json``.

    A :class:`~recx.families.Trainable` is fitted by the shared trainer (checkpoints, early stopping, resume, DDP,
    precision) and tested on its best checkpoint; an :class:`~recx.families.Evaluation` runs as it is, in the same
    folder / config / hardware / metrics.json life."""
    import lightning.pytorch as pl

    from recx.console import console, print_metrics

    quiet_lightning()
    family = families.of(cfg)
    if "ddp" in str(cfg.hardware.get("strategy", "")) and not family.ddp(cfg):
        raise ConfigError(f"model '{cfg.model.name}' ({family.name}) runs in one process; hardware=ddp serves the "
                          "models that Lightning fits on batches of data", field="hardware.strategy",
                          fix="use hardware=cpu or hardware=gpu (one device) for this model")
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    resume_ckpt = resume_checkpoint(cfg, run_dir)
    threads = check_hardware(cfg.hardware)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    writer = is_global_zero()  # under DDP every process trains and evaluates; rank 0 alone writes the run's files
    if writer:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    def log(message: str) -> None:
        if writer:
            console().print(message, markup=False)

    life = families.Life(run_dir=run_dir, log=log, train=train)
    dm = family.datamodule(cfg) if family.datamodule is not None else None
    if dm is not None:
        dm.prepare_data()
        dm.setup("fit")
    started = time.perf_counter()
    task = family.task(cfg, dm, life)
    if isinstance(task, families.Evaluation):
        results = {"status": "completed", "run_name": cfg.run_name, "model": cfg.model.name,
                   "dataset": cfg.dataset.name, "seed": cfg.seed, **task.run()}
        results.setdefault("wall_time_s", round(time.perf_counter() - started, 2))
        if writer:
            if task.conventions:
                write_json(run_dir / "conventions.json", task.conventions)
            write_json(run_dir / "metrics.json", results)
            if not task.prints:
                print_metrics(results, title=f"{cfg.run_name}", run_dir=run_dir)
        return results
    if task.cpu_only:
        cfg = OmegaConf.merge(cfg, {"hardware": {"accelerator": "cpu", "devices": 1, "precision": "32-true",
                                                 "strategy": "auto"}})

    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    module = task.module
    module.recx_config = OmegaConf.to_container(cfg, resolve=True)
    if writer:
        write_json(run_dir / "conventions.json", task.conventions)
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=task.monitor, mode=task.mode,
                                 save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    history = epoch_history()
    callbacks: list = [checkpoint, history]
    if cfg.callbacks.checkpoint.save_last:
        # Lightning's own save_last only refreshes last.ckpt when the best changes; resume needs every epoch.
        callbacks.append(ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                                         enable_version_counter=False))
    patience = cfg.callbacks.early_stopping.patience if task.patience == "config" else task.patience
    if patience is not None and (task.patience != "config" or cfg.callbacks.early_stopping.enabled):
        callbacks.append(EarlyStopping(monitor=task.monitor, mode=task.mode, patience=int(patience),
                                       min_delta=cfg.callbacks.early_stopping.min_delta, check_finite=False))
    callbacks += list(task.callbacks)
    thread_governor = governor(cfg.hardware.get("num_threads"), cpu_processes(cfg.hardware))
    if thread_governor is not None:
        callbacks.append(thread_governor)
    callbacks += [construct(node) for node in cfg.callbacks.get("extra") or []]
    trainer = build_trainer(cfg, run_dir, callbacks, max_epochs=task.max_epochs)

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
    except TrainingError as exc:
        last = ckpt_dir / "last.ckpt"
        exc.message += (f"; training stopped. The last good checkpoint is {last}" if last.is_file()
                        else "; training stopped before any checkpoint was written")
        raise
    except SystemExit:  # Lightning turns Ctrl+C into SystemExit after a graceful shutdown
        raise TrainingError("training was interrupted", path=run_dir,
                            fix=f"continue it with `recx train <same overrides> resume={run_dir}`") from None
    train_time = time.perf_counter() - started
    # every epoch's row, kept now: validate/test below restore the callbacks' state from the best checkpoint, which
    # would cut the history back to the best epoch
    epochs = list(history.rows)

    best = checkpoint.best_model_path
    if not best:
        raise TrainingError("training produced no checkpoint (no validation round ran)", path=run_dir,
                            fix="raise trainer.max_epochs or lower trainer.check_val_every_n_epoch")
    started = time.perf_counter()
    trainer.validate(module, datamodule=dm, ckpt_path=best, verbose=False)
    trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)
    eval_time = time.perf_counter() - started
    best_epoch = _checkpoint_epoch(best)

    results = {
        "status": "completed",
        "run_name": cfg.run_name,
        "model": task.model_label or cfg.model.name,
        "dataset": cfg.dataset.name,
        "seed": cfg.seed,
        "monitor": task.monitor,
        "valid": module.results.get("valid", {}),
        "test": module.results.get("test", {}),
        "best_epoch": best_epoch,
        "epochs_trained": trainer.current_epoch,
        "stopped_early": bool(trainer.should_stop and trainer.current_epoch < trainer.max_epochs),
        "best_checkpoint": str(best),
        "resumed_from": str(resume_ckpt) if resume_ckpt else None,
        **(task.report(module, dm) if task.report is not None else {}),
        "history": epochs,
        "startup_s": history.startup_s,
        "threads": {"start": threads, "changes": thread_governor.changes if thread_governor is not None else []},
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "data": family.data_stats(dm) if family.data_stats is not None else None,
    }
    if "lis" in module.results:
        lis = module.results["lis"]
        lis["share_of_training_time"] = round(lis["wall_time_s"] / max(train_time, 1e-9), 4)
        results["lis"] = lis
    if trainer.world_size > 1:
        results["processes"] = trainer.world_size
    if writer:
        write_json(run_dir / "metrics.json", results)
        print_metrics(results, title=f"{cfg.run_name}: best epoch {best_epoch} (by {task.monitor})", run_dir=run_dir)
    return results


def _checkpoint_epoch(path: str | Path) -> int | None:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch"))
    except Exception:  # noqa: BLE001 - informational only
        return None


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from when ``resume`` is set (the CLI has already pointed run_dir at the run)."""
    if not cfg.get("resume"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if (run_dir / "metrics.json").is_file():
        raise ConfigError("this run already finished; nothing to resume", path=run_dir,
                          fix="start a new run (drop resume=...)")
    if not last.is_file():
        raise ConfigError("no last.ckpt to resume from", path=last,
                          fix="the run stopped before its first epoch ended; start it again without resume")
    if readable_checkpoint(last):
        return last
    before = run_dir / "checkpoints" / "best.ckpt"  # the one before: written at an earlier (or the same) epoch
    if before.is_file() and readable_checkpoint(before):
        from recx.console import console

        console(stderr=True).print(f"warning: {last} is truncated or unreadable; resuming from {before} instead",
                                   markup=False)
        return before
    raise CheckpointError("the run's last.ckpt is truncated or unreadable, and there is no readable checkpoint "
                          "before it", path=last, fix="start the run again without resume")


def readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a complete torch checkpoint (a zip archive whose members all pass their CRC check)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


# -------------------------------------------------------------------------------------------------------------- eval
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Re-score a checkpoint with the training run's data, model and evaluator; write ``metrics.json``."""
    import lightning.pytorch as pl

    from recx.console import print_metrics

    quiet_lightning()
    ckpt_path = Path(cfg.ckpt)
    ckpt = load_checkpoint(ckpt_path)
    run_cfg = OmegaConf.create(ckpt["recx"]["config"])
    if cfg.get("metric") is not None:
        run_cfg.metric = OmegaConf.merge(run_cfg.metric, cfg.metric)
    run_cfg.hardware = cfg.hardware
    run_cfg.paths.data_dir = cfg.paths.data_dir
    run_cfg.progress = cfg.get("progress", "auto")
    run_cfg.logger = None
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_cfg.paths.run_dir = str(run_dir)
    check_hardware(run_cfg.hardware)
    pl.seed_everything(run_cfg.seed, workers=True, verbose=False)

    family = families.of(run_cfg)
    dm = family.datamodule(run_cfg) if family.datamodule is not None else None
    if dm is None:
        raise ConfigError(f"model '{run_cfg.model.name}' has no checkpoint evaluation", field="ckpt")
    dm.prepare_data()
    dm.setup("test")
    task = family.task(run_cfg, dm, families.Life(run_dir=run_dir, log=lambda m: None, train=train))
    if not isinstance(task, families.Trainable):
        raise ConfigError(f"model '{run_cfg.model.name}' has no checkpoint evaluation", field="ckpt",
                          fix="run it with `recx train`")
    module, net = task.module, task.net
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit the model: {str(exc).splitlines()[0]}", path=ckpt_path,
                              fix="the dataset or model config changed since training; evaluate with the "
                                  "original data") from exc
    new_items = None
    if cfg.get("new_items"):
        if family.new_items is None:
            raise ConfigError("this checkpoint's model cannot score items unseen in training", field="new_items",
                              fix="train an ID-free model: model=motor (item_representation=motor)")
        new_items = family.new_items[0](net, cfg.new_items)
    trainer = build_trainer(run_cfg, run_dir, [])
    split = cfg.get("split", "test")
    if split == "test":
        trainer.test(module, datamodule=dm, verbose=False)
    elif split == "valid":
        trainer.validate(module, datamodule=dm, verbose=False)
    else:
        raise ConfigError(f"unknown split '{split}'", field="split", fix="use split=test or split=valid")
    results = {
        "status": "completed",
        "checkpoint": str(ckpt_path),
        "model": run_cfg.model.name,
        "dataset": run_cfg.dataset.name,
        "epoch": ckpt.get("epoch"),
        split: module.results.get(split, {}),
    }
    if new_items is not None:
        results["new_items"] = family.new_items[1](net, cfg.new_items, new_items, dm.data.n_users,
                                                   cfg.get("new_items_k", 20), run_dir)
    if is_global_zero():
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
        write_json(run_dir / "conventions.json", task.conventions)
        write_json(run_dir / "metrics.json", results)
        print_metrics(results, title=f"eval {ckpt_path}", run_dir=run_dir)
    return results


# the top-N commands `recx eval lis` and `recx eval metric=feature_quality` live with LIS
from recx.lis.commands import evaluate_feature_quality, evaluate_lis  # noqa: E402,F401
