"""DRepMRec: BMA losses by hand, decoupled lines (no shared parameters, no cross-line gradient from SSS), the whole
loss as the sum of its terms, fusion modes. Learning on cold items and determinism: tests/models/test_zoo.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recx.errors import ConfigError
from recx.run import build_net
from recx.topn.bma import bma_losses
from recx.topn.models.alignrec import similarity_preservation
from tests.models.test_zoo import build, compose


def nce(a, b, t):
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t
    return -torch.log_softmax(logits, dim=1).diag().mean()


def test_bma_losses_by_hand():
    g = torch.Generator().manual_seed(0)
    bu, bi, mu, mi = (torch.randn(5, 4, generator=g) for _ in range(4))
    intra, inter = bma_losses(bu, bi, mu, mi, 0.5)
    assert intra.item() == pytest.approx((nce(bu, mu, 0.5) + nce(bi, mi, 0.5)).item(), rel=1e-5)
    assert inter.item() == pytest.approx((nce(bu, mi, 0.5) + nce(mu, bi, 0.5)).item(), rel=1e-5)
    # aligned lines (modal = behaviour) score lower than unrelated ones
    aligned, _ = bma_losses(bu, bi, bu.clone(), bi.clone(), 0.5)
    assert aligned < intra


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build("model=drepmrec", run_dir=tmp_path_factory.mktemp("drepmrec"))


def test_lines_share_no_parameters_and_sss_stays_in_the_modal_line(tiny):
    _, dm, net = tiny
    modal = {id(p) for p in net.modal.parameters()}
    behaviour = {id(net.user_embedding.weight), id(net.item_embedding.weight)}
    assert modal and not modal & behaviour
    assert {id(p) for p in net.parameters()} == modal | behaviour
    net.zero_grad()
    _, _, views = net.modal()
    pos = dm.epoch_triplets(0)["pos"][:32]
    similarity_preservation(views[0].index_select(0, pos), net.modal.raw(0).index_select(0, pos)).backward()
    assert net.user_embedding.weight.grad is None and net.item_embedding.weight.grad is None
    assert net.modal.projections[0].net[-1].weight.grad.abs().sum() > 0


def test_loss_is_the_sum_of_its_terms_and_fusion_modes(tiny, tmp_path):
    cfg, dm, net = tiny
    batch = {k: v[:64] for k, v in dm.epoch_triplets(0).items()}
    b_u, b_i = net.behaviour()
    m_u, m_i, views = net.modal()
    z_u, z_i = b_u + m_u, b_i + m_i
    u, i, j = z_u[batch["users"]], z_i[batch["pos"]], z_i[batch["neg"]]
    bpr = -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()
    eu, ei, ej = (net.user_embedding.weight[batch["users"]], net.item_embedding.weight[batch["pos"]],
                  net.item_embedding.weight[batch["neg"]])
    reg = 0.5 * (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / 64
    intra, inter = bma_losses(b_u[batch["users"]], b_i[batch["pos"]], m_u[batch["users"]], m_i[batch["pos"]], 0.2)
    sss = sum(similarity_preservation(v[batch["pos"]], net.modal.raw(k)[batch["pos"]]) for k, v in enumerate(views))
    expected = bpr + net.reg_weight * reg + net.intra_weight * intra + net.inter_weight * inter + net.sss_weight * sss
    assert net.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
    concat = build_net(compose("model=drepmrec", "model.fusion=concat", run_dir=tmp_path).model, dm.data)
    users, items = concat.forward_vectors()
    assert users.shape[1] == items.shape[1] == 128
    with pytest.raises(ConfigError, match="unknown fusion"):
        build_net(compose("model=drepmrec", "model.fusion=max", run_dir=tmp_path).model, dm.data)
