"""DRAGON: the frozen item–item graph (per-modality binary kNN, sym-normalised, weighted) and the user co-occurrence
graph equal dense constructions; the dual representations are the attentive concatenation plus the homogeneous-graph
terms; the loss terms have the right values and gradient direction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.errors import ConfigError
from recx.topn.features import modality_weights as item_graph_coefficients
from recx.topn.models.dragon import DRAGON
from recx.topn.models.dualgnn import DualGNN, user_cooccurrence_graph
from tests.models.test_dualgnn import N_ITEMS, N_USERS, dense_user_graph, tiny_data


def dense_binary_knn_sym(features: torch.Tensor, k: int) -> torch.Tensor:
    """FREEDOM/DRAGON's item graph from the full cosine matrix: top-k (self included), binary, D^-1/2 A D^-1/2."""
    x = F.normalize(features, dim=1)
    sim = x @ x.T
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :k]
    a = torch.zeros_like(sim)
    a[torch.arange(sim.shape[0]).unsqueeze(1).expand_as(order), order] = 1.0
    d = a.sum(1) + 1e-7
    return a / torch.sqrt(torch.outer(d, d))


def test_item_graph_matches_dense_weighted_knn():
    data = tiny_data()
    model = DRAGON(data, embedding_dim=4, knn_k=3, user_knn_k=2)
    expected = (0.1 * dense_binary_knn_sym(data.item_features["image"], 3)
                + 0.9 * dense_binary_knn_sym(data.item_features["text"], 3))  # MMRec mm_image_weight = 0.1
    assert torch.allclose(model.item_graph.to_dense(), expected, atol=1e-6)
    # the user graph is the shared co-occurrence graph (DualGNN's), built once per dataset
    assert torch.allclose(model.user_graph.to_dense(), dense_user_graph(2), atol=1e-6)
    DualGNN(data, embedding_dim=4, user_knn_k=2)
    assert len([k for k in data.__dict__["_derived"] if k.startswith("user_cooccurrence")]) == 1
    assert user_cooccurrence_graph(data, 2) is data.__dict__["_derived"]["user_cooccurrence_k2"]


def test_item_graph_coefficients():
    assert item_graph_coefficients(["image", "text"], None) == pytest.approx([0.1, 0.9])
    assert item_graph_coefficients(["text"], None) == pytest.approx([1.0])  # one modality: its graph alone
    assert item_graph_coefficients(["text", "genre"], {"text": 0.9}, 1.0) == pytest.approx([0.9 / 1.9, 1.0 / 1.9])
    assert item_graph_coefficients(["a", "b", "c"], {}, 2.0) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ConfigError):
        item_graph_coefficients(["image", "text"], {"image": -1.0, "text": 0.5})
    with pytest.raises(ConfigError):
        item_graph_coefficients(["genre"], {}, 0.0)


@pytest.mark.parametrize("n_mm_layers,user_layers", [(1, 1), (2, 2), (0, 1)])
def test_dual_representations_match_dense_computation(n_mm_layers, user_layers):
    torch.manual_seed(0)
    data = tiny_data()
    model = DRAGON(data, embedding_dim=4, knn_k=3, user_knn_k=2, n_mm_layers=n_mm_layers,
                   user_layers=user_layers).eval()
    with torch.no_grad():
        users, items = model.user_item_vectors()
        reps = model.modality_representations()
        w = model.user_weights
        h_u = torch.cat([w[:, :1] * reps[0][:N_USERS], w[:, 1:] * reps[1][:N_USERS]], dim=1)  # attentive concat
        h_i = torch.cat([reps[0][N_USERS:], reps[1][N_USERS:]], dim=1)
        s = model.item_graph.to_dense()
        wu = dense_user_graph(2)
    assert users.shape == (N_USERS, 8) and items.shape == (N_ITEMS, 8)  # M·d wide
    assert torch.allclose(users, h_u + torch.linalg.matrix_power(wu, user_layers) @ h_u, atol=1e-5)
    assert torch.allclose(items, h_i + torch.linalg.matrix_power(s, n_mm_layers) @ h_i, atol=1e-5)


def test_modalities_are_generic():
    one = DRAGON(tiny_data(("genre",)), embedding_dim=4, knn_k=3, user_knn_k=2)
    assert one.user_weights is None and one.item_coefficients == [1.0]
    assert one.user_item_vectors()[0].shape == (N_USERS, 4)
    three = DRAGON(tiny_data(("image", "text", "genre")), embedding_dim=4, knn_k=3, user_knn_k=2)
    u, i = three.user_item_vectors()
    assert u.shape == (N_USERS, 12) and i.shape == (N_ITEMS, 12)
    assert sum(three.item_coefficients) == pytest.approx(1.0)


def test_loss_terms_values_and_gradient_direction():
    torch.manual_seed(0)
    model = DRAGON(tiny_data(), embedding_dim=4, knn_k=3, user_knn_k=2, reg_weight=0.5)
    batch = {"users": torch.tensor([0, 1, 2]), "pos": torch.tensor([1, 0, 3]), "neg": torch.tensor([7, 6, 5])}
    users, items = model.propagate()
    u = users[batch["users"]]
    diff = (u * items[batch["pos"]]).sum(-1) - (u * items[batch["neg"]]).sum(-1)
    reg = sum(g.preference[batch["users"]].pow(2).mean() for g in model.gcns) + model.user_weights.pow(2).mean()
    assert torch.allclose(model.loss(batch), -torch.log2(torch.sigmoid(diff)).mean() + 0.5 * reg, atol=1e-6)

    model.reg_weight = 0.0
    before = diff.detach()
    model.loss(batch).backward()
    # frozen graphs: only the user tables, projection MLPs and fusion weights learn
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None} == {"gcns", "user_weights"}
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
        users, items = model.propagate()
        u = users[batch["users"]]
        after = (u * items[batch["pos"]]).sum(-1) - (u * items[batch["neg"]]).sum(-1)
    assert (after > before).all()


def test_graphs_stay_out_of_the_checkpoint():
    model = DRAGON(tiny_data(), embedding_dim=4, knn_k=3, user_knn_k=2)
    keys = set(model.state_dict())
    assert not any("feature" in k or "graph" in k or "adjacency" in k for k in keys), keys
