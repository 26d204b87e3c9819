"""BM3: the online graph against a dense computation, each loss term by hand, stop-gradients, scoring, modalities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.topn.models.bm3 import BM3

N_USERS, N_ITEMS = 4, 5
TRAIN = [[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [3, 0], [3, 4], [2, 1]]


def tiny(modalities=("image", "text")) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    dims = {"image": 6, "text": 3, "genre": 2}
    feats = {m: torch.randn(N_ITEMS, dims[m], generator=g) for m in modalities}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, torch.tensor(TRAIN), empty, empty,
                           [str(u) for u in range(N_USERS)], [str(i) for i in range(N_ITEMS)], feats)


def dense_adjacency() -> torch.Tensor:
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in TRAIN:
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def batch(users, items, neg=None):
    users, items = torch.tensor(users), torch.tensor(items)
    return {"users": users, "pos": items, "neg": torch.zeros_like(items) if neg is None else torch.tensor(neg)}


@pytest.mark.parametrize("n_layers", [1, 2])
def test_online_embeddings_match_dense_lightgcn_plus_item_ids(n_layers):
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, n_layers=n_layers)
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    adj = dense_adjacency()
    layers, x = [ego], ego
    for _ in range(n_layers):
        x = adj @ x
        layers.append(x)
    expected = torch.stack(layers).mean(0)
    users, items = model.online()
    torch.testing.assert_close(users, expected[:N_USERS])
    torch.testing.assert_close(items, expected[N_USERS:] + model.item_embedding.weight)


def test_score_is_predicted_user_dot_predicted_item():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8).eval()
    users, items = model.online()
    pu, pi = model.predictor(users), model.predictor(items)
    u_vecs, i_vecs = model.user_item_vectors()
    assert u_vecs.shape == (N_USERS, 8) and i_vecs.shape == (N_ITEMS, 8)
    scores = model.score(torch.tensor([2, 0]))
    assert scores.shape == (2, N_ITEMS)
    torch.testing.assert_close(scores, pu[[2, 0]] @ pi.T)
    torch.testing.assert_close(model.item_representations(), pi)


def test_loss_matches_hand_computation_without_dropout():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, dropout=0.0, reg_weight=0.3, cl_weight=2.0)
    b = batch([0, 1, 3], [1, 2, 4])
    users, items = model.online()
    u, i = users[b["users"]], items[b["pos"]]
    P = model.predictor

    def neg_cos(a, t):
        return (1 - F.cosine_similarity(a, t, dim=-1)).mean()

    expected = neg_cos(P(u), i) + neg_cos(P(i), u)
    expected = expected + 0.3 * (users.norm() + items.norm()) / N_ITEMS
    for m in ("image", "text"):
        h = model.projections[m](model.features[m][b["pos"]])
        expected = expected + 2.0 * (neg_cos(P(h), i) + neg_cos(P(h), h))
    torch.testing.assert_close(model.loss(b), expected)


def test_negatives_are_ignored():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8)
    torch.manual_seed(5)
    a = model.loss(batch([0, 1], [1, 2], neg=[3, 4]))
    torch.manual_seed(5)
    b = model.loss(batch([0, 1], [1, 2], neg=[0, 0]))
    assert torch.equal(a, b)


def test_targets_are_stop_gradient():
    """With only the modality terms, no gradient reaches the ID embeddings (their targets are detached)."""
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, dropout=0.5, reg_weight=0.0, cl_weight=1.0)
    b = batch([0, 1, 2], [0, 1, 3])
    users, items = model.online()
    i_target = model._target(items[b["pos"]])
    assert not i_target.requires_grad
    contrast = sum(
        (1 - F.cosine_similarity(model.predictor(model.modality_embedding(m, b["pos"])), i_target, dim=-1)).mean()
        for m in model.modalities)
    contrast.backward()
    assert model.user_embedding.weight.grad is None and model.item_embedding.weight.grad is None
    assert model.projections["image"].net[0].weight.grad.abs().sum() > 0
    assert model.features["text"].grad[[0, 1, 3]].abs().sum() > 0
    assert model.features["text"].grad[[2, 4]].abs().sum() == 0  # only the batch's items are touched


def test_alignment_gradient_pulls_predicted_user_towards_its_item():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, dropout=0.0, reg_weight=0.0, cl_weight=0.0)
    b = batch([0], [1])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def cos():
        users, items = model.online()
        return F.cosine_similarity(model.predictor(users[0]), items[1], dim=0).item()

    before = cos()
    for _ in range(5):
        opt.zero_grad()
        model.loss(b).backward()
        opt.step()
    assert cos() > before


def test_dropout_targets_differ_from_online_and_reg_weight_is_used():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, dropout=0.5)
    x = torch.ones(3, 8)
    t = model._target(x)
    assert set(t.unique().tolist()) <= {0.0, 2.0} and (t == 0).any()  # inverted dropout, p = 0.5
    b = batch([0, 1], [1, 2])
    torch.manual_seed(3)
    base = model.loss(b)
    model.reg_weight += 1.0
    torch.manual_seed(3)
    users, items = model.online()
    torch.testing.assert_close(model.loss(b) - base, (users.norm() + items.norm()) / N_ITEMS)


@pytest.mark.parametrize("modalities", [("genre",), ("image", "text", "genre")])
def test_any_number_of_modalities(modalities):
    torch.manual_seed(0)
    model = BM3(tiny(modalities), embedding_dim=8)
    assert list(model.projections) == list(modalities)
    loss = model.loss(batch([0, 1, 2], [0, 1, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(model.features[m].grad is not None for m in modalities)


def test_frozen_features_get_no_gradient():
    torch.manual_seed(0)
    model = BM3(tiny(), embedding_dim=8, train_features=False)
    model.loss(batch([0, 1], [1, 2])).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.features.values())
    assert "features.image" in model.state_dict()
    assert not any(k.startswith("adjacency") for k in model.state_dict())
