"""protocol=mmrec: each switch it makes, alone, against recx's default (which must stay as it was)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recx import cli
from recx.errors import ConfigError
from recx.topn.losses import l2_penalty
from recx.topn.sampling import pair_keys, sample_negatives


def prepared(cfg):
    """The datamodule of ``cfg``, set up for fitting (its ``data`` is what a top-N model is built from)."""
    from recx.run import build_datamodule

    dm = build_datamodule(cfg)
    dm.setup("fit")
    return dm


def seeded_net(cfg, dm, seed: int = 0):
    """``cfg``'s model built on ``dm.data`` after ``torch.manual_seed(seed)`` (reproducible initial weights)."""
    from recx.run import build_net

    torch.manual_seed(seed)
    return build_net(cfg.model, dm.data)


def test_emb_form_is_mmrecs_embloss_unsquared_norms_over_batch():
    a, b = torch.full((4, 3), 2.0), torch.full((4, 3), 1.0)
    # ‖a‖_F = sqrt(12·4) = sqrt(48), ‖b‖_F = sqrt(12); EmbLoss divides the sum by the batch size (4)
    assert l2_penalty(a, b, batch_size=4, form="emb").item() == pytest.approx((48 ** 0.5 + 12 ** 0.5) / 4)
    assert l2_penalty(a, b, batch_size=4).item() == pytest.approx((48 + 12) / 8)  # recx default: ½Σ‖·‖²/B
    with pytest.raises(ConfigError, match="reg_form"):
        l2_penalty(a, batch_size=4, form="l1")


def test_pool_restricts_negatives_to_training_items():
    users = torch.zeros(5000, dtype=torch.long)
    seen = pair_keys(torch.tensor([[0, 1]]), 10)
    g = torch.Generator().manual_seed(0)
    everywhere = sample_negatives(users, 10, seen, g)
    assert set(everywhere.tolist()) == set(range(10)) - {1}
    pool = torch.tensor([1, 3, 4])
    restricted = sample_negatives(users, 10, seen, g, pool=pool)
    assert set(restricted.tolist()) == {3, 4}  # never outside the pool, never the user's own training item


def test_datamodule_train_items_never_samples_heldout_only_items(compose_train):
    dm = prepared(compose_train("model=bpr", "protocol=mmrec"))
    in_train = torch.zeros(dm.data.n_items, dtype=torch.bool)
    in_train[dm.data.train[:, 1]] = True
    # make some items held-out only: drop their training rows
    dropped = torch.arange(0, dm.data.n_items, 7)
    keep = ~torch.isin(dm.data.train[:, 1], dropped)
    dm.data.train = dm.data.train[keep]
    dm._train_keys, dm._negative_pool = None, None
    dm.setup("fit")
    neg = dm.epoch_triplets(0)["neg"]
    assert not torch.isin(neg, dropped).any()
    assert dm.negatives == "train_items"
    with pytest.raises(ConfigError, match="protocol.negatives"):
        type(dm)(data=dm.data, negatives="popular")


def test_protocol_mmrec_composes_mmrecs_settings_and_recx_stays_default():
    mm = cli.compose("train", ["model=vbpr", "protocol=mmrec"])
    assert (mm.protocol.name, mm.protocol.negatives, mm.protocol.metric_decimals) == ("mmrec", "train_items", 4)
    assert mm.metric.mask_valid_at_test is False
    assert mm.callbacks.early_stopping.patience == 21 and mm.callbacks.early_stopping.min_delta == 0.0
    assert mm.trainer.max_epochs == 1000 and mm.dataset.datamodule.batch_size == 2048
    assert (mm.model.lr, mm.model.reg_form, mm.model.reg_scope, mm.model.feature_order) == (
        1e-3, "emb", "full", "text_first")
    assert cli.compose("train", ["model=freedom", "protocol=mmrec"]).model.finetune_features is True
    assert cli.compose("train", ["model=slmrec", "protocol=mmrec"]).model.weight_decay == 1e-4
    assert cli.compose("train", ["model=grcn", "protocol=mmrec"]).model.n_routing == 0
    rx = cli.compose("train", ["model=vbpr"])
    assert (rx.protocol.name, rx.protocol.negatives, rx.protocol.metric_decimals) == ("recx", "catalogue", None)
    assert rx.metric.mask_valid_at_test is True and rx.callbacks.early_stopping.patience == 20
    assert (rx.model.reg_form, rx.model.reg_scope, rx.model.feature_order) == ("l2", "ids", "modalities")


