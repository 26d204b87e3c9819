"""MOTOR: product-quantised tokens, the Token Cross Network, the plug-in on backbones, ID-free new items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recx.data.interactions import InteractionData
from recx.data.synthetic import generate_world
from recx.topn.motor import MOTOR, TokenCrossNetwork, TokenItemEmbedding, motor_item_parameters
from recx.topn.new_items import load_new_items, score_new_items
from recx.topn.tokenizer import fit_quantizer, tokenize_items
from tests.models.test_zoo import compose


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=0)


def test_product_quantisation_distortion_is_bounded(world):
    # measured (800 items, 4 sub-spaces × 64 centroids): image 0.21, text 0.15; OPQ 0.18 / 0.13
    for name, bound in (("image", 0.30), ("text", 0.25)):
        x = world.features[name]
        pq = fit_quantizer(x, 4, 64, seed=0)
        assert pq.distortion < bound, (name, pq.distortion)
        opq = fit_quantizer(x, 4, 64, seed=0, opq=True)
        assert opq.distortion <= pq.distortion + 0.01  # the learned rotation never makes it (meaningfully) worse
        assert fit_quantizer(x, 4, 8, seed=0).distortion > pq.distortion  # fewer centroids, coarser tokens


def test_codes_are_nearest_centroids_and_roundtrip(world):
    x = world.features["text"]
    q = fit_quantizer(x, 4, 32, seed=1)
    codes = q.encode(x)
    assert codes.shape == (x.shape[0], 4) and int(codes.max()) < 32
    assert torch.equal(q.encode(q.decode(codes)), codes)  # a centroid is its own nearest centroid
    again = fit_quantizer(x, 4, 32, seed=1)
    assert torch.equal(again.encode(x), codes)  # seeded


def test_faiss_and_torch_backends_quantise_alike(world):
    x = world.features["image"]
    torch_pq = fit_quantizer(x, 4, 64, seed=0)
    faiss_pq = fit_quantizer(x, 4, 64, seed=0, backend="faiss")
    assert abs(torch_pq.distortion - faiss_pq.distortion) < 0.03


def test_token_cross_network_shapes_and_gradients():
    tcn = TokenCrossNetwork(n_tokens=6, dim=8, n_layers=2)
    tokens = torch.randn(5, 6, 8, requires_grad=True)
    out = tcn(tokens)
    assert out.shape == (5, 8)
    out.pow(2).sum().backward()
    assert tokens.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tcn.parameters())
    # second-order: scaling the input by 2 does not simply scale the output by 2
    assert not torch.allclose(tcn(2 * tokens.detach()), 2 * tcn(tokens.detach()))


def test_token_item_embedding_is_a_drop_in_table(world):
    tokens = tokenize_items({"image": world.features["image"], "text": world.features["text"]}, 4, 16, seed=0)
    table = TokenItemEmbedding(tokens, dim=8)
    ids = torch.tensor([[3, 1], [0, 799]])
    assert torch.allclose(table(ids), table.weight[ids], atol=1e-6)
    assert table.weight.shape == (800, 8)
    # an item *is* its tokens: give item 1 the tokens of item 0 and it gets item 0's row
    assert not torch.allclose(table(torch.tensor([0])), table(torch.tensor([1])))
    table.codes[1] = table.codes[0]
    assert torch.allclose(table(torch.tensor([0])), table(torch.tensor([1])))
    n_item_params = sum(p.numel() for p in table.parameters())
    assert n_item_params == 16 * 8 * 8 + 2 * (8 * 8 + 8 * 8 + 8)  # T·K·d + layers·(T² + d² + d)


@pytest.mark.parametrize("backbone", ["bpr", "lightgcn"])
def test_motor_beats_the_id_backbone_on_cold_items(backbone, tmp_path):
    from recx.run import train

    runs = {rep: train(compose("model=motor", f"model/backbone={backbone}", f"model.item_representation={rep}",
                               "trainer.max_epochs=25", run_dir=tmp_path / rep)) for rep in ("id", "motor")}
    # measured: bpr 0.25 → 0.74, lightgcn 0.38 → 0.66 cold recall@20 (test)
    assert runs["motor"]["test"]["cold/recall@20"] > runs["id"]["test"]["cold/recall@20"] + 0.15
    assert runs["motor"]["test"]["recall@20"] > runs["id"]["test"]["recall@20"] - 0.02
    assert runs["motor"]["tokenizer"]["tokens_per_item"] == 8


def test_unsupported_backbone_is_refused(tmp_path):
    from recx.errors import ConfigError
    from recx.run import build_datamodule, build_net

    cfg = compose("model=motor", run_dir=tmp_path)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    backbone = {"_target_": "recx.topn.models.dualgnn.DualGNN", "name": "dualgnn"}
    with pytest.raises(ConfigError, match="no item-ID embedding"):
        MOTOR(dm.data, backbone=backbone)
    net = build_net(cfg.model, dm.data)
    # the closed form the README's parameter table uses matches the built model, and the ID table it replaces
    assert net.item_parameter_count() == motor_item_parameters(dm.data.n_items, dim=64)
    ids = build_net(compose("model=motor", "model.item_representation=id", run_dir=tmp_path).model, dm.data)
    assert ids.item_parameter_count() == dm.data.n_items * 64


def held_out_items_dataset(n_new: int = 30, seed: int = 0):
    """synthetic_mm with ``n_new`` items removed from every split: the model never sees them."""
    from recx.data.prepare import prepare
    from recx.data.splits import TemporalRatioSplit
    from recx.data.synthetic import SyntheticMM

    full = prepare(SyntheticMM(n_users=300, n_items=240, interactions_per_user=30, seed=seed), TemporalRatioSplit(),
                   modalities=("image", "text"))
    new = torch.randperm(full.n_items, generator=torch.Generator().manual_seed(seed))[:n_new]
    is_new = torch.zeros(full.n_items, dtype=torch.bool)
    is_new[new] = True
    old_to_new_index = torch.full((full.n_items,), -1)
    old_to_new_index[new] = torch.arange(n_new)
    keep_map = torch.cumsum(~is_new, 0) - 1

    def strip(pairs):
        kept = pairs[~is_new[pairs[:, 1]]]
        return torch.stack([kept[:, 0], keep_map[kept[:, 1]]], 1)

    data = InteractionData(
        "synthetic_heldout", full.n_users, int((~is_new).sum()), strip(full.train), strip(full.valid),
        strip(full.test), full.user_ids, [i for i, n in zip(full.item_ids, is_new.tolist()) if not n],
        {m: f[~is_new] for m, f in full.item_features.items()},
    ).validate()
    all_pairs = torch.cat([full.train, full.valid, full.test])
    later = all_pairs[is_new[all_pairs[:, 1]]]
    later = torch.stack([later[:, 0], old_to_new_index[later[:, 1]]], 1)
    new_features = {m: f[new] for m, f in full.item_features.items()}
    return data, new_features, later


def test_new_items_rank_far_better_than_random_from_features_alone(tmp_path):
    import lightning.pytorch as pl

    from recx.topn.datamodule import TopNDataModule
    from recx.topn.module import TopNModule

    pl.seed_everything(0, verbose=False)
    data, new_features, later = held_out_items_dataset()
    backbone = {"_target_": "recx.topn.models.bpr.BPR", "embedding_dim": 32}
    net = MOTOR(data, backbone=backbone, n_centroids=16)
    trainer = pl.Trainer(max_epochs=15, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, reload_dataloaders_every_n_epochs=1)
    trainer.fit(TopNModule(net, lr=5e-3), TopNDataModule(data=data, batch_size=512))
    path = tmp_path / "new.npz"
    np.savez(path, **{m: f.numpy() for m, f in new_features.items()}, users=later[:, 0].numpy(),
             items=later[:, 1].numpy())
    features, pairs = load_new_items(path, ["image", "text"])
    result = score_new_items(net, features, data.n_users, k=10, pairs=pairs)
    metrics = result["metrics"]
    # 30 unseen items: a random ranking has recall@10 = 1/3; features alone give far more
    assert metrics["recall@10"] > metrics["random_recall@10"] + 0.2, metrics
    assert result["top_items"].shape[1] == 10


def test_new_items_file_errors_name_the_problem(tmp_path):
    from recx.errors import DataError

    path = tmp_path / "bad.npz"
    np.savez(path, image=np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(DataError, match="lacks modality"):
        load_new_items(path, ["image", "text"])
    np.savez(path, image=np.full((3, 4), np.nan, dtype=np.float32), text=np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        load_new_items(path, ["image", "text"])
