"""The learning-to-rank family: query-list datamodules (optionally with a click simulator), LTR networks and the
:class:`~recx.ltr.module.LTRModule` evaluator (builders in :mod:`recx.ltr.recipe`)."""

from __future__ import annotations

from omegaconf import DictConfig

from recx.families import Family, Trainable
from recx.ltr import recipe
from recx.runtools import count_parameters, model_reports


def task(cfg: DictConfig, dm, life) -> Trainable:
    net = recipe.build_net(cfg.model, dm)
    return Trainable(module=recipe.build_module(cfg, net), monitor=f"val/{cfg.metric.monitor}", net=net,
                     report=lambda module, dm: {"n_parameters": count_parameters(net), **model_reports(net)},
                     conventions=recipe.conventions(cfg, dm),
                     max_epochs=None if any(p.requires_grad for p in net.parameters()) else 1)


FAMILY = Family(name="ltr", metric="ltr", task=task, datamodule=recipe.build_datamodule,
                build_net=lambda model_cfg, dm, plugin=None: recipe.build_net(model_cfg, dm),
                data_stats=lambda dm: dm.data.stats())
