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

from recx.errors import CheckpointError, ConfigError, DataError, TrainingError



# --------------------------------------------------------------------------------------------------- building blocks
def construct(node: Any, **runtime: Any):
    """Instantiate a ``_target_`` config node, passing ``runtime`` objects (data, sources) as they are.

    Hydra's ``instantiate(cfg, **kwargs)`` would merge the kwargs into the config first, turning dataclass objects
    such as :class:`~recx.data.interactions.InteractionData` into config nodes; here they bypass the config.
    Nested nodes are passed as plain dicts (a wrapper model such as MOTOR builds its own backbone from one).
    """
    from hydra.utils import get_object

    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = params.pop("_target_")
    return get_object(target)(**params, **runtime)  # a class or a factory function


def model_class(model_cfg: DictConfig):
    from hydra.utils import get_class

    try:
        return get_class(model_cfg._target_)
    except Exception as exc:  # noqa: BLE001 - hydra wraps import errors in several types
        raise ConfigError(f"cannot import model class '{model_cfg._target_}'", field="model._target_",
                          fix="check the class path in conf/model/<name>.yaml") from exc


def is_ltr(cfg: DictConfig) -> bool:
    return cfg.model.get("family") == "ltr"


def build_datamodule(cfg: DictConfig):
    """The family datamodule named by ``dataset.datamodule``, loading only the modalities the model reads."""
    if is_ltr(cfg):
        from recx.ltr import recipe

        return recipe.build_datamodule(cfg)
    uses_features = bool(getattr(model_class(cfg.model), "uses_features", False)) or bool(cfg.get("plugin"))
    modalities = tuple(cfg.dataset.get("modalities") or ()) if uses_features else ()
    if uses_features and not modalities:
        raise ConfigError(f"model '{cfg.model.name}' reads item features but dataset '{cfg.dataset.name}' lists no "
                          "modalities", field="dataset.modalities",
                          fix="set dataset.modalities=[...] or choose an ID-based model (bpr, lightgcn)")
    negatives = str(protocol_of(cfg).get("negatives") or "catalogue")
    # passed only when it differs from the default, so a user's own datamodule need not know the key
    protocol_kwargs = {} if negatives == "catalogue" else {"negatives": negatives}
    return construct(
        cfg.dataset.datamodule,
        source=construct(cfg.dataset.source),
        split=construct(cfg.dataset.split),
        modalities=list(modalities),
        data_dir=cfg.paths.data_dir,
        mask_valid_at_test=cfg.metric.get("mask_valid_at_test", True),
        eval_memory_budget_mb=cfg.metric.get("memory_budget_mb", 256),
        seed=cfg.seed,
        **protocol_kwargs,
    )


def protocol_of(cfg: DictConfig) -> dict[str, Any]:
    """The run's evaluation/training protocol node (``protocol=recx|mmrec``); ``{}`` for configs without one (old
    checkpoints, library use)."""
    node = cfg.get("protocol")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def build_net(model_cfg: DictConfig, data, plugin: DictConfig | None = None):
    """Instantiate the model from its flat config: ``_target_`` + constructor args (module/meta keys removed).

    With a ``plugin`` node (``+plugin=bma``), the plug-in is built around the model, which it receives as its
    ``backbone`` config (as MOTOR receives its backbone).
    """
    if model_cfg.get("family") == "ltr":
        from recx.ltr import recipe

        return recipe.build_net(model_cfg, data)
    from recx.topn.models.base import META_KEYS, MODULE_KEYS

    net_cfg = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
               if k not in MODULE_KEYS + META_KEYS}
    model_class(model_cfg)  # a clear error for a bad _target_
    if plugin:
        backbone = {**net_cfg, "name": model_cfg.get("name")}
        net_cfg = {k: v for k, v in OmegaConf.to_container(plugin, resolve=True).items() if k not in META_KEYS}
        net_cfg["backbone"] = backbone
    try:
        return construct(net_cfg, data=data)
    except TypeError as exc:
        raise ConfigError(f"bad model arguments for {model_cfg._target_}: {exc}", field="model",
                          fix="check the keys in conf/model/<name>.yaml and your overrides") from exc


