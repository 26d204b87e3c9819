"""DualGNN: the user co-occurrence graph and the per-modality GCN equal a dense computation on a hand-made case, the
fusion follows the paper/MMRec, and each loss term has the value and gradient direction it should."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.knn import CombinedGraph, FixedSparseGraph, KNNGraph, user_cooccurrence_graph
from recx.topn.models.dualgnn import DualGNN, ModalityGCN, fusion_weights, user_graph, user_graph_weights

N_USERS, N_ITEMS = 6, 10
# u0: 0 1 2 3 | u1: 0 1 2 | u2: 2 3 | u3: 3 | u4: 8 | u5: 9  — items 4..7 have no training interaction (cold).
# Co-occurrence counts: (0,1)=3 (0,2)=2 (0,3)=1 (1,2)=1 (2,3)=1; u4 and u5 share nothing with anybody.
TRAIN = [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3], [4, 8], [5, 9]]
DIMS = {"image": 7, "text": 5, "genre": 4}


def tiny_data(modalities=("image", "text")) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    feats = {m: torch.randn(N_ITEMS, DIMS[m], generator=g) for m in modalities}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, torch.tensor(TRAIN), empty, empty,
                           [str(u) for u in range(N_USERS)], [str(i) for i in range(N_ITEMS)], feats)


def dense_user_graph(k: int, mode: str = "softmax") -> torch.Tensor:
    """Top-k co-interacting users from the dense ``R Rᵀ`` (ties → lower id), softmax/mean over the real ones."""
    r = torch.zeros(N_USERS, N_ITEMS)
    pairs = torch.tensor(TRAIN)
    r[pairs[:, 0], pairs[:, 1]] = 1.0
    counts = r @ r.T
    counts.fill_diagonal_(0.0)
    order = torch.sort(counts, dim=1, descending=True, stable=True).indices[:, :k]
    w = torch.zeros_like(counts)
    for u in range(N_USERS):
        kept = [v for v in order[u].tolist() if counts[u, v] > 0]
        if kept:
            c = counts[u, kept]
            w[u, kept] = torch.softmax(c, 0) if mode == "softmax" else torch.full_like(c, 1.0 / len(kept))
    return w


def dense_adjacency() -> torch.Tensor:
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in TRAIN:
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    d = a.sum(1)
    inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    return inv[:, None] * a * inv[None, :]


def test_user_cooccurrence_graph_matches_dense_top_k_softmax():
    data = tiny_data()
    g = user_graph(data, k=2)
    expected = dense_user_graph(2)
    assert torch.allclose(g.to_dense(), expected, atol=1e-6)
    # by hand: u0's two strongest co-users are u1 (3 shared items) and u2 (2); u2's are u0 (2) and u1 (1, tie with u3)
    assert torch.allclose(g.to_dense()[0, [1, 2]], torch.softmax(torch.tensor([3.0, 2.0]), 0))
    assert g.to_dense()[2, 1] > 0 and g.to_dense()[2, 3] == 0
    # users without any co-interacting user aggregate nothing
    assert g.to_dense()[4].abs().sum() == 0 and g.to_dense()[5].abs().sum() == 0
    x = torch.randn(N_USERS, 3)
    assert torch.allclose(g.propagate(x), expected @ x, atol=1e-6)
    # k larger than some users' neighbourhoods: the softmax runs over the real neighbours only (u3 has u0, u2)
    g4 = user_graph(data, k=4)
    assert torch.allclose(g4.to_dense(), dense_user_graph(4), atol=1e-6)
    assert torch.allclose(g4.to_dense()[3, [0, 2]], torch.tensor([0.5, 0.5]))
    assert torch.allclose(user_graph(data, k=3, mode="mean").to_dense(), dense_user_graph(3, "mean"), atol=1e-6)


def test_user_graph_weights_modes_and_errors():
    counts = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    w = user_graph_weights(counts, "softmax")
    assert torch.allclose(w[0, :2], torch.softmax(torch.tensor([3.0, 1.0]), 0)) and w[0, 2] == 0
    assert torch.equal(w[1], torch.zeros(3)) and not torch.isnan(w).any()
    assert torch.allclose(user_graph_weights(counts, "mean")[0], torch.tensor([0.5, 0.5, 0.0]))
    with pytest.raises(ConfigError):
        user_graph_weights(counts, "max")


def test_user_graph_is_built_once_per_dataset():
    data = tiny_data()
    assert user_cooccurrence_graph(data, 2) is user_cooccurrence_graph(data, 2)
    assert user_cooccurrence_graph(data, 3) is not user_cooccurrence_graph(data, 2)


def test_fixed_sparse_graph_forward_and_backward_match_dense():
    torch.manual_seed(0)
    a = KNNGraph(torch.randint(8, (8, 3)), torch.rand(8, 3))
    b = KNNGraph(torch.randint(8, (8, 2)), torch.rand(8, 2))
    combined = CombinedGraph([(0.3, a), (0.7, b)])
    sparse = FixedSparseGraph.from_knn(combined)
    dense = combined.to_dense()
    assert torch.allclose(sparse.to_dense(), dense, atol=1e-6)
    x = torch.randn(8, 4, requires_grad=True)
    target = torch.randn(8, 4)
    (sparse.propagate(x) * target).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (dense @ x2 * target).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)  # the backward is Aᵀ g (A is not symmetric)


def test_modality_gcn_is_summed_propagation_of_normalised_inputs():
    torch.manual_seed(0)
    data = tiny_data()
    model = DualGNN(data, embedding_dim=4, user_knn_k=2)
    gcn: ModalityGCN = model.gcns[0]
    feats = data.item_features["image"]
    x = F.normalize(torch.cat([gcn.preference, gcn.projector(feats)]), dim=1)
    a = dense_adjacency()
    expected = x + a @ x + a @ a @ x  # n_layers = 2, layers summed (MMRec: h + x + h_1)
    assert torch.allclose(gcn(model.adjacency, feats), expected, atol=1e-5)
    # a cold item (no training edge) keeps its normalised projected features
    assert torch.allclose(expected[N_USERS + 5], x[N_USERS + 5])


def test_vectors_follow_weighted_user_fusion_summed_items_and_user_graph():
    torch.manual_seed(0)
    data = tiny_data()
    model = DualGNN(data, embedding_dim=4, user_knn_k=2).eval()
    with torch.no_grad():
        users, items = model.user_item_vectors()
        reps = model.modality_representations()
        w = model.user_weights
        fused = w[:, :1] * reps[0][:N_USERS] + w[:, 1:] * reps[1][:N_USERS]
        expected_users = fused + dense_user_graph(2) @ fused
        expected_items = reps[0][N_USERS:] + reps[1][N_USERS:]
    assert users.shape == (N_USERS, 4) and items.shape == (N_ITEMS, 4)
    assert torch.allclose(users, expected_users, atol=1e-5)
    assert torch.allclose(items, expected_items, atol=1e-5)
    assert torch.allclose(model.score(torch.tensor([0, 4])), expected_users[[0, 4]] @ expected_items.T, atol=1e-5)


def test_modalities_are_generic():
    one = DualGNN(tiny_data(("text",)), embedding_dim=4, user_knn_k=2)
    assert one.user_weights is None  # one modality: used as it is (MMRec)
    u, i = one.user_item_vectors()
    assert u.shape == (N_USERS, 4) and i.shape == (N_ITEMS, 4)
    three = DualGNN(tiny_data(("image", "text", "genre")), embedding_dim=4, user_knn_k=2)
    assert three.user_weights.shape == (N_USERS, 3)
    # initialised as MMRec: softmax over modalities of Xavier-normal [U, M, 1] (std √(2/(U+M))): rows sum to 1,
    # and with many users every weight is close to 1/M
    assert torch.allclose(three.user_weights.sum(1), torch.ones(N_USERS), atol=1e-6)
    many = fusion_weights(5000, 3)
    assert torch.allclose(many.sum(1), torch.ones(5000), atol=1e-6) and (many - 1 / 3).abs().max() < 0.02
    assert three.user_item_vectors()[1].shape == (N_ITEMS, 4)


def test_loss_terms_values_and_gradient_direction():
    torch.manual_seed(0)
    model = DualGNN(tiny_data(), embedding_dim=4, user_knn_k=2, reg_weight=0.5)
    batch = {"users": torch.tensor([0, 1, 2]), "pos": torch.tensor([1, 0, 3]), "neg": torch.tensor([7, 6, 5])}
    users, items = model.propagate()
    u = users[batch["users"]]
    diff = (u * items[batch["pos"]]).sum(-1) - (u * items[batch["neg"]]).sum(-1)
    bpr = -torch.log2(torch.sigmoid(diff)).mean()  # MMRec's log₂ BPR
    reg = sum(g.preference[batch["users"]].pow(2).mean() for g in model.gcns) + model.user_weights.pow(2).mean()
    assert torch.allclose(model.loss(batch), bpr + 0.5 * reg, atol=1e-6)
    assert math.isclose(model.regularizer(batch["users"]).item(), reg.item(), rel_tol=1e-6)

    # the ranking term alone (reg 0) pushes the positive above the negative
    model.reg_weight = 0.0
    before = diff.detach()
    model.loss(batch).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
        users, items = model.propagate()
        u = users[batch["users"]]
        after = (u * items[batch["pos"]]).sum(-1) - (u * items[batch["neg"]]).sum(-1)
    assert (after > before).all()


def test_reg_term_shrinks_preferences_and_weights():
    torch.manual_seed(0)
    model = DualGNN(tiny_data(), embedding_dim=4, user_knn_k=2)
    users = torch.tensor([0, 3])
    model.regularizer(users).backward()
    pref = model.gcns[0].preference
    # d/dP mean(P²) = 2P/numel on the batch rows, zero elsewhere
    assert torch.allclose(pref.grad[users], 2 * pref[users].detach() / pref[users].numel(), atol=1e-7)
    assert pref.grad[[1, 2, 4, 5]].abs().sum() == 0
    assert (model.user_weights.grad * model.user_weights.detach() > 0).all()
