"""The BMA plug-in (`model=<backbone> +plugin=bma`): it changes the backbone's scores, trains, survives eval from its
checkpoint, and refuses backbones whose vectors do not fit."""

from __future__ import annotations

import pytest
import torch

from recx.errors import ConfigError
from recx.run import build_datamodule, build_net, evaluate, train
from tests.cli.test_runs import eval_cfg
from tests.models.test_zoo import build, compose


@pytest.mark.parametrize("backbone", ["lightgcn", "lattice", "freedom"])
def test_plugin_changes_scores_and_every_part_gets_gradients(backbone, tmp_path):
    cfg, dm, net = build(f"model={backbone}", "+plugin=bma", run_dir=tmp_path)
    users = torch.arange(8)
    with torch.no_grad():
        net.eval()
        fused, own = net.score(users), net.backbone.score(users)
    assert not torch.allclose(fused, own)
    net.train()
    net.on_epoch_start(0)
    net.loss({k: v[:256] for k, v in dm.epoch_triplets(0).items()}).backward()
    assert net.modal.projections[0].net[-1].weight.grad.abs().sum() > 0
    assert net.backbone.user_embedding.weight.grad.abs().sum() > 0


def test_plugin_trains_learns_and_its_checkpoint_evaluates(tmp_path):
    run_dir = tmp_path / "run"
    results = train(compose("model=lightgcn", "+plugin=bma", "trainer.max_epochs=8", "model.lr=0.01",
                            "callbacks.lis.enabled=false", run_dir=run_dir))
    pop = train(compose("model=pop", "callbacks.lis.enabled=false", run_dir=tmp_path / "pop"))
    assert results["model"] == "lightgcn+bma"
    assert results["test"]["recall@20"] > 1.5 * pop["test"]["recall@20"]
    again = evaluate(eval_cfg(results["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == results["test"]


def test_plugin_refuses_backbones_with_other_vector_widths(tmp_path):
    cfg = compose("model=vbpr", "+plugin=bma", run_dir=tmp_path)  # VBPR items are [θ_i; E f_i]: 2 × 64 wide
    dm = build_datamodule(cfg)
    dm.setup("fit")
    with pytest.raises(ConfigError, match="BMA needs 64-d"):
        build_net(cfg.model, dm.data, cfg.plugin)