def test_alignrec_under_protocol_mmrec_stops_as_the_released_fork():
    # the fork's overall.yaml: stopping_step 30, stop when cur_step > 30 -> the 31st non-improving validation
    mm = cli.compose("train", ["model=alignrec", "protocol=mmrec"])
    assert mm.callbacks.early_stopping.patience == 31 and mm.callbacks.early_stopping.min_delta == 0.0
    assert (mm.model.linear_init, mm.model.knn_negatives, mm.model.reg_batch_size) == ("torch", "keep", 2048)
    assert (mm.model.lr, mm.model.lr_decay, mm.model.lr_decay_every, mm.trainer.max_epochs) == (1e-3, 0.96, 50, 1000)
    assert cli.compose("train", ["model=lightgcn", "protocol=mmrec"]).callbacks.early_stopping.patience == 21
    assert cli.compose("train", ["model=alignrec"]).callbacks.early_stopping.patience == 20


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "vbpr", "lattice", "freedom", "mmgcn", "grcn", "dualgnn",
                                   "slmrec", "bm3", "dragon", "alignrec"])
def test_every_zoo_model_builds_under_protocol_mmrec(model, compose_train):
    from recx.run import build_net

    cfg = compose_train(f"model={model}", "protocol=mmrec")
    dm = prepared(cfg)
    net = build_net(cfg.model, dm.data)
    assert net.eval().score(torch.arange(3)).shape == (3, dm.data.n_items)


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "vbpr", "lattice", "freedom", "mmgcn", "grcn", "dualgnn",
                                   "slmrec", "bm3", "dragon", "alignrec"])
def test_every_protocol_mmrec_value_passes_the_config_check(model):
    """What protocol=mmrec sets must pass the check every `recx train` runs first (GRCN's n_routing=0 once failed
    it: MMRec's variant could not be started from the CLI)."""
    overrides = [f"model={model}", "dataset=synthetic_mm", "protocol=mmrec"]
    cfg, _ = cli.prepare_job("train", "train", overrides)
    assert cfg.protocol.name == "mmrec"


def test_vbpr_full_scope_regularises_the_projection_and_text_goes_first(compose_train):
    from recx.run import build_net

    cfg = compose_train("model=vbpr", "protocol=mmrec")
    dm = prepared(cfg)
    batch = {k: v[:64] for k, v in dm.epoch_triplets(0).items()}
    grads = {}
    for scope in ("ids", "full"):
        net = seeded_net(cfg, dm)
        net.reg_scope = scope
        net.reg_weight = 0.0
        ranking_only = net.loss(batch)
        net.reg_weight = 1.0
        (net.loss(batch) - ranking_only).backward()  # the regulariser's gradient alone
        grads[scope] = net.projection.weight.grad
    # ids: only rounding noise of (loss - loss) reaches the projection; full: the regulariser itself
    assert grads["full"].abs().sum() > 1e4 * grads["ids"].abs().sum() and grads["full"].abs().sum() > 1e-3
    feats = dm.data.item_features
    text_dim = feats["text"].shape[1]
    assert torch.allclose(build_net(cfg.model, dm.data).features[:, :text_dim], feats["text"].float())


