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


def test_one_ranking_loss_by_default_and_the_backbone_loss_only_on_request(tmp_path, monkeypatch):
    """DRepMRec trains through the fused vectors: the backbone's own (ranking) loss is not added unless asked for."""
    cfg, dm, net = build("model=lightgcn", "+plugin=bma", run_dir=tmp_path)
    batch = {k: v[:128] for k, v in dm.epoch_triplets(0).items()}
    calls = []
    own = net.backbone.loss
    monkeypatch.setattr(net.backbone, "loss", lambda b: calls.append(1) or own(b))
    net.train()
    net.on_epoch_start(0)
    torch.manual_seed(0)
    fused_only = net.loss(batch)
    assert calls == []
    net.backbone_loss = True
    torch.manual_seed(0)
    both = net.loss(batch)
    assert calls == [1]
    torch.manual_seed(0)
    assert torch.allclose(both, fused_only + own(batch))


def test_the_loss_sees_freedoms_pruned_graph_not_its_scoring_graph(tmp_path):
    cfg, dm, net = build("model=freedom", "model.dropout=0.8", "+plugin=bma", run_dir=tmp_path)
    net.train()
    net.on_epoch_start(0)
    train_u, train_i = net.backbone.training_vectors()
    score_u, score_i = net.backbone.user_item_vectors()
    assert not torch.allclose(train_u, score_u)  # 80 % of the edges pruned: another graph
    behaviour_u, _ = net._behaviour(training=True)
    assert torch.allclose(behaviour_u, train_u)
