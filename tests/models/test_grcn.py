"""GRCN: edge indexing and sparse products against dense ones, routing/affinities/refined graph against a dense
re-implementation of the paper's equations, pruning, shapes and the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.topn.losses import bpr_loss, l2_penalty
from recx.topn.models.grcn import GRCN, BipartiteEdges, pattern_dots, pattern_matmul

# 3 users, 4 items: a duplicate pair, item 3 never seen in training (isolated)
PAIRS = torch.tensor([[0, 0], [0, 1], [1, 1], [2, 0], [2, 2], [2, 2], [1, 2], [2, 1]])
N_USERS, N_ITEMS = 3, 4
N = N_USERS + N_ITEMS


def tiny_data(n_modalities: int = 2) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    feats = {f"m{k}": torch.randn(N_ITEMS, 3 + k, generator=g) for k in range(n_modalities)}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, PAIRS, empty, empty, [str(u) for u in range(N_USERS)],
                           [str(i) for i in range(N_ITEMS)], feats)


def user_item_mask() -> torch.Tensor:
    m = torch.zeros(N_USERS, N_ITEMS, dtype=torch.bool)
    m[PAIRS[:, 0], PAIRS[:, 1]] = True
    return m


def directed_dense(edges: BipartiteEdges, values: torch.Tensor) -> torch.Tensor:
    """The [N, N] matrix W[target, source] of per-directed-edge values (differentiable w.r.t. the values)."""
    target = torch.repeat_interleave(torch.arange(N), edges.graph.crow.diff())
    assert torch.unique(target * N + edges.source).shape[0] == target.shape[0]  # no entry written twice
    return torch.zeros(N, N, dtype=values.dtype).index_put((target, edges.source), values)


def test_edge_indexing_matches_the_graph():
    edges = BipartiteEdges(PAIRS, N_USERS, N_ITEMS)
    mask = user_item_mask()
    assert edges.users.shape[0] == int(mask.sum())  # deduplicated
    a = torch.zeros(N, N)
    a[:N_USERS, N_USERS:] = mask.float()
    a[N_USERS:, :N_USERS] = mask.T.float()
    ones = torch.ones(2 * edges.users.shape[0])
    assert torch.equal(directed_dense(edges, ones), a)
    # directed(v): an undirected per-edge value lands on both directions of its edge
    v = torch.arange(1.0, edges.users.shape[0] + 1)
    w = directed_dense(edges, edges.directed(v))
    assert torch.equal(w, w.T)
    assert torch.equal(w[edges.users, N_USERS + edges.items], v)


def test_sparse_products_and_their_gradients_match_dense():
    edges = BipartiteEdges(PAIRS, N_USERS, N_ITEMS)
    n_edges = edges.users.shape[0]
    values = torch.randn(2 * n_edges, dtype=torch.float64, requires_grad=True)
    x = torch.randn(N, 5, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(N, 5, dtype=torch.float64)
    # the precomputed transpose is the transpose
    assert torch.equal(edges.graph.transposed(values.detach()).to_dense(),
                       edges.graph.matrix(values.detach()).to_dense().T)
    sparse = torch.autograd.grad((pattern_matmul(edges.graph, values, x) * probe).sum(), (values, x))
    dense_w = directed_dense(edges, values)  # differentiable w.r.t. values through the entry-wise build
    dense = torch.autograd.grad((dense_w @ x * probe).sum(), (values, x))
    assert all(torch.allclose(s, d) for s, d in zip(sparse, dense))

    p = torch.randn(N_USERS, 4, dtype=torch.float64, requires_grad=True)
    f = torch.randn(N_ITEMS, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(n_edges, dtype=torch.float64)
    dots = pattern_dots(edges.user_block, p, f)
    assert torch.allclose(dots, (p @ f.T)[edges.users, edges.items])
    sparse = torch.autograd.grad((dots * weights).sum(), (p, f))
    dense = torch.autograd.grad(((p @ f.T)[edges.users, edges.items] * weights).sum(), (p, f))
    assert all(torch.allclose(s, d) for s, d in zip(sparse, dense))


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=dim).nan_to_num(0.0)


def dense_branch(branch, features, n_routing):
    """The paper's graph-refining equations for one modality, dense: returns c [N, d] and A [N, N] (A[t, s] = α)."""
    mask = user_item_mask()
    f = F.leaky_relu(features @ branch.mlp.weight.T + branch.mlp.bias)
    f = f / f.norm(dim=1, keepdim=True)
    p = branch.preference / branch.preference.norm(dim=1, keepdim=True)
    for _ in range(n_routing):
        alpha = masked_softmax(p @ f.T, mask, dim=1)  # over each user's items
        p = p + alpha @ f
        p = p / p.norm(dim=1, keepdim=True)
    s = p @ f.T
    a = torch.zeros(N, N)
    a[:N_USERS, N_USERS:] = masked_softmax(s, mask, dim=1)  # into users: over the user's items
    a[N_USERS:, :N_USERS] = masked_softmax(s, mask, dim=0).T  # into items: over the item's users
    x = torch.cat([p, f])
    return x + a @ x, a


@pytest.mark.parametrize("n_routing", [0, 1, 3])
def test_content_branch_matches_dense_paper_equations(n_routing):
    torch.manual_seed(0)
    model = GRCN(tiny_data(), embedding_dim=4, latent_dim=5, n_routing=n_routing)
    for m in model.modalities:
        branch, feats = model.branches[m], getattr(model, f"features_{m}")
        content, alpha = branch(feats, model.edges, n_routing)
        expected_c, expected_a = dense_branch(branch, feats, n_routing)
        assert torch.allclose(content, expected_c, atol=1e-5)
        assert torch.allclose(directed_dense(model.edges, alpha), expected_a, atol=1e-5)


