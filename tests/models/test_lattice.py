"""LATTICE: its item graphs equal a dense construction, the learned graph is rebuilt once per epoch (with gradients
in the first batch only) and afresh for evaluation, and the vectors and loss follow the paper's equations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.topn.models.lattice import LATTICE

N_USERS, N_ITEMS = 6, 12


def tiny_data(modalities=("image", "text")) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    train = torch.tensor([[u, (3 * u + j) % N_ITEMS] for u in range(N_USERS) for j in range(3)])
    dims = {"image": 7, "text": 5, "genre": 4}
    feats = {m: torch.randn(N_ITEMS, dims[m], generator=g) for m in modalities}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, train, empty, empty, [str(u) for u in range(N_USERS)],
                           [str(i) for i in range(N_ITEMS)], feats)


def dense_knn(features: torch.Tensor, k: int) -> torch.Tensor:
    """Similarity-weighted kNN adjacency (self included), unnormalised, from the full cosine matrix."""
    x = F.normalize(features, dim=1)
    sim = x @ x.T
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :k]
    rows = torch.arange(sim.shape[0]).unsqueeze(1).expand_as(order)
    a = torch.zeros_like(sim)
    a[rows, order] = sim[rows, order].clamp_min(0)
    return a


def sym(a: torch.Tensor) -> torch.Tensor:
    d = a.sum(1) + 1e-7
    return a / torch.sqrt(torch.outer(d, d))


def dense_ui(data: InteractionData) -> torch.Tensor:
    n = data.n_users + data.n_items
    a = torch.zeros(n, n)
    for u, i in data.train.tolist():
        a[u, data.n_users + i] = a[data.n_users + i, u] = 1.0
    return sym(a)


def build(data=None, **kw) -> LATTICE:
    torch.manual_seed(0)
    return LATTICE(data or tiny_data(), knn_k=3, feat_embed_dim=8, embedding_dim=8, **kw)


def test_item_graph_matches_dense_construction():
    data = tiny_data()
    net = build(data)
    with torch.no_grad():
        net.modal_weight.copy_(torch.tensor([0.3, -0.4]))  # unequal importances
        alpha = torch.softmax(net.modal_weight, 0)
        feats = [data.item_features["image"], data.item_features["text"]]
        learned = sym(sum(a * dense_knn(p(f), 3) for a, p, f in zip(alpha, net.projections, feats)))
        original = sum(a * sym(dense_knn(f, 3)) for a, f in zip(alpha, feats))
        expected = 0.1 * learned + 0.9 * original
        graph = net.item_graph()
        assert torch.allclose(net.learned_graph(alpha).to_dense(), learned, atol=1e-6)
        assert torch.allclose(graph.to_dense(), expected, atol=1e-6)
        x = torch.randn(N_ITEMS, 4)
        assert torch.allclose(graph.propagate(x), expected @ x, atol=1e-5)


def test_vectors_follow_the_equations_and_shapes():
    data = tiny_data()
    net = build(data).eval()
    with torch.no_grad():
        a_items = net.item_graph().to_dense()
        ego = torch.cat([net.user_embedding.weight, net.item_embedding.weight])
        adj = dense_ui(data)
        light = (ego + adj @ ego + adj @ adj @ ego) / 3  # n_ui_layers = 2
        h = a_items @ net.item_embedding.weight  # n_layers = 1
        users, items = net.user_item_vectors()
        assert users.shape == (N_USERS, 8) and items.shape == (N_ITEMS, 8)
        assert torch.allclose(users, light[:N_USERS], atol=1e-5)
        assert torch.allclose(items, light[N_USERS:] + F.normalize(h, dim=1), atol=1e-5)
        scores = net.score(torch.tensor([0, 3]))
        assert scores.shape == (2, N_ITEMS)
        assert torch.allclose(scores, users[[0, 3]] @ items.T, atol=1e-5)


def test_loss_is_bpr_plus_l2_on_final_vectors():
    net = build(reg_weight=0.5)
    batch = {"users": torch.tensor([0, 1, 2]), "pos": torch.tensor([0, 3, 6]), "neg": torch.tensor([5, 7, 1])}
    net.on_epoch_start(0)
    loss = net.loss(batch)
    with torch.no_grad():
        users, items = net.forward_vectors(net.item_graph())
        u, i, j = users[batch["users"]], items[batch["pos"]], items[batch["neg"]]
        bpr = -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()
        reg = (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2 * 3)
    assert torch.allclose(loss, bpr + 0.5 * reg, atol=1e-6)


def test_learned_graph_is_rebuilt_once_per_epoch_and_fresh_for_evaluation():
    net = build()
    batch = {"users": torch.tensor([0, 1, 2]), "pos": torch.tensor([0, 3, 6]), "neg": torch.tensor([5, 7, 1])}
    net.train()
    net.on_epoch_start(0)
    net.loss(batch).backward()  # first batch: gradients reach the projections and the modality importances
    assert net.projections[0].net[0].weight.grad.abs().sum() > 0
    assert net.modal_weight.grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)
    epoch_graph = net._epoch_graph
    net.loss(batch).backward()  # later batches: the epoch's graph, detached
    assert net.projections[0].net[0].weight.grad is None and net.modal_weight.grad is None
    assert net.item_embedding.weight.grad.abs().sum() > 0
    assert net._epoch_graph is epoch_graph

    with torch.no_grad():  # the projection changes: evaluation sees the current learned graph, not the epoch's
        net.projections[0].net[0].weight.mul_(-1.0)
        net.modal_weight.copy_(torch.tensor([2.0, -2.0]))
    net.eval()
    _, items = net.user_item_vectors()
    with torch.no_grad():
        _, stale = net.forward_vectors(epoch_graph)
        _, fresh = net.forward_vectors(net.item_graph())
    assert torch.allclose(items, fresh) and not torch.allclose(items, stale)
    net.train()
    net.on_epoch_start(1)
    net.loss(batch)
    assert net._epoch_graph is not epoch_graph  # a new epoch, a new graph


def test_any_number_of_modalities_and_feature_finetuning():
    for modalities in (("genre",), ("image", "text", "genre")):
        net = build(tiny_data(modalities))
        assert net.modal_weight.shape == (len(modalities),)
        assert net.eval().score(torch.arange(N_USERS)).shape == (N_USERS, N_ITEMS)
    # raw features: out of the checkpoint when frozen, trainable parameters when fine-tuned (official code)
    frozen = build()
    assert not any(k.startswith("feature") for k in frozen.state_dict())
    tuned = build(finetune_features=True)
    tuned.on_epoch_start(0)
    batch = {"users": torch.tensor([0, 1]), "pos": torch.tensor([0, 3]), "neg": torch.tensor([5, 7])}
    tuned.loss(batch).backward()
    assert tuned.features[0].grad is not None and tuned.features[0].grad.abs().sum() > 0


def test_projection_init_torch_is_nn_linear_default_and_xavier_has_zero_bias():
    import pytest
    from torch import nn

    from recx.errors import ConfigError
    from recx.topn.layers import Projector

    torch.manual_seed(3)
    reference = nn.Linear(7, 8)  # PyTorch's own init: what MMRec's LATTICE projections start from
    torch.manual_seed(3)
    mmrec_like = Projector(7, 8, init="torch").net[0]
    assert torch.equal(mmrec_like.weight, reference.weight) and torch.equal(mmrec_like.bias, reference.bias)
    assert mmrec_like.bias.abs().sum() > 0 and mmrec_like.weight.abs().max() <= 1 / 7 ** 0.5
    torch.manual_seed(3)
    xavier = Projector(7, 8).net[0]
    assert torch.all(xavier.bias == 0) and not torch.equal(xavier.weight, reference.weight)
    # the key reaches LATTICE's projections
    assert all(torch.all(p.net[0].bias == 0) for p in build().projections)
    assert all(p.net[0].bias.abs().sum() > 0 for p in build(projection_init="torch").projections)
    with pytest.raises(ConfigError, match="projection init"):
        build(projection_init="kaiming")
