"""kNN graphs: equal to a dense computation, independent of chunking, differentiable where promised."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recx.topn.knn import (KNNGraph, cached_knn_graph, cooccurrence_knn, knn_graph, learned_knn_graph,
                           normalize_weights, topk_cosine)


def dense_knn(features, k, weighting, normalization, include_self=True):
    """The textbook construction on the full n×n similarity matrix."""
    x = F.normalize(features, dim=1)
    sim = x @ x.T
    if not include_self:
        sim.fill_diagonal_(float("-inf"))
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :k]
    a = torch.zeros_like(sim)
    rows = torch.arange(sim.shape[0]).unsqueeze(1).expand_as(order)
    a[rows, order] = 1.0 if weighting == "binary" else sim[rows, order].clamp_min(0)
    d = a.sum(1) + 1e-7
    if normalization == "sym":
        return a / torch.sqrt(d.unsqueeze(1) * d.unsqueeze(0))
    return a / d.unsqueeze(1)


def test_knn_graph_matches_dense_construction():
    torch.manual_seed(0)
    feats = torch.randn(40, 6)
    for weighting in ("binary", "similarity"):
        for normalization in ("sym", "rw"):
            for include_self in (True, False):
                g = knn_graph(feats, 5, weighting=weighting, normalization=normalization, include_self=include_self)
                expected = dense_knn(feats, 5, weighting, normalization, include_self)
                assert torch.allclose(g.to_dense(), expected, atol=1e-6), (weighting, normalization, include_self)
                x = torch.randn(40, 3)
                assert torch.allclose(g.propagate(x), expected @ x, atol=1e-5)


def test_chunking_does_not_change_neighbours_even_with_ties():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]).repeat(20, 1)
    one_chunk = topk_cosine(feats, 7, memory_budget_mb=64)
    tiny_chunks = topk_cosine(feats, 7, memory_budget_mb=1e-4)  # one row per chunk
    assert torch.equal(one_chunk[0], tiny_chunks[0]) and torch.equal(one_chunk[1], tiny_chunks[1])
    # ties go to the lowest ids
    assert one_chunk[0][0].tolist() == [0, 1, 5, 6, 7, 11, 12]


def test_learned_graph_weights_carry_gradients_to_the_embeddings():
    torch.manual_seed(0)
    emb = torch.randn(30, 4, requires_grad=True)
    g = learned_knn_graph(emb, 4)
    target = torch.randn(30, 2)
    (g.propagate(target) ** 2).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    fixed = knn_graph(emb.detach(), 4, weighting="similarity")
    assert torch.allclose(g.weights.detach(), fixed.weights, atol=1e-6)


def test_cooccurrence_knn_matches_dense_counts():
    pairs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 2], [3, 3], [0, 2]])
    g = cooccurrence_knn(pairs, n_users=4, n_items=4, k=2, normalization="none")
    r = torch.zeros(4, 4)
    r[pairs[:, 0], pairs[:, 1]] = 1
    counts = r @ r.T
    counts.fill_diagonal_(0)
    # user 0 shares items 0,1,2 with user 1 (3) and item 2 with user 2 (1)
    assert g.indices[0].tolist() == [1, 2] and g.weights[0].tolist() == [3.0, 1.0]
    assert torch.allclose(g.to_dense()[:3], counts[:3])
    # user 3 co-interacts with nobody: zero-weight padding edges to itself
    assert g.indices[3].tolist() == [3, 3] and g.weights[3].tolist() == [0.0, 0.0]


def test_normalization_modes():
    idx = torch.tensor([[0, 1], [1, 0]])
    w = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    assert torch.allclose(normalize_weights(idx, w, "rw"), torch.tensor([[0.25, 0.75], [0.5, 0.5]]), atol=1e-6)
    sym = normalize_weights(idx, w, "sym")
    assert torch.allclose(sym[0, 1], torch.tensor(3.0 / (4.0 ** 0.5 * 4.0 ** 0.5)), atol=1e-6)


def test_cached_knn_graph_is_written_once_and_reused(tmp_path):
    from recx.data.interactions import InteractionData

    feats = torch.randn(25, 5)
    data = InteractionData("t", 3, 25, torch.tensor([[0, 1]]), torch.empty(0, 2, dtype=torch.long),
                           torch.empty(0, 2, dtype=torch.long), ["0", "1", "2"], [str(i) for i in range(25)],
                           {"image": feats}, cache_dir=str(tmp_path))
    first = cached_knn_graph(data, "image", 4)
    [path] = list(tmp_path.glob("knn_image_k4_*.pt"))
    data.item_features["image"] = torch.zeros(25, 5)  # the cache, not the (changed) features, is read
    second = cached_knn_graph(data, "image", 4)
    assert torch.equal(first.indices, second.indices) and path.is_file()
    assert isinstance(second, KNNGraph)