def test_routing_moves_prototypes_towards_the_users_items():
    torch.manual_seed(0)
    model = GRCN(tiny_data(1), embedding_dim=4, latent_dim=5)
    branch, feats = model.branches["m0"], model.features_m0
    items = F.normalize(F.leaky_relu(branch.mlp(feats)), dim=1)
    centre = F.normalize(user_item_mask().float() @ items, dim=1)  # direction of each user's items
    agreement = []
    for t in (0, 1, 3):
        c, alpha = branch(feats, model.edges, t)
        prototypes = c[:N_USERS] - directed_dense(model.edges, alpha)[:N_USERS, N_USERS:] @ items  # c_u = p_u + Σα f
        if t == 0:  # no routing (what the official code effectively computes): the normalised preferences
            assert torch.allclose(prototypes, F.normalize(branch.preference, dim=1), atol=1e-6)
        agreement.append(F.cosine_similarity(prototypes, centre).mean().item())
    assert agreement[0] < agreement[1] < agreement[2]


def dense_model(model):
    contents, affinities = zip(*(dense_branch(model.branches[m], getattr(model, f"features_{m}"), model.n_routing)
                                 for m in model.modalities))
    a = torch.stack(affinities)  # [M, N, N]
    kappa = model.confidence.T[:, None, :]  # [M, 1, N]: confidence of the source (column) node
    w = F.relu((a * kappa).amax(0))
    w = w * (a.sum(0) > 0)  # only training edges exist
    x = F.normalize(model.id_embedding, dim=1)
    ids = x + w @ x + w @ (w @ x)
    return torch.cat([ids, *contents], dim=1), w


def test_refined_graph_and_representations_match_dense():
    torch.manual_seed(0)
    model = GRCN(tiny_data(), embedding_dim=4, latent_dim=5, n_layers=2)
    z, weights = model.forward_all()
    expected_z, expected_w = dense_model(model)
    assert torch.allclose(directed_dense(model.edges, weights), expected_w, atol=1e-6)
    assert torch.allclose(z, expected_z, atol=1e-5)
    assert z.shape == (N, 4 + 2 * 5)


def test_pruning_cuts_exactly_the_negative_confidence_edges():
    torch.manual_seed(0)
    model = GRCN(tiny_data(), embedding_dim=4, latent_dim=5)
    with torch.no_grad():
        model.confidence.abs_()
        model.confidence[0] = -1.0  # user 0 distrusted in every modality: its messages are cut...
        model.confidence[N_USERS + 1, 0] = -1.0  # ...item 1 distrusted in one modality only: max keeps its edges
    _, weights = model.forward_all()
    w = directed_dense(model.edges, weights)
    pruned = (weights == 0).sum()
    assert pruned == int(user_item_mask()[0].sum())  # = user 0's edges, in the user → item direction only
    assert (w[N_USERS:, 0] == 0).all() and (w[0, N_USERS:][user_item_mask()[0]] > 0).all()
    assert (w[:N_USERS, N_USERS + 1][user_item_mask()[:, 1]] > 0).all()
    # the ID graph convolution no longer carries user 0's ID embedding to any item
    z, _ = model.forward_all()
    grad = torch.autograd.grad(z[N_USERS:, :4].sum(), model.id_embedding)[0]
    assert grad[0].abs().sum() == 0
    no_pruning = GRCN(tiny_data(), embedding_dim=4, latent_dim=5, pruning=False)
    no_pruning.load_state_dict(model.state_dict())
    assert (no_pruning.forward_all()[1] < 0).sum() == pruned


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_other_weight_modes(mode):
    torch.manual_seed(0)
    model = GRCN(tiny_data(), embedding_dim=4, latent_dim=5, weight_mode=mode)
    _, weights = model.forward_all()
    affinities = torch.stack([model.branches[m](getattr(model, f"features_{m}"), model.edges, 3)[1]
                              for m in model.modalities], 1)
    expected = affinities.amax(1) if mode == "max" else affinities.mean(1)
    assert torch.allclose(weights, expected)


@pytest.mark.parametrize("n_modalities", [1, 3])
def test_shapes_and_checkpoint_contents(n_modalities):
    model = GRCN(tiny_data(n_modalities), embedding_dim=8, latent_dim=6).eval()
    users, items = model.user_item_vectors()
    assert users.shape == (N_USERS, 8 + 6 * n_modalities) and items.shape == (N_ITEMS, 8 + 6 * n_modalities)
    assert model.score(torch.tensor([0, 2])).shape == (2, N_ITEMS)
    assert model.confidence.shape == (N, n_modalities)
    assert not any("features" in k or "edges" in k for k in model.state_dict())


def test_loss_is_bpr_plus_l2_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = GRCN(tiny_data(), embedding_dim=4, latent_dim=5, reg_weight=0.5)
    batch = {"users": torch.tensor([0, 2]), "pos": torch.tensor([1, 2]), "neg": torch.tensor([3, 3])}
    users, items = model.propagate()
    u = users[batch["users"]]
    expected = bpr_loss((u * items[batch["pos"]]).sum(-1), (u * items[batch["neg"]]).sum(-1)) + 0.5 * l2_penalty(
        model.id_embedding[batch["users"]], model.id_embedding[N_USERS + batch["pos"]],
        model.id_embedding[N_USERS + batch["neg"]], *(b.preference[batch["users"]] for b in model.branches.values()),
        batch_size=2)
    loss = model.loss(batch)
    assert torch.allclose(loss, expected)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name  # incl. κ and the MLPs, through the edge weights
