"""synthetic_mm plants what it promises: clusters, popularity, informative features, cold-ish items; seeded."""

from __future__ import annotations

import torch

from recx.data.synthetic import SyntheticMM, generate_world


def test_deterministic_under_seed_and_different_across_seeds():
    a, b, c = generate_world(seed=3), generate_world(seed=3), generate_world(seed=4)
    assert torch.equal(a.interactions, b.interactions) and torch.equal(a.timestamps, b.timestamps)
    assert torch.equal(a.features["image"], b.features["image"])
    assert not torch.equal(a.interactions, c.interactions)


def test_users_prefer_items_of_their_own_cluster():
    w = generate_world(seed=0)
    users, items = w.interactions.T
    same = (w.user_cluster[users] == w.item_cluster[items]).float().mean()
    # 8 clusters: by chance 1/8 of interactions would be within-cluster
    assert same > 0.4


def test_features_carry_the_item_latent_factors():
    w = generate_world(seed=0)
    for name in ("image", "text"):
        x = w.features[name]
        # a least-squares map from features back to the latent factors explains most of their variance
        coef = torch.linalg.lstsq(x, w.item_latent).solution
        residual = (w.item_latent - x @ coef).pow(2).sum() / (w.item_latent - w.item_latent.mean(0)).pow(2).sum()
        assert residual < 0.5, name


def test_cold_items_are_held_out_by_time():
    w = generate_world(seed=0)
    cold = w.cold_items[w.interactions[:, 1]]
    # cold items' interactions are mostly late, warm ones spread over the timeline
    assert (w.timestamps[cold] >= 0.9).float().mean() > 0.9
    assert (w.timestamps[~cold] >= 0.9).float().mean() < 0.2


def test_source_reads_and_builds_features_in_item_order():
    src = SyntheticMM(n_users=50, n_items=40, interactions_per_user=10, seed=1)
    raw = src.read()
    assert set(raw.interactions.columns) == {"user", "item", "timestamp"}
    feat = src.feature("text", None, ["3", "0"])
    assert torch.allclose(torch.from_numpy(feat), src.world().features["text"][[3, 0]])
