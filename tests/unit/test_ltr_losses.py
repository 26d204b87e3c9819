"""LTR losses against hand-computed cases and naive per-query implementations."""

import math

import pytest
import torch

from recx.ltr.losses import (ideal_order, lambdarank_loss, listmle_loss, listnet_loss, plackett_luce_nll,
                             softmax_cross_entropy)
from recx.ltr.models.inforank import shuffle_within_query


def naive_pl_nll(scores, order, n_real):
    """Stage by stage, one query at a time, in plain Python."""
    total = 0.0
    remaining = list(order[:n_real])
    for doc in order[:n_real]:
        denominator = sum(math.exp(scores[j]) for j in remaining)
        total -= math.log(math.exp(scores[doc]) / denominator)
        remaining.remove(doc)
    return total


def test_pl_nll_hand_case():
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    order = torch.tensor([[2, 1, 0]])
    expected = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3))) - math.log(
        math.exp(2) / (math.exp(1) + math.exp(2)))
    got = plackett_luce_nll(scores, order, torch.ones(1, 3, dtype=torch.bool))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_pl_nll_matches_naive_with_padding():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 7, generator=g)
    lengths = torch.tensor([7, 3, 5, 1, 6])
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    targets = torch.randint(0, 4, (5, 7), generator=g)
    order = ideal_order(targets, mask, g)
    got = plackett_luce_nll(scores, order, mask)
    for q in range(5):
        n = int(lengths[q])
        assert order[q, :n].sort().values.tolist() == list(range(n)), "real documents come first"
        assert got[q].item() == pytest.approx(naive_pl_nll(scores[q].tolist(), order[q].tolist(), n), rel=1e-5)


def test_pl_top_k_is_the_prefix_likelihood():
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    order = torch.tensor([[2, 0, 3, 1]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    full = plackett_luce_nll(scores, order, mask)
    top1 = plackett_luce_nll(scores, order, mask, top_k=1)
    assert top1.item() == pytest.approx(-torch.log_softmax(scores, -1)[0, 2].item(), rel=1e-6)
    assert top1.item() < full.item()


def test_pl_gradient_raises_the_first_placed_document():
    scores = torch.zeros(1, 4, requires_grad=True)
    plackett_luce_nll(scores, torch.tensor([[1, 0, 2, 3]]), torch.ones(1, 4, dtype=torch.bool)).sum().backward()
    assert scores.grad[0, 1] < 0  # descending the loss raises doc 1's score
    assert scores.grad[0, 3] > 0  # and lowers the last one's


def test_ideal_order_respects_targets_and_shuffles_ties():
    targets = torch.tensor([[0, 2, 1, 2, 0, 0]]).repeat(200, 1)
    mask = torch.tensor([[True] * 5 + [False]]).repeat(200, 1)
    order = ideal_order(targets, mask, torch.Generator().manual_seed(1))
    assert set(order[:, :2].flatten().tolist()) == {1, 3}
    assert (order[:, 2] == 2).all() and (order[:, 5] == 5).all()
    first = order[:, 0]
    assert 50 < (first == 1).sum() < 150, "ties appear in both orders"


def test_listmle_is_low_for_a_well_ordered_list():
    targets = torch.tensor([[3, 2, 1, 0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    good = listmle_loss(torch.tensor([[9.0, 6.0, 3.0, 0.0]]), targets, mask)
    bad = listmle_loss(torch.tensor([[0.0, 3.0, 6.0, 9.0]]), targets, mask)
    assert good < 0.2 < bad


def test_listnet_normalized_hand_case_and_zero_gain_queries_skipped():
    scores = torch.tensor([[1.0, 0.0, 0.0], [5.0, 1.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    log_p = torch.log_softmax(scores[0], 0)
    q = torch.tensor([1.0, 0.0, 3.0]) / 4.0  # gains 2^t - 1
    expected = -(q * log_p).sum()
    assert listnet_loss(scores, targets, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_listnet_softmax_target_is_caos_definition():
    scores = torch.tensor([[0.5, -0.5, 1.0, 7.0]])
    targets = torch.tensor([[2.0, 0.0, 1.0, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    p = torch.softmax(targets[0, :3], 0)
    expected = -(p * torch.log_softmax(scores[0, :3], 0)).sum()
    assert listnet_loss(scores, targets, mask, target="softmax").item() == pytest.approx(expected.item(), rel=1e-6)


def test_softmax_cross_entropy_ignores_padding_and_weights():
    scores = torch.tensor([[2.0, 1.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    w = torch.tensor([[0.0, 3.0, 5.0]])
    expected = -torch.log_softmax(torch.tensor([2.0, 1.0]), 0)[1]
    assert softmax_cross_entropy(scores, w, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_lambdarank_pairs_and_gradient_direction():
    mask = torch.ones(1, 3, dtype=torch.bool)
    tied = lambdarank_loss(torch.tensor([[0.1, 0.5, 0.2]]), torch.tensor([[1, 1, 1]]), mask)
    assert tied.item() == 0.0
    scores = torch.tensor([[0.0, 1.0, 0.5]], requires_grad=True)
    lambdarank_loss(scores, torch.tensor([[2, 0, 0]]), mask).backward()
    assert scores.grad[0, 0] < 0 and scores.grad[0, 1] > 0
    # hand case: two docs, relevant one ranked second: |ΔNDCG| = 1 - 1/log2(3) times ... / IDCG
    s = torch.tensor([[0.0, 1.0]])
    loss = lambdarank_loss(s, torch.tensor([[1, 0]]), torch.ones(1, 2, dtype=torch.bool))
    delta = (1.0 - 1.0 / math.log2(3)) / 1.0
    assert loss.item() == pytest.approx(delta * math.log1p(math.exp(1.0)), rel=1e-5)


def test_shuffle_within_query_takes_another_real_document():
    values = torch.arange(12.0).view(2, 6)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    out = shuffle_within_query(values, mask, torch.Generator().manual_seed(0))
    assert (out[mask] != values[mask]).all()
    assert set(out[1, :3].tolist()) == {6.0, 7.0, 8.0} and out[1, 3:].tolist() == [9.0, 10.0, 11.0]
    assert sorted(out[0].tolist()) == values[0].tolist()
