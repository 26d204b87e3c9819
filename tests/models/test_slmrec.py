"""SLMRec: multi-view propagation against a dense computation, fusion/scoring, the main and FAC losses by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.data.interactions import InteractionData
from recx.topn.models.slmrec import SLMRec, fac_widths

N_USERS, N_ITEMS, D = 4, 5, 8
TRAIN = [[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [3, 0], [3, 4], [2, 1]]


def tiny(modalities=("image", "text")) -> InteractionData:
    g = torch.Generator().manual_seed(0)
    dims = {"image": 6, "text": 3, "genre": 2}
    feats = {m: torch.randn(N_ITEMS, dims[m], generator=g) for m in modalities}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("tiny", N_USERS, N_ITEMS, torch.tensor(TRAIN), empty, empty,
                           [str(u) for u in range(N_USERS)], [str(i) for i in range(N_ITEMS)], feats)


def dense_lightgcn(users: torch.Tensor, items: torch.Tensor, n_layers: int) -> torch.Tensor:
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in TRAIN:
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    d = a.sum(1).pow(-0.5)
    adj = d[:, None] * a * d[None, :]
    x = torch.cat([users, items])
    layers = [x]
    for _ in range(n_layers):
        x = adj @ x
        layers.append(x)
    return torch.stack(layers).mean(0)


def batch(users, items, neg=None):
    users, items = torch.tensor(users), torch.tensor(items)
    return {"users": users, "pos": items, "neg": torch.zeros_like(items) if neg is None else torch.tensor(neg)}


def info_nce_by_hand(a, b, t):
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t
    return -torch.log_softmax(logits, dim=1).diagonal().mean()


def test_features_are_l2_normalised_by_default():
    data = tiny()
    model = SLMRec(data, embedding_dim=D)
    torch.testing.assert_close(model.feat_image, F.normalize(data.item_features["image"], dim=1))


@pytest.mark.parametrize("n_layers", [1, 3])
def test_every_view_matches_dense_lightgcn_with_shared_user_ids(n_layers):
    torch.manual_seed(0)
    model = SLMRec(tiny(), embedding_dim=D, n_layers=n_layers)
    users, items = model.propagate()
    assert users.shape == (N_USERS, 3 * D) and items.shape == (N_ITEMS, 3 * D)
    U = model.user_embedding.weight.detach()
    views = [model.item_embedding.weight.detach()] + [model.projections[m](getattr(model, f"feat_{m}")).detach()
                                                     for m in ("image", "text")]
    for k, item_view in enumerate(views):
        expected = dense_lightgcn(U, item_view, n_layers)
        torch.testing.assert_close(users[:, k * D:(k + 1) * D], expected[:N_USERS])
        torch.testing.assert_close(items[:, k * D:(k + 1) * D], expected[N_USERS:])


def test_score_is_the_fused_inner_product():
    torch.manual_seed(0)
    model = SLMRec(tiny(), embedding_dim=D).eval()
    users, items = model.propagate()
    zu, zi = model.fuse_user(users), model.fuse_item(items)
    assert model.fuse_user.in_features == 3 * D and model.fuse_user.out_features == D
    scores = model.score(torch.tensor([3, 1]))
    assert scores.shape == (2, N_ITEMS)
    torch.testing.assert_close(scores, zu[[3, 1]] @ zi.T)
    torch.testing.assert_close(model.item_representations(), zi)


def test_fac_widths_follow_the_paper_hierarchy():
    assert fac_widths(1, 64) == [64]            # Kwai: visual only
    assert fac_widths(2, 64) == [64, 32]        # MMRec: visual, textual
    assert fac_widths(3, 64) == [64, 64, 32]    # paper: visual, acoustic, textual


def test_loss_is_main_infonce_plus_alpha_times_fac_by_hand():
    torch.manual_seed(0)
    model = SLMRec(tiny(), embedding_dim=D, temperature=0.3, ssl_temperature=0.5, ssl_alpha=0.7)
    b = batch([0, 1, 2, 3], [1, 2, 3, 4])
    users, items = model.propagate()
    zu, zi = model.fuse_user(users[b["users"]]), model.fuse_item(items[b["pos"]])
    main = info_nce_by_hand(zu, zi, 0.3)
    id_view, image_view, text_view = items[b["pos"]].split(D, dim=1)
    a1 = model.fac_anchor[0](id_view)                     # ID → fine space (width D)
    a2 = model.fac_anchor[1](a1)                          # fine → coarse space (width D/2)
    b1, b2 = model.fac_modality[0](image_view), model.fac_modality[1](text_view)
    assert a1.shape[1] == D and a2.shape[1] == b2.shape[1] == D // 2
    fac = info_nce_by_hand(a1, b1, 0.5) + info_nce_by_hand(a2, b2, 0.5)
    torch.testing.assert_close(model.fac_loss(items[b["pos"]]), fac)
    torch.testing.assert_close(model.loss(b), main + 0.7 * fac)


def test_infonce_ignores_negatives_and_bpr_uses_them():
    torch.manual_seed(0)
    model = SLMRec(tiny(), embedding_dim=D)
    assert torch.equal(model.loss(batch([0, 1], [1, 2], neg=[3, 4])), model.loss(batch([0, 1], [1, 2], neg=[0, 0])))
    model.main_loss = "bpr"
    model.ssl_alpha = 0.0
    b = batch([0, 1], [1, 2], neg=[3, 4])
    users, items = model.propagate()
    zu, zi, zj = model.fuse_user(users[[0, 1]]), model.fuse_item(items[[1, 2]]), model.fuse_item(items[[3, 4]])
    torch.testing.assert_close(model.loss(b), F.softplus((zu * zj).sum(-1) - (zu * zi).sum(-1)).mean())
    assert not torch.equal(model.loss(b), model.loss(batch([0, 1], [1, 2], neg=[0, 0])))


def test_fac_gradient_reaches_ids_and_modality_projections_and_lowers_the_loss():
    torch.manual_seed(0)
    model = SLMRec(tiny(), embedding_dim=D)
    b = torch.tensor([0, 1, 2, 3, 4])
    model.fac_loss(model.propagate()[1][b]).backward()
    assert model.item_embedding.weight.grad.abs().sum() > 0
    assert model.projections["text"].net[0].weight.grad.abs().sum() > 0
    assert model.fuse_item.weight.grad is None  # FAC works on the views before fusion
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.fac_loss(model.propagate()[1][b]).item()
    for _ in range(10):
        opt.zero_grad()
        model.fac_loss(model.propagate()[1][b]).backward()
        opt.step()
    assert model.fac_loss(model.propagate()[1][b]).item() < before


@pytest.mark.parametrize("modalities", [("genre",), ("image", "text", "genre")])
def test_any_number_of_modalities(modalities):
    torch.manual_seed(0)
    model = SLMRec(tiny(modalities), embedding_dim=D)
    assert [layer.out_features for layer in model.fac_modality] == fac_widths(len(modalities), D)
    loss = model.loss(batch([0, 1, 2], [0, 1, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.eval().score(torch.tensor([0])).shape == (1, N_ITEMS)


def test_unknown_tasks_are_rejected_and_graph_stays_out_of_checkpoints():
    with pytest.raises(ValueError, match="FAC"):
        SLMRec(tiny(), embedding_dim=D, ssl_task="FD")
    with pytest.raises(ValueError, match="main_loss"):
        SLMRec(tiny(), embedding_dim=D, main_loss="softmax")
    state = SLMRec(tiny(), embedding_dim=D).state_dict()
    assert "feat_text" in state and not any(k.startswith("adjacency") for k in state)