def build_module(cfg: DictConfig, net):
    if is_ltr(cfg):
        from recx.ltr import recipe

        return recipe.build_module(cfg, net)
    from recx.topn.models.base import MODULE_KEYS
    from recx.topn.module import TopNModule

    optim = {k: cfg.model[k] for k in MODULE_KEYS if k in cfg.model}
    return TopNModule(net, metrics=list(cfg.metric.metrics), ks=list(cfg.metric.ks), monitor=cfg.metric.monitor,
                      scorer=cfg.metric.get("scorer", "torch"),
                      memory_budget_mb=cfg.metric.get("memory_budget_mb", 256),
                      cold_threshold=cfg.metric.get("cold_threshold"), seed=cfg.seed,
                      metric_decimals=protocol_of(cfg).get("metric_decimals"), **optim)


def check_hardware(hardware: DictConfig) -> None:
    import torch

    if hardware.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("hardware asks for a GPU but torch sees no CUDA device", field="hardware.accelerator",
                          fix="use hardware=cpu (the installed torch is the CPU build unless you changed it)")
    if hardware.get("num_threads"):
        torch.set_num_threads(int(hardware.num_threads))


def is_global_zero() -> bool:
    """False in the extra processes of a DDP run (Lightning's launcher sets their rank in the environment)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def quiet_lightning() -> None:
    """Lightning's INFO chatter (accelerator lines, checkpoint restores, tips) stays in the log file, off the console."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*configure_optimizers. returned .None.*", ".*training_step. returned .None.*",
                    ".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*isinstance.treespec, LeafSpec.*",
                    ".*Checkpoint directory .* exists and is not empty.*",
                    ".*Sparse CSR tensor support is in beta.*", ".*Sparse invariant checks are implicitly disabled.*"):
        warnings.filterwarnings("ignore", message=pattern)


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


def conventions(cfg: DictConfig, dm) -> dict:
    if is_ltr(cfg):
        from recx.ltr import recipe

        return recipe.conventions(cfg, dm)
    from recx.data.prepare import describe
    from recx.metrics.topk import CONVENTIONS

    return {
        **CONVENTIONS,
        "metrics": list(cfg.metric.metrics),
        "ks": list(cfg.metric.ks),
        "masked_at_validation": ["train"],
        "masked_at_test": ["train", "valid"] if dm.mask_valid_at_test else ["train"],
        "evaluated_users": "users with at least one held-out item in the split; the others are counted as skipped",
        "cold_items": (f"cold/* metrics: the same top-K lists judged only on held-out items with at most "
                       f"{cfg.metric.get('cold_threshold')} training interactions, over users who have such items")
        if cfg.metric.get("cold_threshold") is not None else None,
        "model_selection": f"checkpoint with the best validation {cfg.metric.monitor}; test metrics are never used "
                           "for selection or early stopping",
        "split": describe(dm.split_strategy) if dm.split_strategy is not None else None,
        "protocol": protocol_conventions(cfg, dm),
    }


def protocol_conventions(cfg: DictConfig, dm) -> dict[str, Any]:
    """Which protocol ran and what it switched (conventions.json): negatives, rounding, stopping, the regulariser."""
    protocol = protocol_of(cfg)
    early = cfg.callbacks.get("early_stopping") or {}
    return {
        "name": protocol.get("name", "recx"),
        "negatives": getattr(dm, "negatives", "catalogue"),
        "metric_decimals": protocol.get("metric_decimals"),
        "early_stopping": ({"monitor": f"val/{cfg.metric.monitor}", "stop_after_non_improving": early.get("patience"),
                            "improvement": f"strictly greater than the best (min_delta {early.get('min_delta', 0.0)})"}
                           if early.get("enabled", False) else None),
        "max_epochs": cfg.trainer.get("max_epochs"),
        "test_epoch": "the best validation epoch (its checkpoint)",
        "reg_form": cfg.model.get("reg_form"),
    }


def write_json(path: Path, payload: dict) -> None:
    from recx.data.interactions import atomic_write

    try:
        atomic_write(path, lambda f: f.write(json.dumps(payload, indent=2, default=str).encode()))
    except OSError as exc:  # a full disk or a read-only folder: the previous file, if any, is intact
        raise TrainingError(f"cannot write {path} ({exc.strerror or exc})", path=path,
                            fix="free disk space (or point RECX_OUTPUT_DIR elsewhere) and run again") from None


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def model_reports(net) -> dict[str, Any]:
    """What a model reports about itself: item-side parameters (ID table vs tokens), tokenizer distortion, ..."""
    from torch import nn

    out: dict[str, Any] = {}
    if hasattr(net, "item_parameter_count"):
        out["n_item_parameters"] = net.item_parameter_count()
    elif isinstance(getattr(net, "item_embedding", None), nn.Embedding):
        out["n_item_parameters"] = net.item_embedding.weight.numel()
    if hasattr(net, "tokenizer_report"):
        out["tokenizer"] = net.tokenizer_report()
    if hasattr(net, "feature_report"):
        out["features"] = net.feature_report()
    if hasattr(net, "propensities"):
        out["learned_propensity"] = [round(float(p), 4) for p in net.propensities()]
    return out


