"""Small top-N building blocks: negative sampling, the normalised graph, the losses, CSR helpers."""

from __future__ import annotations

import math

import torch

from recx.data.interactions import pairs_to_csr
from recx.topn.graph import normalized_bipartite_adjacency
from recx.topn.losses import bpr_loss, l2_penalty
from recx.topn.sampling import pair_keys, sample_negatives


def test_negatives_are_never_seen_items_and_are_seeded():
    n_users, n_items = 30, 12
    g = torch.Generator().manual_seed(0)
    # users see most of the catalogue so rejection really happens
    pairs = torch.stack([torch.randint(n_users, (300,), generator=g), torch.randint(n_items, (300,), generator=g)], 1)
    keys = pair_keys(pairs, n_items)
    users = pairs[:, 0]
    neg = sample_negatives(users, n_items, keys, torch.Generator().manual_seed(5))
    assert not torch.isin(users * n_items + neg, keys).any()
    again = sample_negatives(users, n_items, keys, torch.Generator().manual_seed(5))
    assert torch.equal(neg, again)


def test_normalized_adjacency_matches_dense_formula():
    pairs = torch.tensor([[0, 0], [0, 2], [1, 2], [2, 1], [2, 2], [2, 2]])  # a duplicate edge
    n_users, n_items = 3, 3
    adj = normalized_bipartite_adjacency(pairs, n_users, n_items).to_dense()
    a = torch.zeros(6, 6)
    for u, i in pairs.unique(dim=0).tolist():
        a[u, n_users + i] = a[n_users + i, u] = 1
    d = a.sum(1)
    expected = a / torch.sqrt(torch.outer(d, d)).clamp_min(1e-12)
    assert torch.allclose(adj, expected)


def test_bpr_loss_and_penalty_values():
    assert math.isclose(float(bpr_loss(torch.tensor([2.0]), torch.tensor([0.0]))), math.log1p(math.exp(-2.0)),
                        rel_tol=1e-6)
    e = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    assert math.isclose(float(l2_penalty(e, e, batch_size=2)), 2 * 6.0 / 4.0)


def test_pairs_to_csr_dedups_and_sorts():
    indptr, indices = pairs_to_csr(torch.tensor([[1, 3], [0, 2], [1, 0], [1, 3]]), 3, 4)
    assert indptr.tolist() == [0, 1, 3, 3]
    assert indices.tolist() == [2, 0, 3]


def test_symmetric_spmm_gradient_matches_dense():
    from recx.topn.graph import symmetric_spmm

    pairs = torch.tensor([[0, 0], [0, 2], [1, 2], [2, 1], [3, 0]])
    adj = normalized_bipartite_adjacency(pairs, 4, 3).to(torch.float64)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    sparse_grad = torch.autograd.grad(symmetric_spmm(adj, x).pow(2).sum(), x)[0]
    dense_grad = torch.autograd.grad((adj.to_dense() @ x).pow(2).sum(), x)[0]
    assert torch.allclose(sparse_grad, dense_grad)


def test_derived_state_follows_the_parameters_device():
    from torch import nn

    from recx.topn.models.base import DerivedState

    class Holder(DerivedState):
        derived = ("graph", "parts", "maybe")

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(2))
            self.graph, self.parts, self.maybe = torch.ones(3), [torch.ones(1), torch.ones(2)], None

    holder = Holder().to("meta")
    assert holder.graph.device.type == "meta" and all(p.device.type == "meta" for p in holder.parts)
    assert holder.maybe is None and "graph" not in holder.state_dict()


def test_users_from_items_is_the_user_rows_of_the_normalised_adjacency():
    import torch

    from recx.topn.graph import normalized_bipartite_adjacency, users_from_items

    pairs = torch.tensor([[0, 0], [0, 1], [1, 1]])
    adjacency = normalized_bipartite_adjacency(pairs, 2, 2)
    items = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    users = users_from_items(adjacency, items, 2)
    # user 0 (degree 2) sees items 0 (degree 1) and 1 (degree 2): 1/sqrt(2·1)·i0 + 1/sqrt(2·2)·i1
    expected0 = items[0] / 2 ** 0.5 + items[1] / 2.0
    expected1 = items[1] / 2 ** 0.5  # user 1 (degree 1) sees item 1 (degree 2)
    assert torch.allclose(users, torch.stack([expected0, expected1]), atol=1e-6)


def test_vbpr_projects_each_distinct_batch_item_once_with_the_same_loss_and_gradients():
    """VBPR's training loss projects the distinct items of a batch once; values and gradients equal projecting
    every row of the batch (item_vectors), and a wrong gather would break the equality."""
    from recx.data.interactions import InteractionData
    from recx.topn.models.vbpr import VBPR

    g = torch.Generator().manual_seed(0)
    pairs = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [1, 0]])
    empty = torch.empty(0, 2, dtype=torch.long)
    data = InteractionData("tiny", 4, 6, pairs, empty, empty, [str(u) for u in range(4)],
                           [str(i) for i in range(6)], {"image": torch.randn(6, 7, generator=g),
                                                        "text": torch.randn(6, 5, generator=g)})
    torch.manual_seed(0)
    model = VBPR(data, embedding_dim=8, reg_weight=0.1, reg_scope="full")
    batch = {"users": torch.tensor([0, 1, 1, 3, 2, 0]), "pos": torch.tensor([1, 2, 2, 4, 3, 0]),
             "neg": torch.tensor([5, 5, 0, 2, 4, 1])}

    def per_row_loss():
        from recx.topn.losses import bpr_loss, l2_penalty

        u = model.user_embedding(batch["users"])
        i, j = model.item_vectors(batch["pos"]), model.item_vectors(batch["neg"])
        reg = l2_penalty(u, i, j, batch_size=6, form=model.reg_form)
        return bpr_loss((u * i).sum(-1), (u * j).sum(-1)) + model.reg_weight * reg

    expected = per_row_loss()
    expected.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    got = model.loss(batch)
    got.backward()
    assert torch.allclose(got, expected, atol=1e-6)
    for p, ref in zip(model.parameters(), grads):
        assert torch.allclose(p.grad, ref, atol=1e-6)
