"""The top-N family: interaction datamodules, ``recx.topn.models`` networks (optionally inside a plug-in), the
:class:`~recx.topn.module.TopNModule` evaluator and its conventions, and the LIS callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError, DataError
from recx.families import Family, Trainable
from recx.runtools import construct, count_parameters, model_class, model_reports


def build_datamodule(cfg: DictConfig):
    """The family datamodule named by ``dataset.datamodule``, loading only the modalities the model reads."""
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
        "model_keys": protocol_model_keys(cfg, protocol.get("name", "recx")),
    }


def protocol_model_keys(cfg: DictConfig, name: str) -> dict[str, Any]:
    """The model keys the protocol's per-model file sets (``conf/protocol_model/<protocol>_<model>.yaml``, e.g.
    LATTICE's ``ui_norm``, ``projection_init``) with the values this run used (a command-line override shows)."""
    from recx.config_paths import search_dirs

    file = Path("protocol_model") / f"{name}_{cfg.model.get('name')}.yaml"
    path = next((d / file for d in search_dirs() if (d / file).is_file()), None)
    if path is None:
        return {}
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {str(k): model.get(k) for k in OmegaConf.load(path).keys()}


def build_net(model_cfg: DictConfig, data, plugin: DictConfig | None = None):
    """Instantiate the model from its flat config: ``_target_`` + constructor args (module/meta keys removed).

    With a ``plugin`` node (``+plugin=bma``), the plug-in is built around the model, which it receives as its
    ``backbone`` config (as MOTOR receives its backbone).
    """
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
    from recx.topn.models.base import MODULE_KEYS
    from recx.topn.module import TopNModule

    optim = {k: cfg.model[k] for k in MODULE_KEYS if k in cfg.model}
    return TopNModule(net, metrics=list(cfg.metric.metrics), ks=list(cfg.metric.ks), monitor=cfg.metric.monitor,
                      scorer=cfg.metric.get("scorer", "torch"),
                      memory_budget_mb=cfg.metric.get("memory_budget_mb", 256),
                      cold_threshold=cfg.metric.get("cold_threshold"), seed=cfg.seed,
                      metric_decimals=protocol_of(cfg).get("metric_decimals"),
                      during_training=cfg.metric.get("during_training", "accuracy"), **optim)


def conventions(cfg: DictConfig, dm) -> dict:
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


def task(cfg: DictConfig, dm, life) -> Trainable:
    net = build_net(cfg.model, dm.data, cfg.get("plugin"))
    module = build_module(cfg, net)
    callbacks = []
    if wants_lis(cfg):
        from recx.callbacks.lis import LeakageImpactCallback

        callbacks.append(LeakageImpactCallback(**lis_settings(cfg)))
    trainable = any(p.requires_grad for p in net.parameters())
    label = cfg.model.name + (f"+{cfg.plugin.name}" if cfg.get("plugin") else "")
    run_conventions = conventions(cfg, dm)
    notice = reconstruction_notice(net)
    if notice is not None:  # a part of the paper that recx reconstructs: said wherever the run names its model
        label += f" [{notice['label']}]"
        run_conventions["reconstruction"] = notice["note"]
        life.log(f"note: {label}: {notice['note']}")

    def report(module, dm) -> dict:
        return {"n_parameters": count_parameters(net), **model_reports(net),
                **({"reconstruction": notice["note"]} if notice is not None else {})}

    return Trainable(module=module, monitor=f"val/{cfg.metric.monitor}", net=net, report=report,
                     conventions=run_conventions, callbacks=callbacks, max_epochs=None if trainable else 1,
                     model_label=label)


def reconstruction_notice(net) -> dict[str, str] | None:
    """``{label, note}`` when the model (or a plug-in's backbone) runs a part that recx reconstructs rather than
    takes from the paper's code (AlignRec's stage 1); None otherwise."""
    for part in (net, getattr(net, "backbone", None)):
        if part is not None and hasattr(part, "reconstruction_notice"):
            notice = part.reconstruction_notice()
            if notice is not None:
                return notice
    return None


# ------------------------------------------------------------------------- `recx eval ckpt=... new_items=<file>`
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


FAMILY = Family(name="topn", metric="topk", task=task, datamodule=build_datamodule, build_net=build_net,
                data_stats=lambda dm: dm.data.stats(), new_items=(read_new_items_file, score_new_items_file))