def test_a_protocol_mmrec_run_rounds_metrics_and_records_the_protocol(compose_train):
    from recx.run import train

    cfg = compose_train("model=bpr", "protocol=mmrec", "trainer.max_epochs=3", "callbacks.lis.enabled=false",
                        "model.lr=0.01")
    results = train(cfg)
    for split in ("valid", "test"):
        for key, value in results[split].items():
            if "@" in key:
                assert value == round(value, 4), (split, key, value)
    conventions = json.loads((Path(cfg.paths.run_dir) / "conventions.json").read_text())
    assert conventions["protocol"]["name"] == "mmrec" and conventions["protocol"]["negatives"] == "train_items"
    assert conventions["protocol"]["early_stopping"]["stop_after_non_improving"] == 21
    assert conventions["masked_at_test"] == ["train"] and conventions["protocol"]["reg_form"] == "emb"
    assert conventions["protocol"]["model_keys"]["reg_form"] == "emb"  # what protocol_model/mmrec_bpr.yaml set


def test_lattice_rw_self_loops_is_row_stochastic_with_self_loops(compose_train):
    from recx.run import build_net

    cfg = compose_train("model=lattice", "protocol=mmrec")
    assert cfg.model.ui_norm == "rw_self_loops" and cfg.model.projection_init == "torch"
    assert compose_train("model=lattice").model.projection_init == "xavier_normal"
    dm = prepared(cfg)
    from recx.topn.family import protocol_conventions

    keys = protocol_conventions(cfg, dm)["model_keys"]  # conventions.json records the per-model switches
    assert keys["projection_init"] == "torch" and keys["ui_norm"] == "rw_self_loops" and keys["finetune_features"]
    undone = compose_train("model=lattice", "protocol=mmrec", "model.projection_init=xavier_normal")
    assert protocol_conventions(undone, dm)["model_keys"]["projection_init"] == "xavier_normal"
    assert protocol_conventions(compose_train("model=lattice"), dm)["model_keys"] == {}  # protocol=recx: none
    net = build_net(cfg.model, dm.data)
    dense = net.adjacency.to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(dense.shape[0]))  # D^-1 (A + I): rows sum to 1
    assert (dense.diagonal() > 0).all()
    assert torch.allclose(net.adjacency_t.to_dense(), dense.T)
    recx_default = build_net(compose_train("model=lattice").model, dm.data)
    assert (recx_default.adjacency.to_dense().diagonal() == 0).all()  # recx: D^-1/2 A D^-1/2, no self loops
    net.train()
    batch = {k: v[:32] for k, v in dm.epoch_triplets(0).items()}
    net.loss(batch).backward()  # the non-symmetric propagation trains
    assert net.user_embedding.weight.grad.abs().sum() > 0


def test_slmrec_dot_fac_logits_are_raw_inner_products(compose_train):
    import torch.nn.functional as F

    cfg = compose_train("model=slmrec", "protocol=mmrec", "model.fac_chain=recx")  # the logits alone
    assert cfg.model.fac_logits == "dot"
    dm = prepared(cfg)
    net = seeded_net(cfg, dm)
    views = torch.randn(16, (len(net.modalities) + 1) * net.embedding_dim)
    blocks = views.split(net.embedding_dim, dim=1)
    anchor, expected = blocks[0], {"dot": 0.0, "cosine": 0.0}
    labels = torch.arange(16)
    for m in range(len(net.modalities)):
        anchor = net.fac_anchor[m](anchor)
        target = net.fac_modality[m](blocks[m + 1])
        expected["dot"] += F.cross_entropy(anchor @ target.T / 0.2, labels).item()
        expected["cosine"] += F.cross_entropy(F.normalize(anchor, dim=-1) @ F.normalize(target, dim=-1).T / 0.2,
                                              labels).item()
    assert net.fac_loss(views).item() == pytest.approx(expected["dot"], rel=1e-5)
    net.fac_logits = "cosine"
    assert net.fac_loss(views).item() == pytest.approx(expected["cosine"], rel=1e-5)
    assert expected["dot"] != pytest.approx(expected["cosine"], rel=1e-2)


