"""AlignRec stage 2: each loss term on a hand case, the two lines against dense algebra, the full loss by hand.

Learning (beats BPR on cold items of synthetic_mm) and seed-determinism are covered by tests/models/test_zoo.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.run import build_net
from recx.topn.models.alignrec import fused_features, similarity_preservation
from tests.models.test_zoo import build, compose


def test_similarity_preservation_hand_case_and_gradient():
    # two orthogonal features: target cosine matrix = I; h = 2·I gives h hᵀ = 4·I, residual 3·I, ‖·‖_F = 3·√2, / B=2
    x = torch.eye(2)
    h = (2 * torch.eye(2)).requires_grad_(True)
    loss = similarity_preservation(h, x)
    assert loss.item() == pytest.approx(3 * 2 ** 0.5 / 2)
    loss.backward()
    with torch.no_grad():  # a small step against the gradient lowers the loss (h shrinks towards the identity)
        assert similarity_preservation(h - 0.01 * h.grad, x) < loss
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert similarity_preservation(perfect, x).item() == pytest.approx(0.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build("model=alignrec", run_dir=tmp_path_factory.mktemp("alignrec"))


def test_fused_features_have_unit_norm_and_weigh_modalities_equally(tiny):
    _, dm, _ = tiny
    x = fused_features(dm.data)
    assert torch.allclose(x.norm(dim=1), torch.ones(x.shape[0]), atol=1e-5)
    first = dm.data.item_features["image"].shape[1]
    assert torch.allclose(x[:, :first].norm(dim=1), torch.full((x.shape[0],), 0.5 ** 0.5), atol=1e-5)


def test_lines_match_dense_algebra(tiny):
    _, dm, net = tiny
    ids, content = net.lines()
    n_users = dm.data.n_users
    adjacency = net.adjacency.to_dense()
    ego = torch.cat([net.user_embedding.weight, net.item_embedding.weight])
    expected_ids = (ego + adjacency @ ego + adjacency @ adjacency @ ego) / 3  # LightGCN, 2 layers
    assert torch.allclose(ids, expected_ids, atol=1e-5)
    gate = torch.sigmoid(net.gate(net.content(net.features)))
    h_items = net.item_graph.to_dense() @ (net.item_embedding.weight * gate)
    assert torch.allclose(content[n_users:], h_items, atol=1e-5)
    assert torch.allclose(content[:n_users], adjacency[:n_users, n_users:] @ h_items, atol=1e-5)


def test_loss_is_the_sum_of_its_terms(tiny):
    _, dm, net = tiny
    batch = {k: v[:64] for k, v in dm.epoch_triplets(0).items()}
    ids, content = net.lines()
    z = ids + content
    n_users = dm.data.n_users
    u, i, j = z[batch["users"]], z[n_users + batch["pos"]], z[n_users + batch["neg"]]
    bpr = -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()
    reg = 0.5 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / 64

    def nce(a, b, t=0.2):
        logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t
        return -torch.log_softmax(logits, dim=1).diag().mean()

    rows = n_users + batch["pos"]
    cca = nce(content[rows], ids[rows]) + nce(content[batch["users"]], ids[batch["users"]])
    xp = F.normalize(net.initial_features[batch["pos"]], dim=1)
    sim = torch.linalg.norm(content[rows] @ content[rows].T - xp @ xp.T) / 64
    uia = (1 - F.cosine_similarity(u, i, dim=1)).mean()
    expected = bpr + net.reg_weight * reg + net.cl_weight * cca + net.sim_weight * sim + net.ui_cosine_weight * uia
    assert net.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
    # every auxiliary term moves the loss
    for name in ("cl_weight", "sim_weight", "ui_cosine_weight"):
        old = getattr(net, name)
        setattr(net, name, 0.0)
        assert net.loss(batch).item() != pytest.approx(expected.item(), rel=1e-6), name
        setattr(net, name, old)


def test_stage1_aligns_modalities_and_is_cached(tiny, monkeypatch):
    from recx.topn.models import alignrec_ica

    _, dm, net = tiny  # built with the default stage=both: stage 1 ran and cached its features
    assert net.source["source"].startswith("stage 1") and net.source["loss_last_epoch"] < net.source["loss_first_epoch"]
    cached = net.source["cached"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("stage 1 recomputed although its features are cached")

    monkeypatch.setattr(alignrec_ica, "pretrain_ica", must_not_run)
    x, report = alignrec_ica.cached_ica_features(dm.data, {m: f for m, f in dm.data.item_features.items()},
                                                 dim=128, epochs=50, lr=1e-3, temperature=0.2, seed=0)
    assert report["cached"] == cached and torch.allclose(x, net.initial_features)


def test_symmetric_info_nce_hand_case():
    from recx.topn.models.alignrec_ica import symmetric_info_nce

    a = torch.eye(2)
    # perfectly aligned unit pairs at temperature 1: each row's logits are [1, 0] -> loss = log(1 + e^-1)
    assert symmetric_info_nce(a, a, 1.0).item() == pytest.approx(float(torch.log(1 + torch.exp(torch.tensor(-1.0)))))
    swapped = a.flip(0)
    assert symmetric_info_nce(a, swapped, 1.0) > symmetric_info_nce(a, a, 1.0)


def test_stage_pretrain_trains_nothing_and_reports_feature_quality(tmp_path):
    from recx.run import train

    results = train(compose("model=alignrec", "model.stage=pretrain", run_dir=tmp_path / "pre"))
    assert results["epochs_trained"] == 1 and results["test"]["recall@20"] > 0  # one no-op epoch, as for Pop
    quality = results["features"]["feature_quality"]
    assert set(quality) == {"raw", "alignrec"} and "masked" in quality["raw"]
    assert quality["alignrec"]["zero_shot"]["recall@20"] > 0


def test_stage_train_reads_a_features_file_and_bad_stages_are_refused(tiny, tmp_path):
    import numpy as np

    from recx.errors import ConfigError

    cfg, dm, _ = tiny
    vectors = torch.randn(dm.data.n_items, 8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "unified.npy"
    np.save(path, vectors.numpy())  # synthetic raw item ids are 0..n-1
    model_cfg = dict(cfg.model)
    net = build_net(compose("model=alignrec", "model.stage=train", f"model.features={path}",
                            "model.report_feature_quality=false", run_dir=tmp_path).model, dm.data)
    assert net.source["source"] == "file" and torch.allclose(net.initial_features, vectors)
    assert model_cfg["stage"] == "both"
    with pytest.raises(ConfigError, match="unknown AlignRec stage"):
        build_net(compose("model=alignrec", "model.stage=finetune", run_dir=tmp_path).model, dm.data)
