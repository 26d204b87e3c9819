"""MMGCN: the aggregation matrices, the per-modality layer equations against a dense re-implementation, the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.topn.losses import bpr_loss, l2_penalty
from recx.topn.graph import bipartite_aggregation_adjacency, sparse_matmul, transpose_csr
from recx.topn.models.mmgcn import MMGCN

# 3 users, 4 items: a duplicate pair, item 3 never seen in training (isolated)
PAIRS = torch.tensor([[0, 0], [0, 1], [1, 1], [2, 0], [2, 2], [2, 2], [1, 2]])
N_USERS, N_ITEMS = 3, 4


def tiny_data(n_modalities: int = 2, dims=(5, 3, 4)) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    feats = {f"m{k}": torch.randn(N_ITEMS, dims[k], generator=g) for k in range(n_modalities)}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, PAIRS, empty, empty, [str(u) for u in range(N_USERS)],
                           [str(i) for i in range(N_ITEMS)], feats)


def dense_adjacency() -> torch.Tensor:
    a = torch.zeros(N_USERS + N_ITEMS, N_USERS + N_ITEMS)
    for u, i in PAIRS.tolist():
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    return a


def test_aggregation_matrices_match_dense():
    a = dense_adjacency()
    summed = bipartite_aggregation_adjacency(PAIRS, N_USERS, N_ITEMS, "sum").to_dense()
    assert torch.equal(summed, a)  # the duplicate pair counts once
    mean = bipartite_aggregation_adjacency(PAIRS, N_USERS, N_ITEMS, "mean").to_dense()
    expected = a / a.sum(1, keepdim=True).clamp_min(1)
    assert torch.allclose(mean, expected)
    assert torch.allclose(mean.sum(1)[:-1], torch.ones(N_USERS + N_ITEMS - 1))  # rows average their neighbours...
    assert mean[-1].abs().sum() == 0  # ...and the isolated item aggregates nothing


def test_fixed_sparse_matmul_gradient_uses_the_transpose():
    mean = bipartite_aggregation_adjacency(PAIRS, N_USERS, N_ITEMS, "mean").to(torch.float64)
    assert torch.allclose(transpose_csr(mean).to_dense(), mean.to_dense().T)
    x = torch.randn(N_USERS + N_ITEMS, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(N_USERS + N_ITEMS, 4, dtype=torch.float64)
    g_sparse = torch.autograd.grad((sparse_matmul(mean, transpose_csr(mean), x) * w).sum(), x)[0]
    g_dense = torch.autograd.grad((mean.to_dense() @ x * w).sum(), x)[0]
    assert torch.allclose(g_sparse, g_dense)


def dense_branch(branch, features, id_embedding, agg, combination):
    """The paper's equations, written densely and independently of the model's code path."""
    items = features @ branch.projection.weight.T + branch.projection.bias if branch.projection else features
    x = torch.cat([branch.preference, items])
    x = x / x.norm(dim=1, keepdim=True)
    for conv, lin, comb in zip(branch.conv, branch.linear, branch.combine):
        h = F.leaky_relu(agg @ x @ conv.weight.T)
        x_hat = F.leaky_relu(x @ lin.weight.T + lin.bias) + id_embedding
        if combination == "concat":
            x = F.leaky_relu(torch.cat([h, x_hat], 1) @ comb.weight.T + comb.bias)
        else:
            x = F.leaky_relu(h @ comb.weight.T + comb.bias + x_hat)
    return x


@pytest.mark.parametrize("combination,aggregation,latent", [("concat", "mean", 6), ("sum", "sum", 6),
                                                            ("concat", "mean", None)])
def test_representations_match_dense_equations(combination, aggregation, latent):
    torch.manual_seed(0)
    model = MMGCN(tiny_data(), embedding_dim=4, n_layers=2, latent_dim=latent, aggregation=aggregation,
                  combination=combination)
    a = dense_adjacency()
    agg = a / a.sum(1, keepdim=True).clamp_min(1) if aggregation == "mean" else a
    expected = torch.stack([dense_branch(model.branches[m], getattr(model, f"features_{m}"), model.id_embedding, agg,
                                         combination) for m in model.modalities]).mean(0)
    users, items = model.propagate()
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-5)


@pytest.mark.parametrize("n_modalities", [1, 3])
def test_shapes_any_number_of_modalities_and_layers(n_modalities):
    model = MMGCN(tiny_data(n_modalities), embedding_dim=8, n_layers=3, latent_dim=6)
    assert len(model.branches) == n_modalities
    assert all(len(b.conv) == 3 for b in model.branches.values())  # n_layers is honoured (MMRec hard-codes 3)
    model.eval()
    users, items = model.user_item_vectors()
    assert users.shape == (N_USERS, 8) and items.shape == (N_ITEMS, 8)
    assert model.score(torch.tensor([0, 2])).shape == (2, N_ITEMS)
    keys = model.state_dict().keys()
    assert not any("features" in k or "adjacency" in k for k in keys)  # derived data stays out of checkpoints


def test_loss_is_bpr_plus_l2_and_trains_ids_and_preferences():
    torch.manual_seed(0)
    model = MMGCN(tiny_data(), embedding_dim=4, latent_dim=6, reg_weight=0.5)
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
    # unlike MMRec (plain tensors never handed to the optimiser), ID embeddings and preferences are learned
    assert model.id_embedding.grad.abs().sum() > 0
    assert all(b.preference.grad.abs().sum() > 0 for b in model.branches.values())


def test_regulariser_pulls_batch_embeddings_towards_zero():
    torch.manual_seed(0)
    batch = {"users": torch.tensor([1]), "pos": torch.tensor([1]), "neg": torch.tensor([0])}
    grads = []
    for reg in (0.0, 10.0):
        torch.manual_seed(0)
        model = MMGCN(tiny_data(), embedding_dim=4, latent_dim=6, reg_weight=reg)
        model.loss(batch).backward()
        grads.append((model.id_embedding.grad.clone(), model.id_embedding.detach().clone()))
    (g0, e), (g1, _) = grads
    row = 1  # user 1's ID row: the extra gradient is reg · e (descent shrinks it)
    assert torch.allclose(g1[row] - g0[row], 10.0 * e[row], atol=1e-5)
    assert torch.equal(g1[N_USERS + 3], g0[N_USERS + 3])  # item 3 is not in the batch: no penalty on it


def test_layer_init_mmrec_leaves_projection_and_later_combiners_at_linear_init(monkeypatch):
    from torch import nn

    from recx.errors import ConfigError

    touched = []
    xavier = nn.init.xavier_normal_
    monkeypatch.setattr(nn.init, "xavier_normal_", lambda t, *a, **k: touched.append(t) or xavier(t, *a, **k))

    def xavier_weights(layer_init):  # which weights of one branch got Xavier-normal
        touched.clear()
        branch = MMGCN(tiny_data(), n_layers=3, latent_dim=6, layer_init=layer_init).branches["m0"]
        named = {"projection": branch.projection, **{f"linear{k}": m for k, m in enumerate(branch.linear)},
                 **{f"combine{k}": m for k, m in enumerate(branch.combine)}}
        return {name for name, m in named.items() if any(t is m.weight for t in touched)}

    assert xavier_weights("xavier_normal") == {"projection", "linear0", "linear1", "linear2", "combine0", "combine1",
                                               "combine2"}
    # MMRec's GCN: xavier on linear_layer1-3 and g_layer1 only; its MLP and g_layer2/3 keep nn.Linear's init
    assert xavier_weights("mmrec") == {"linear0", "linear1", "linear2", "combine0"}
    with pytest.raises(ConfigError, match="layer_init"):
        MMGCN(tiny_data(), layer_init="kaiming")