def test_mmgcn_mmrec_variant_freezes_ids_and_feeds_text_raw(compose_train):
    from recx.run import build_net

    cfg = compose_train("model=mmgcn", "protocol=mmrec")
    dm = prepared(cfg)
    net = build_net(cfg.model, dm.data)
    assert cfg.model.n_layers == 3 and len(net.branches["text"].conv) == 3 and cfg.model.layer_init == "mmrec"
    assert compose_train("model=mmgcn").model.layer_init == "xavier_normal"
    assert net.branches["text"].projection is None and net.branches["image"].projection is not None
    assert net.branches["text"].preference.shape[1] == dm.data.item_features["text"].shape[1]
    before = net.id_embedding.detach().clone()
    net.loss({k: v[:32] for k, v in dm.epoch_triplets(0).items()}).backward()
    assert net.id_embedding.grad is None and all(b.preference.grad is None for b in net.branches.values())
    assert torch.equal(net.id_embedding, before)
    recx_net = build_net(compose_train("model=mmgcn").model, dm.data)
    assert recx_net.id_embedding.requires_grad and recx_net.branches["text"].projection is not None


def test_slmrec_mmrec_fac_chain_passes_the_text_anchor_through_the_acoustic_map(compose_train):
    import torch.nn.functional as F

    from recx.run import build_net

    cfg = compose_train("model=slmrec", "protocol=mmrec")
    assert cfg.model.fac_chain == "mmrec"
    dm = prepared(cfg)
    net = seeded_net(cfg, dm)
    assert net.modalities == ["image", "text"] and net.fac_bridge.weight.shape == (64, 64)
    views = torch.randn(16, 3 * net.embedding_dim)
    ids, image, text = views.split(net.embedding_dim, dim=1)
    labels = torch.arange(16)
    anchor = net.fac_anchor[0](ids)  # MMRec's g_i_iv
    expected = F.cross_entropy(anchor @ net.fac_modality[0](image).T / 0.2, labels)
    anchor = net.fac_anchor[1](net.fac_bridge(anchor))  # g_iva_ivat(g_iv_iva(·)): the acoustic map, no contrast
    expected = expected + F.cross_entropy(anchor @ net.fac_modality[1](text).T / 0.2, labels)
    assert net.fac_loss(views).item() == pytest.approx(expected.item(), rel=1e-5)
    net.fac_bridge = None  # recx's chain: one map per space
    assert net.fac_loss(views).item() != pytest.approx(expected.item(), rel=1e-3)
    assert build_net(compose_train("model=slmrec").model, dm.data).fac_bridge is None
    with pytest.raises(ConfigError, match="fac_chain"):
        build_net(compose_train("model=slmrec", "model.fac_chain=official").model, dm.data)
    one = prepared(compose_train("model=slmrec", "protocol=mmrec", "dataset.modalities=[image]"))
    with pytest.raises(ConfigError, match="image\\+text"):
        build_net(cfg.model, one.data)


def test_slmrec_mmrec_projection_init_keeps_nn_linears_uniform_bias(compose_train):
    from recx.run import build_net

    cfg = compose_train("model=slmrec", "protocol=mmrec")
    assert cfg.model.projection_init == "mmrec"
    dm = prepared(cfg)
    net = seeded_net(cfg, dm)
    recx_net = build_net(compose_train("model=slmrec").model, dm.data)
    for m in net.modalities:
        layer, recx_layer = net.projections[m].net[-1], recx_net.projections[m].net[-1]
        fan_in, fan_out = layer.in_features, layer.out_features
        assert torch.count_nonzero(recx_layer.bias) == 0  # recx: zero bias
        assert torch.count_nonzero(layer.bias) == fan_out and layer.bias.abs().max() <= fan_in ** -0.5
        # Xavier-uniform fills [-b, b], b = sqrt(6 / (fan_in + fan_out)); Xavier-normal (same std) overshoots b
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        assert 0.9 * bound < layer.weight.abs().max() <= bound < recx_layer.weight.abs().max()
    with pytest.raises(ConfigError, match="projection_init"):
        build_net(compose_train("model=slmrec", "model.projection_init=xavier").model, dm.data)