def lis_settings(cfg: DictConfig) -> dict[str, Any]:
    """The LIS evaluator's settings from a run config: ``callbacks.lis`` plus the metric and dataset keys it shares.

    The callback and ``recx eval lis`` both take their settings from here, so they measure the same thing.
    """
    lis = cfg.callbacks.get("lis") or {}
    return {
        "representations": list(lis.get("representations", ["model", "features"])),
        "preferences": list(lis.get("preferences", ["train", "valid", "test"])),
        "negatives": int(lis.get("negatives", 100)),
        "seed": int(lis.get("seed", 0)),
        "max_positives": int(lis.get("max_positives", 100_000)),
        "ks": list(cfg.metric.ks),
        "mask_valid_at_test": bool(cfg.metric.get("mask_valid_at_test", True)),
        "memory_budget_mb": cfg.metric.get("memory_budget_mb", 256),
        "modalities": list(cfg.dataset.get("modalities") or []),
    }


def wants_lis(cfg: DictConfig) -> bool:
    lis = cfg.callbacks.get("lis")
    return bool(lis is not None and lis.get("enabled", False) and cfg.model.get("family") == "topn")


# ------------------------------------------------------------------------------------------------------------- train
#: the families whose training runs through a Lightning Trainer, hence can use hardware=ddp
DDP_FAMILIES = ("topn", "ltr")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; return the metrics dict that is also written to ``metrics.json``."""
    family = cfg.model.get("family")
    if "ddp" in str(cfg.hardware.get("strategy", "")) and family not in DDP_FAMILIES:
        raise ConfigError(f"model '{cfg.model.name}' ({family}) trains in one process; hardware=ddp serves the "
                          f"Lightning families ({', '.join(DDP_FAMILIES)})", field="hardware.strategy",
                          fix="use hardware=gpu (one device) for this model")
    if cfg.model.get("family") == "interactive":  # MAGUS: a base top-N run, then the multi-round simulation
        from recx.interactive.recipe import run

        return run(cfg)
    if cfg.model.get("family") == "icl":  # in-context accuracy, optionally on FEEDER's pre-selected pool
        from recx.icl.recipe import run as run_icl

        return run_icl(cfg)
    if cfg.model.get("family") == "ecg":  # VQ-HBR, HeartLang pretraining, the linear probe
        from recx.ecg.recipe import run as run_ecg

        return run_ecg(cfg)
    if cfg.model.get("family") == "pathrec":  # DKT simulator / SRC and the learning-path baselines
        from recx.pathrec.recipe import run as run_pathrec

        return run_pathrec(cfg)
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from recx.console import print_metrics

    quiet_lightning()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    resume_ckpt = resume_checkpoint(cfg, run_dir)
    check_hardware(cfg.hardware)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    net = build_net(cfg.model, dm if is_ltr(cfg) else dm.data, cfg.get("plugin"))
    module = build_module(cfg, net)
    module.recx_config = OmegaConf.to_container(cfg, resolve=True)

    writer = is_global_zero()  # under DDP every process trains and evaluates; rank 0 alone writes the run's files
    if writer:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_json(run_dir / "conventions.json", conventions(cfg, dm))

    monitor = f"val/{cfg.metric.monitor}"
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=monitor, mode="max", save_top_k=1,
                                 auto_insert_metric_name=False, enable_version_counter=False)
    callbacks: list = [checkpoint]
    if cfg.callbacks.checkpoint.save_last:
        # Lightning's own save_last only refreshes last.ckpt when the best changes; resume needs every epoch.
        callbacks.append(ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                                         enable_version_counter=False))
    if cfg.callbacks.early_stopping.enabled:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=cfg.callbacks.early_stopping.patience,
                                       min_delta=cfg.callbacks.early_stopping.min_delta, check_finite=False))
    if wants_lis(cfg):
        from recx.callbacks.lis import LeakageImpactCallback

        callbacks.append(LeakageImpactCallback(**lis_settings(cfg)))
    callbacks += [construct(node) for node in cfg.callbacks.get("extra") or []]
    trainable = any(p.requires_grad for p in net.parameters())
    trainer = build_trainer(cfg, run_dir, callbacks, max_epochs=None if trainable else 1)

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
        "model": cfg.model.name + (f"+{cfg.plugin.name}" if cfg.get("plugin") else ""),
        "dataset": cfg.dataset.name,
        "seed": cfg.seed,
        "monitor": monitor,
        "valid": module.results.get("valid", {}),
        "test": module.results.get("test", {}),
        "best_epoch": best_epoch,
        "epochs_trained": trainer.current_epoch,
        "stopped_early": bool(trainer.should_stop and trainer.current_epoch < trainer.max_epochs),
        "best_checkpoint": str(best),
        "resumed_from": str(resume_ckpt) if resume_ckpt else None,
        "n_parameters": count_parameters(net),
        **model_reports(net),
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "data": dm.data.stats(),
    }
    if "lis" in module.results:
        lis = module.results["lis"]
        lis["share_of_training_time"] = round(lis["wall_time_s"] / max(train_time, 1e-9), 4)
        results["lis"] = lis
    if trainer.world_size > 1:
        results["processes"] = trainer.world_size
    if writer:
        write_json(run_dir / "metrics.json", results)
        print_metrics(results, title=f"{cfg.run_name}: best epoch {best_epoch} (by {monitor})", run_dir=run_dir)
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
def load_checkpoint(path: str | Path) -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path, fix="pass ckpt=<run>/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle error, wrong format...
        raise CheckpointError(f"checkpoint is unreadable ({exc.__class__.__name__})", path=path,
                              fix="it is truncated or not a recx checkpoint; use another (e.g. last.ckpt)") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or not (ckpt.get("recx") or {}).get("config"):
        raise CheckpointError("not a recx checkpoint (no recx run config inside)", path=path,
                              fix="pass a checkpoint written by `recx train`")
    return ckpt


def save_checkpoint(path: str | Path, model, cfg: DictConfig, extra: dict | None = None) -> None:
    """A recx checkpoint outside Lightning (families with their own loops): weights + the resolved run config
    (+ ``extra`` facts such as the number of skills), written atomically, readable by :func:`load_checkpoint`."""
    import torch

    from recx.data.interactions import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": model.state_dict(), "recx": {"config": OmegaConf.to_container(cfg, resolve=True),
                                                          "format": 1, **(extra or {})}}
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except OSError as exc:  # a full disk: the previous checkpoint is intact (temporary file + rename)
        kept = f"; the previous {path.name} is intact" if path.is_file() else ""
        raise TrainingError(f"cannot write the checkpoint {path} ({exc.strerror or exc}){kept}", path=path,
                            fix="free disk space (or point RECX_OUTPUT_DIR elsewhere) and run again") from None


def load_checkpoint_of(path: str | Path, model: str, label: str | None = None) -> tuple[dict, dict]:
    """``(checkpoint, its model config)`` when ``path`` is a recx checkpoint of ``model``; a CheckpointError naming
    what it holds otherwise (a DKT where a quantizer is expected, ...)."""
    ckpt = load_checkpoint(path)
    model_cfg = ckpt["recx"]["config"].get("model", {})
    if model_cfg.get("name") != model:
        raise CheckpointError(f"not a {label or model} checkpoint (model '{model_cfg.get('name')}')", path=path,
                              fix=f"pass the checkpoints/best.ckpt of a `recx train model={model}` run")
    return ckpt, model_cfg


def read_new_items_file(net, path: str):
    """Check that ``net`` is ID-free and read the new-items ``.npz`` for it (before any scoring is spent)."""
    from recx.topn.new_items import load_new_items

    if not hasattr(net, "new_item_vectors") or getattr(net, "tokens", None) is None:
        raise ConfigError("this checkpoint's model cannot score items unseen in training", field="new_items",
                          fix="train an ID-free model: model=motor (item_representation=motor)")
    features, pairs = load_new_items(path, list(net.tokens.quantizers))
    for name, quantizer in net.tokens.quantizers.items():
        if features[name].shape[1] != quantizer.dim:
            raise DataError(f"new-item features '{name}' have {features[name].shape[1]} dimensions, the model was "
                            f"trained on {quantizer.dim}", path=path, field=name,
                            fix="encode new items with the same feature extractor as the training items")
    return features, pairs


def score_new_items_file(net, path: str, loaded, n_users: int, k: int, run_dir: Path) -> dict[str, Any]:
    """Rank the items read by :func:`read_new_items_file` for every user; save ``new_items.pt``."""
    import torch

    from recx.topn.new_items import score_new_items

    features, pairs = loaded
    out = score_new_items(net, features, n_users, k=k, pairs=pairs)
    torch.save({key: out[key] for key in ("users", "top_items", "top_scores")}, run_dir / "new_items.pt")
    return {"file": str(path), "n_new_items": out["n_new_items"], "saved": str(run_dir / "new_items.pt"),
            **({"metrics": out["metrics"]} if "metrics" in out else {})}


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
    check_hardware(run_cfg.hardware)
    pl.seed_everything(run_cfg.seed, workers=True, verbose=False)

    dm = build_datamodule(run_cfg)
    dm.setup("test")
    net = build_net(run_cfg.model, dm if is_ltr(run_cfg) else dm.data, run_cfg.get("plugin"))
    module = build_module(run_cfg, net)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit the model: {str(exc).splitlines()[0]}", path=ckpt_path,
                              fix="the dataset or model config changed since training; evaluate with the "
                                  "original data") from exc
    new_items = read_new_items_file(net, cfg.new_items) if cfg.get("new_items") else None
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
        results["new_items"] = score_new_items_file(net, cfg.new_items, new_items, dm.data.n_users,
                                                    cfg.get("new_items_k", 20), run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
    write_json(run_dir / "conventions.json", conventions(run_cfg, dm))
    write_json(run_dir / "metrics.json", results)
    print_metrics(results, title=f"eval {ckpt_path}", run_dir=run_dir)
    return results


# ----------------------------------------------------------------------------------------------------------- eval lis
def evaluate_lis(cfg: DictConfig) -> dict[str, Any]:
    """``recx eval lis``: AIS/LIS from files, against a checkpoint's recommender (``ckpt=``) or popularity.

    With a checkpoint, its run's dataset, metric settings and model are used (exactly what its LIS callback saw);
    ``preference=`` / ``representation=`` choose what to measure. Writes ``metrics.json`` with the ``lis`` block.
    """
    import lightning.pytorch as pl
    import torch

    from recx.callbacks.lis import feature_loader
    from recx.console import print_lis
    from recx.lis import leakage_report, popularity_scores

    quiet_lightning()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_hardware(cfg.hardware)
    run_cfg, net, state = cfg, None, None
    if cfg.get("ckpt"):
        ckpt = load_checkpoint(cfg.ckpt)
        run_cfg = OmegaConf.create(ckpt["recx"]["config"])
        run_cfg.paths.data_dir = cfg.paths.data_dir
        state = ckpt["state_dict"]
    if run_cfg.dataset.get("family") != "topn":
        raise ConfigError(f"LIS scores top-N recommenders; dataset '{run_cfg.dataset.name}' is a "
                          f"{run_cfg.dataset.get('family')} dataset", field="dataset",
                          fix="choose a top-N dataset (synthetic_mm, ml100k, amazon_baby, ...)")
    pl.seed_everything(int(run_cfg.get("seed", 0)), verbose=False)
    dm = build_datamodule(run_cfg) if state is not None else construct(
        run_cfg.dataset.datamodule, source=construct(run_cfg.dataset.source), split=construct(run_cfg.dataset.split),
        data_dir=run_cfg.paths.data_dir)
    dm.prepare_data()
    dm.setup("test")
    device = torch.device("cuda" if cfg.hardware.accelerator in ("gpu", "cuda") else "cpu")
    if state is not None:
        net = build_net(run_cfg.model, dm.data, run_cfg.get("plugin"))
        module = build_module(run_cfg, net)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the model: {str(exc).splitlines()[0]}",
                                  path=cfg.ckpt, fix="evaluate with the data the model was trained on") from exc
        net = net.to(device).eval()
        base, base_name = net.score, run_cfg.model.name
    else:
        base, base_name = popularity_scores(dm.data, device), "popularity"
    settings = lis_settings(run_cfg)
    settings["representations"] = list(OmegaConf.to_container(cfg.representation, resolve=True)) \
        if OmegaConf.is_list(cfg.representation) else [str(cfg.representation)]
    settings["preferences"] = list(OmegaConf.to_container(cfg.preference, resolve=True)) \
        if OmegaConf.is_list(cfg.preference) else [str(cfg.preference)]
    if state is None and "model" in settings["representations"]:
        settings["representations"].remove("model")  # no trained model: nothing to take item vectors from
    started = time.perf_counter()
    with torch.no_grad():
        lis = leakage_report(dm.data, base, net=net, load_feature=feature_loader(dm), device=device, **settings)
    lis["wall_time_s"] = round(time.perf_counter() - started, 3)
    results = {"status": "completed", "task": "lis", "recommender": base_name, "dataset": run_cfg.dataset.name,
               "checkpoint": str(cfg.ckpt) if cfg.get("ckpt") else None, "lis": lis}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(run_dir / "metrics.json", results)
    print_lis(lis, title=f"LIS / AIS on {run_cfg.dataset.name} (recommender: {base_name})")
    console_path(run_dir)
    return results


def console_path(run_dir: Path) -> None:
    from recx.console import console

    console().print(f"run folder: {run_dir}", markup=False)


# ------------------------------------------------------------------------------------------------- feature quality
def feature_sets(specs, data, load_feature, modalities: list[str]) -> dict[str, dict[str, Any]]:
    """Feature-set specs → name → {modality: [n_items, d]}: ``features`` (all modalities together),
    ``feature:<m>``, or a vectors file (one set)."""
    from recx.lis.representation import load_vectors_file

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        spec = str(spec)
        if spec == "features":
            if not modalities:
                raise ConfigError(f"dataset '{data.name}' declares no modalities", field="features",
                                  fix="give feature:<modality> or a file instead")
            out["+".join(modalities)] = {m: load_feature(m) for m in modalities}
        elif spec.startswith("feature:"):
            name = spec.split(":", 1)[1]
            out[name] = {name: load_feature(name)}
        elif Path(spec).suffix in (".npy", ".npz") or Path(spec).exists():
            out[Path(spec).stem] = {Path(spec).stem: load_vectors_file(spec, data)[0]}
        else:
            raise ConfigError(f"unknown feature set '{spec}'", field="features",
                              fix="use features, feature:<modality>, or a path to an .npy/.npz of item vectors")
    return out


def evaluate_feature_quality(cfg: DictConfig) -> dict[str, Any]:
    """``recx eval metric=feature_quality``: zero-shot, item-CF and masked-modality rankings of feature sets."""
    from recx.callbacks.lis import feature_loader
    from recx.console import print_feature_quality
    from recx.lis.feature_quality import feature_quality

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.dataset.get("family") != "topn":
        raise ConfigError(f"feature quality ranks items for users; dataset '{cfg.dataset.name}' is a "
                          f"{cfg.dataset.get('family')} dataset", field="dataset", fix="choose a top-N dataset")
    dm = construct(cfg.dataset.datamodule, source=construct(cfg.dataset.source), split=construct(cfg.dataset.split),
                   data_dir=cfg.paths.data_dir)
    dm.prepare_data()
    dm.setup("test")
    specs = OmegaConf.to_container(cfg.features, resolve=True) if OmegaConf.is_list(cfg.features) else [cfg.features]
    sets = feature_sets(specs, dm.data, feature_loader(dm), list(cfg.dataset.get("modalities") or []))
    started = time.perf_counter()
    reports = {name: feature_quality(dm.data, features, ks=list(cfg.metric.ks), knn_k=int(cfg.knn_k),
                                     mask_ratio=float(cfg.mask_ratio), seed=int(cfg.seed), split=str(cfg.split),
                                     mask_valid_at_test=bool(cfg.metric.get("mask_valid_at_test", True)),
                                     memory_budget_mb=cfg.metric.get("memory_budget_mb", 256))
               for name, features in sets.items()}
    results = {"status": "completed", "task": "feature_quality", "dataset": cfg.dataset.name,
               "feature_quality": reports, "wall_time_s": round(time.perf_counter() - started, 3)}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(run_dir / "metrics.json", results)
    print_feature_quality(reports, title=f"feature quality on {cfg.dataset.name} ({cfg.split})")
    console_path(run_dir)
    return results
