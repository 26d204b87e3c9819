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
    cfg, dm, net = tiny
    batch = {k: v[:64] for k, v in dm.epoch_triplets(0).items()}
    ids, content = net.lines()
    z = ids + content
    n_users = dm.data.n_users
    u, i, j = z[batch["users"]], z[n_users + batch["pos"]], z[n_users + batch["neg"]]
    bpr = -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()
    # released: the regulariser divides by the configured batch size (here 512), not by this batch's 64
    configured = cfg.dataset.datamodule.batch_size
    assert net.reg_batch_size == configured and configured != 64
    reg = 0.5 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / configured

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
    # reg_batch_size=null: each batch's own size (recx's earlier choice) -> the regulariser weighs configured/64 more
    net.reg_batch_size = None
    try:
        more = net.reg_weight * reg * (configured / 64 - 1)
        assert net.loss(batch).item() == pytest.approx((expected + more).item(), rel=1e-5)
    finally:
        net.reg_batch_size = configured


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


def test_linear_init_torch_is_nn_linear_and_xavier_zeroes_the_biases(tmp_path):
    _, dm, released = build("model=alignrec", "model.stage=train", "model.report_feature_quality=false",
                            run_dir=tmp_path)
    _, _, xavier = build("model=alignrec", "model.stage=train", "model.report_feature_quality=false",
                         "model.linear_init=xavier", run_dir=tmp_path)
    for name in ("content", "gate"):
        torch_layer, xavier_layer = getattr(released, name), getattr(xavier, name)
        fan_out, fan_in = torch_layer.weight.shape
        # nn.Linear: kaiming_uniform(a=√5) weights and biases both within ±1/√fan_in, biases not zero
        assert torch_layer.weight.abs().max() <= fan_in ** -0.5 and torch_layer.bias.abs().sum() > 0
        assert torch_layer.bias.abs().max() <= fan_in ** -0.5
        assert torch.equal(xavier_layer.bias, torch.zeros_like(xavier_layer.bias))
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert xavier_layer.weight.abs().max() <= bound and xavier_layer.weight.abs().max() > fan_in ** -0.5
    with pytest.raises(Exception, match="linear_init"):
        build("model=alignrec", "model.stage=train", "model.linear_init=normal", run_dir=tmp_path)


def test_knn_signed_weights_keep_negative_cosines_hand_case():
    from recx.errors import ConfigError
    from recx.topn.knn import knn_graph

    # cos(0,1)=0, cos(0,2)=-0.6, cos(1,2)=0.8; k=3 keeps every item (itself included)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.6, 0.8]])
    cos = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T
    degree = cos.sum(1)  # 0.4, 1.8, 1.2: MMRec's row sums of the kNN matrix
    expected = cos / (degree.unsqueeze(1) * degree.unsqueeze(0)).sqrt()
    signed = knn_graph(x, 3, weighting="signed", normalization="sym").to_dense()
    assert torch.allclose(signed, expected, atol=1e-5) and signed[0, 2] < 0
    clamped = knn_graph(x, 3, weighting="similarity", normalization="sym").to_dense()
    assert clamped[0, 2] == 0 and clamped.min() >= 0
    # every neighbour of item 0 strongly opposed: its row sum is negative and D^-1/2 undefined -> a clear error
    opposed = torch.tensor([[1.0, 0.0], [-1.0, 0.01], [-1.0, -0.01]])
    with pytest.raises(ConfigError, match="knn_negatives=clamp"):
        knn_graph(opposed, 3, weighting="signed")


def test_knn_negatives_key_switches_the_models_item_graph(tiny, tmp_path):
    import numpy as np

    cfg, dm, _ = tiny
    n = dm.data.n_items
    vectors = torch.randn(n, 32, generator=torch.Generator().manual_seed(1))  # random: half the cosines negative
    path = tmp_path / "unified.npy"
    np.save(path, vectors.numpy())
    k = n // 2 + 5  # enough neighbours to reach negative cosines
    common = ("model=alignrec", "model.stage=train", f"model.features={path}", f"model.knn_k={k}",
              "model.report_feature_quality=false")
    keep = build_net(compose(*common, run_dir=tmp_path).model, dm.data).item_graph.to_dense()
    clamp = build_net(compose(*common, "model.knn_negatives=clamp", run_dir=tmp_path).model, dm.data)
    clamp = clamp.item_graph.to_dense()
    assert keep.min() < 0 and clamp.min() >= 0
    # keep = MMRec's build_knn_normalized_graph in dense algebra: top-k cosines, D = row sums, D^-1/2 S D^-1/2
    cos = F.normalize(vectors, dim=1) @ F.normalize(vectors, dim=1).T
    values, idx = cos.topk(k, dim=1)
    dense = torch.zeros_like(cos).scatter_(1, idx, values)
    d = dense.sum(1).pow(-0.5)
    assert torch.allclose(keep, d.unsqueeze(1) * dense * d.unsqueeze(0), atol=1e-5)


