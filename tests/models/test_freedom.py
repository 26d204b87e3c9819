"""FREEDOM: the frozen item graph equals a dense construction, degree-sensitive pruning keeps the right edges and
count, training propagates over the pruned graph and inference over the full one, and the loss is the paper's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_weights as resolve_modality_weights
from recx.topn.models.freedom import FREEDOM

N_USERS, N_ITEMS = 8, 12


def tiny_data(modalities=("image", "text")) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    # user 0 sees every item (a hub), the others 3 each; item 0 is popular
    train = [[0, i] for i in range(N_ITEMS)] + [[u, (2 * u + j) % N_ITEMS] for u in range(1, N_USERS) for j in range(3)]
    train += [[u, 0] for u in range(1, N_USERS)] + [[1, 2]]  # + a duplicate pair
    dims = {"image": 7, "text": 5, "genre": 4}
    feats = {m: torch.randn(N_ITEMS, dims[m], generator=g) for m in modalities}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, torch.tensor(train), empty, empty,
                           [str(u) for u in range(N_USERS)], [str(i) for i in range(N_ITEMS)], feats)


def sym(a: torch.Tensor) -> torch.Tensor:
    d = a.sum(1) + 1e-7
    return a / torch.sqrt(torch.outer(d, d))


def dense_binary_knn(features: torch.Tensor, k: int) -> torch.Tensor:
    x = F.normalize(features, dim=1)
    sim = x @ x.T
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :k]
    a = torch.zeros_like(sim)
    a[torch.arange(sim.shape[0]).unsqueeze(1).expand_as(order), order] = 1.0
    return sym(a)


def dense_ui(pairs: torch.Tensor) -> torch.Tensor:
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in pairs.tolist():
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    d = a.sum(1)
    return torch.where(a > 0, a / torch.sqrt(torch.outer(d, d)).clamp_min(1e-12), a)


def build(data=None, **kw) -> FREEDOM:
    torch.manual_seed(0)
    return FREEDOM(data or tiny_data(), knn_k=3, embedding_dim=8, **kw)


def test_frozen_item_graph_matches_dense_construction():
    data = tiny_data()
    net = build(data)
    expected = (0.1 * dense_binary_knn(data.item_features["image"], 3)
                + 0.9 * dense_binary_knn(data.item_features["text"], 3))
    assert torch.allclose(net.item_graph.to_dense(), expected, atol=1e-6)
    x = torch.randn(N_ITEMS, 4)
    assert torch.allclose(net.item_graph.propagate(x), expected @ x, atol=1e-5)
    assert not any(p.requires_grad for p in (net.item_graph.parts[0][1].weights, net.item_graph.parts[1][1].weights))


def test_modality_weights_are_generic_and_normalised():
    assert resolve_modality_weights(["image", "text"], None, 0.5) == pytest.approx([0.1, 0.9])
    assert resolve_modality_weights(["text", "image"], None, 0.5) == pytest.approx([0.9, 0.1])
    assert resolve_modality_weights(["genre"], None, 0.5) == pytest.approx([1.0])
    assert resolve_modality_weights(["text", "genre"], {"text": 0.9}, 0.5) == pytest.approx([0.9 / 1.4, 0.5 / 1.4])
    with pytest.raises(ConfigError):
        resolve_modality_weights(["genre"], {"genre": 0.0}, 0.5)
    net = build(tiny_data(("image", "text", "genre")))
    assert [w for w, _ in net.item_graph.parts] == pytest.approx([0.1 / 1.5, 0.9 / 1.5, 0.5 / 1.5])


def test_pruning_keeps_the_right_edges_and_renormalises():
    net = build(dropout=0.8)
    edges = net.train_pairs  # deduplicated
    assert edges.shape[0] == tiny_data().train.unique(dim=0).shape[0]
    torch.manual_seed(3)
    net.on_epoch_start(0)
    pruned = net.pruned_adjacency.to_dense()
    kept_nodes = (pruned[:N_USERS, N_USERS:] > 0).nonzero()
    assert kept_nodes.shape[0] == round(0.2 * edges.shape[0])
    full = net.adjacency.to_dense()
    assert (full[:N_USERS, N_USERS:][pruned[:N_USERS, N_USERS:] > 0] > 0).all()  # only training edges survive
    assert torch.allclose(pruned, dense_ui(kept_nodes), atol=1e-6)  # renormalised on the kept edges
    torch.manual_seed(3)
    assert torch.equal(net.prune_edges().to_dense(), pruned)  # seeded: replayable
    assert not torch.equal(net.prune_edges().to_dense(), pruned)  # a new draw differs
    assert torch.equal(build(dropout=0.0).prune_edges().to_dense(), full)


def test_pruning_prefers_edges_between_low_degree_nodes():
    net = build(dropout=0.5)
    edges = net.train_pairs.tolist()
    assert [0, 0] in edges and [3, 7] in edges  # user 0 (degree 12) – item 0 (degree 8); user 3 (4) – item 7 (3)
    hub = leaf = 0
    torch.manual_seed(0)
    for _ in range(300):
        kept = net.prune_edges().to_dense()[:N_USERS, N_USERS:] > 0
        hub += int(kept[0, 0])
        leaf += int(kept[3, 7])
    assert leaf > hub + 60, (leaf, hub)


def test_training_uses_the_pruned_graph_and_inference_the_full_one():
    data = tiny_data()
    net = build(data, reg_weight=0.3)
    batch = {"users": torch.tensor([1, 2, 5]), "pos": torch.tensor([2, 4, 0]), "neg": torch.tensor([9, 1, 3])}
    torch.manual_seed(1)
    net.on_epoch_start(0)
    loss = net.loss(batch)
    with torch.no_grad():
        ego = torch.cat([net.user_embedding.weight, net.item_embedding.weight])
        h = net.item_graph.to_dense() @ net.item_embedding.weight

        def vectors(adj):
            light = (ego + adj @ ego + adj @ adj @ ego) / 3
            return light[:N_USERS], light[N_USERS:] + h

        users, items = vectors(net.pruned_adjacency.to_dense())
        u = users[batch["users"]]

        def bpr(pos, neg):
            return -F.logsigmoid((u * pos).sum(1) - (u * neg).sum(1)).mean()

        expected = bpr(items[batch["pos"]], items[batch["neg"]])
        for proj, m in zip(net.projections, ("image", "text")):
            f = proj(data.item_features[m])
            expected = expected + 0.3 * bpr(f[batch["pos"]], f[batch["neg"]])
        assert torch.allclose(loss, expected, atol=1e-6)

        net.eval()
        users_full, items_full = vectors(net.adjacency.to_dense())
        u_eval, i_eval = net.user_item_vectors()
        assert torch.allclose(u_eval, users_full, atol=1e-5) and torch.allclose(i_eval, items_full, atol=1e-5)
        assert net.score(torch.tensor([0, 4])).shape == (2, N_ITEMS)


def test_feature_side_bpr_trains_the_projections_only_when_weighted():
    batch = {"users": torch.tensor([1, 2]), "pos": torch.tensor([2, 4]), "neg": torch.tensor([9, 1])}
    for reg, trained in ((0.0, False), (1e-3, True)):
        net = build(reg_weight=reg)
        net.on_epoch_start(0)
        net.loss(batch).backward()
        grad = net.projections[0].net[0].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == trained
    tuned = build(finetune_features=True)
    tuned.on_epoch_start(0)
    tuned.loss(batch).backward()
    assert tuned.features[1].grad.abs().sum() > 0
    assert not any(k.startswith("feature") for k in build().state_dict())


def test_gradient_step_raises_positive_over_negative_score():
    net = build()
    batch = {"users": torch.tensor([1, 2]), "pos": torch.tensor([2, 4]), "neg": torch.tensor([9, 1])}
    net.on_epoch_start(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)

    def margin():
        users, items = net.forward_vectors(net.pruned_adjacency)
        u = users[batch["users"]]
        return ((u * items[batch["pos"]]).sum(1) - (u * items[batch["neg"]]).sum(1)).sum()

    before = margin().item()
    net.loss(batch).backward()
    opt.step()
    assert margin().item() > before
