"""How ``recx train|eval`` builds an LTR run from a composed config (the LTR counterpart of the top-N builders
in :mod:`recx.topn.family`): the datamodule with its optional click model, the model sized to the dataset's features, the
LightningModule, and the conventions written next to the metrics."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError


def click_model_of(cfg: DictConfig):
    """The configured click simulator, or None when training on labels (``click_model=none``)."""
    node = cfg.get("click_model")
    if node is None or node.get("_target_") is None:
        return None
    from recx.runtools import construct

    return construct(node)  # `name` is the preset make_click_model builds


def build_datamodule(cfg: DictConfig):
    """An LTR dataset's own datamodule, or the ``ltr`` view of a top-N dataset (``dataset.ltr``: an LTR source
    wrapping the dataset's source, e.g. ml100k's timeline windows, and its datamodule)."""
    from recx.runtools import construct

    source = construct(cfg.dataset.source)
    node = cfg.dataset
    if cfg.dataset.get("family") != "ltr":
        node = cfg.dataset.ltr
        source = construct(node.source, source=source)
    return construct(node.datamodule, source=source, click_model=click_model_of(cfg), data_dir=cfg.paths.data_dir,
                     seed=cfg.seed)


def build_net(model_cfg: DictConfig, dm) -> Any:
    from recx.ltr.models.base import META_KEYS, MODULE_KEYS
    from recx.runtools import construct, model_class

    model_class(model_cfg)
    net_cfg = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
               if k not in MODULE_KEYS + META_KEYS}
    try:
        net = construct(net_cfg, n_features=dm.n_features)
    except TypeError as exc:
        raise ConfigError(f"bad model arguments for {model_cfg._target_}: {exc}", field="model",
                          fix="check the keys in conf/model/<name>.yaml and your overrides") from exc
    learns = getattr(net, "learns_from", "either")
    if learns == "clicks" and not dm.clicks:
        raise ConfigError(f"model '{model_cfg.name}' learns from clicks, and no click model is configured",
                          field="click_model", fix="add click_model=pbm (or ubm, cascade, ...)")
    if learns == "labels" and dm.clicks:
        raise ConfigError(f"model '{model_cfg.name}' trains on relevance labels only", field="click_model",
                          fix="drop click_model=..., or use a click model (listnet, ips_listnet, dla, inforank)")
    return net


def build_module(cfg: DictConfig, net):
    from recx.ltr.models.base import MODULE_KEYS
    from recx.ltr.module import LTRModule

    optim = {k: cfg.model[k] for k in MODULE_KEYS if k in cfg.model}
    return LTRModule(net, ks=list(cfg.metric.ks), monitor=cfg.metric.monitor,
                     idcg_zero=cfg.metric.get("idcg_zero", "zero"), max_label=cfg.metric.get("max_label"),
                     simulated_clicks=cfg.metric.get("simulated_clicks", True),
                     seed=cfg.seed, **optim)


def conventions(cfg: DictConfig, dm) -> dict:
    from recx.metrics.ltr import CONVENTIONS

    click = cfg.get("click_model")
    clicks = None
    if dm.clicks:
        clicks = {**OmegaConf.to_container(click, resolve=True), **(dm.logged or {}).get("info", {}),
                  "impressions_per_query": dm.impressions_per_query,
                  "popularity_feature": dm.popularity_feature,
                  "training_signal": "simulated clicks on the logged top-cutoff lists, re-sampled every epoch"}
    return {
        **CONVENTIONS,
        "ks": list(cfg.metric.ks),
        "idcg_zero": cfg.metric.get("idcg_zero", "zero"),
        "evaluated_on": "true relevance labels of the full validation/test lists",
        "training_signal": "relevance labels" if clicks is None else "clicks",
        "clicks": clicks,
        "model_selection": f"checkpoint with the best validation {cfg.metric.monitor}; test metrics are never used "
                           "for selection or early stopping",
        "data": dm.data.meta if hasattr(dm.data, "meta") else None,
    }