def test_features_folder_reads_image_feat_npy_as_the_released_code(tiny, tmp_path):
    import numpy as np

    from recx.errors import DataError

    cfg, dm, _ = tiny
    vectors = torch.randn(dm.data.n_items, 8, generator=torch.Generator().manual_seed(2))
    flat = tmp_path / "beit3"
    flat.mkdir()
    np.save(flat / "image_feat.npy", vectors.numpy())
    # the released --multimodal_data_dir layout: <dir>/<dataset>_<dir name>/image_feat.npy, <dataset> the end of
    # recx's dataset name (an MMRec folder 'baby' is dataset 'mmrec-baby'); another dataset's sub-folder beside it
    nested = tmp_path / "unified"
    short = dm.data.name.split("_")[-1]
    for name, scale in ((short, 2), ("other", 3)):
        (nested / f"{name}_unified").mkdir(parents=True)
        np.save(nested / f"{name}_unified" / "image_feat.npy", (scale * vectors).numpy())
    for folder, scale in ((flat, 1), (nested, 2)):
        net = build_net(compose("model=alignrec", "model.stage=train", f"model.features={folder}",
                                "model.report_feature_quality=false", run_dir=tmp_path).model, dm.data)
        assert net.source["file"].endswith("image_feat.npy") and torch.allclose(net.initial_features, scale * vectors)
        assert net.reconstruction_notice() is None  # no stage 1 ran: nothing to label
    empty = tmp_path / "empty"
    (empty / "other_empty").mkdir(parents=True)
    np.save(empty / "other_empty" / "image_feat.npy", vectors.numpy())  # another dataset's features only
    with pytest.raises(DataError, match=r"image_feat.npy for dataset .* it holds \['other_empty'\]"):
        build_net(compose("model=alignrec", "model.stage=train", f"model.features={empty}",
                          run_dir=tmp_path).model, dm.data)


def test_a_stage1_run_says_it_is_recx_reconstruction(tmp_path, capsys):
    import json

    from recx.report import report_run
    from recx.run import train

    run_dir = tmp_path / "pre"
    results = train(compose("model=alignrec", "model.stage=pretrain", "model.report_feature_quality=false",
                            run_dir=run_dir))
    label = "alignrec [stage 1: recx reconstruction]"
    assert results["model"] == label and "reconstruction" in results["reconstruction"]
    assert "recx's reconstruction" in json.loads((run_dir / "conventions.json").read_text())["reconstruction"]
    assert json.loads((run_dir / "metrics.json").read_text())["model"] == label
    assert f"note: {label}" in capsys.readouterr().out.replace("\n", " ")
    report_run(run_dir)
    report = (run_dir / "report.md").read_text()
    assert report.startswith(f"# Run report: {label}") and "Reconstruction: AlignRec's stage 1" in report


def test_a_checkpoint_from_before_the_released_defaults_keeps_its_knn(tmp_path):
    """An AlignRec checkpoint written before `knn_negatives`/`linear_init`/`reg_batch_size` existed was trained with
    clamped kNN weights: loading it fills those keys with the earlier behaviour, so `recx eval` rebuilds its graph as
    trained; a checkpoint that has the keys keeps its own values."""
    from recx.runtools import EARLIER_BEHAVIOUR, load_checkpoint
    from recx.topn.models.alignrec import KNN_NEGATIVES, LINEAR_INITS

    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {}, "recx": {"config": {"model": {"name": "alignrec", "knn_k": 10}}}}, old)
    model = load_checkpoint(old)["recx"]["config"]["model"]
    assert model == {"name": "alignrec", "knn_k": 10, "knn_negatives": "clamp", "linear_init": "xavier",
                     "reg_batch_size": None}
    assert EARLIER_BEHAVIOUR["alignrec"]["knn_negatives"] in KNN_NEGATIVES
    assert EARLIER_BEHAVIOUR["alignrec"]["linear_init"] in LINEAR_INITS
    new = tmp_path / "new.ckpt"
    torch.save({"state_dict": {}, "recx": {"config": {"model": {"name": "alignrec", "knn_negatives": "keep",
                                                                 "linear_init": "torch", "reg_batch_size": 64}}}}, new)
    assert load_checkpoint(new)["recx"]["config"]["model"]["knn_negatives"] == "keep"
