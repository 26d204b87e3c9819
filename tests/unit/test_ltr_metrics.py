"""Learning-to-rank metrics against independent oracles.

* NDCG@k against sklearn.metrics.ndcg_score, query by query on the unpadded lists, while the batched version sees the
  same queries padded with garbage (huge scores, NaN / out-of-range labels);
* ERR, AP, RR, ties and STARank's position-accuracy "NDCG" on small cases worked out by hand;
* DCG@k == PBM expected clicks with e = 1/log2(rank+1), gamma = 2^r - 1;
* UBM Monte-Carlo expected clicks against an exact enumeration of all 2^4 click vectors.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from sklearn.metrics import ndcg_score

from recx.errors import ConfigError
from recx.ltr.clicks import UBM_TABLE, ULTRA_CLICK_PROB
from recx.metrics import ltr


def lg(x: float) -> float:
    return math.log2(x)


def padded_random(seed: int, batch: int = 12, length: int = 9, garbage: bool = True):
    """Random slates of varying length; padding holds scores that would rank first and absurd labels."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(batch, length, generator=g, dtype=torch.float64).float()  # continuous: no ties
    labels = torch.randint(0, 5, (batch, length), generator=g).float()
    lengths = torch.randint(2, length + 1, (batch,), generator=g)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    labels[0, : lengths[0]] = 0.0  # one query without any relevant document
    if garbage:
        scores = torch.where(mask, scores, torch.full_like(scores, 1e6))
        labels = torch.where(mask, labels, torch.full_like(labels, float("nan")))
        labels[~mask & (torch.arange(length) % 2 == 0)] = 99.0
    return scores, labels, mask, lengths


# --------------------------------------------------------------------------------------------- NDCG vs sklearn
@pytest.mark.parametrize("gain", ["linear", "exp2"])
@pytest.mark.parametrize("k", [1, 3, 5, None])
def test_ndcg_matches_sklearn_per_query_with_garbage_padding(gain: str, k: int | None) -> None:
    scores, labels, mask, lengths = padded_random(seed=7)
    ours = ltr.ndcg_at_k(scores, labels, mask, k, gain=gain, idcg_zero="zero")
    for b in range(scores.shape[0]):
        n = int(lengths[b])
        y = labels[b, :n].double().numpy()
        y_true = y if gain == "linear" else 2.0 ** y - 1.0  # sklearn's gain is linear in y_true
        expected = ndcg_score([y_true], [scores[b, :n].double().numpy()], k=k)
        assert ours[b].item() == pytest.approx(expected, abs=1e-5), (b, n)


def test_padding_never_counts() -> None:
    scores, labels, mask, _ = padded_random(seed=3, garbage=True)
    clean_scores = torch.where(mask, scores, torch.zeros_like(scores))
    clean_labels = torch.where(mask, labels, torch.zeros_like(labels))
    for fn in (lambda s, y: ltr.ndcg_at_k(s, y, mask, 5), lambda s, y: ltr.err_at_k(s, y, mask, 5),
               lambda s, y: ltr.average_precision(s, y, mask), lambda s, y: ltr.reciprocal_rank(s, y, mask),
               lambda s, y: ltr.position_accuracy_ndcg(s, y, mask, 5)):
        garbage, clean = fn(scores, labels), fn(clean_scores, clean_labels)
        assert torch.isfinite(garbage).all()
        torch.testing.assert_close(garbage, clean)


def test_idcg_zero_policy_both_ways() -> None:
    scores = torch.tensor([[0.2, 0.9, 0.5], [0.2, 0.9, 0.5]])
    labels = torch.tensor([[0, 0, 0], [0, 1, 0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert ltr.ndcg_at_k(scores, labels, mask, 3, idcg_zero="one").tolist() == [1.0, 1.0]
    assert ltr.ndcg_at_k(scores, labels, mask, 3, idcg_zero="zero").tolist() == [0.0, 1.0]
    with pytest.raises(ConfigError):
        ltr.ndcg_at_k(scores, labels, mask, 3, idcg_zero="nan")


def test_idcg_zero_defaults_to_zero_so_a_random_ranker_gets_no_free_credit() -> None:
    """ULTRA / sklearn / trec_eval score a query without relevant documents 0; the old default 1 gave every ranker,
    random included, a perfect score on such queries (4.5 % of the ml100k windows)."""
    from recx.ltr.module import LTRModule, query_metrics

    scores = torch.tensor([[0.2, 0.9, 0.5], [0.2, 0.9, 0.5]])
    labels = torch.tensor([[0, 0, 0], [1, 0, 0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert ltr.ndcg_at_k(scores, labels, mask, 3).tolist()[0] == 0.0
    assert query_metrics(scores, labels, mask, [3])["ndcg@3"].tolist()[0] == 0.0
    assert LTRModule(torch.nn.Linear(1, 1)).idcg_zero == "zero"
    assert "0.0 by default" in ltr.CONVENTIONS["idcg_zero"]


def test_query_metrics_log_starank_position_accuracy() -> None:
    from recx.ltr.module import query_metrics

    scores, labels, mask, _ = padded_random(seed=5)
    out = query_metrics(scores, labels, mask, [1, 5, 10])
    for k in (1, 5, 10):
        torch.testing.assert_close(out[f"pos_acc@{k}"], ltr.position_accuracy_ndcg(scores, labels, mask, k))
    assert not torch.equal(out["pos_acc@5"], out["ndcg@5"])


@pytest.mark.parametrize("max_label", [1, 4])
def test_simulated_click_metrics_follow_starank_click_model(max_label: int) -> None:
    """One definition: STARank's PBM examination (the UBM table's diagonal, 1.0 at the top) and STARank's gamma
    0.1 + 0.9 (2^r - 1) / (2^max_label - 1) -- before, binary labels used ULTRA's examination (0.68 at the top)."""
    from recx.ltr.clicks import STARANK_PBM_EXAMINATION, UBM_TABLE
    from recx.ltr.module import query_metrics

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, max_label + 1, (6, 12), generator=g)
    scores = torch.rand(6, 12, generator=g)
    mask = torch.ones(6, 12, dtype=torch.bool)
    gamma = [0.1 + 0.9 * (2 ** r - 1) / (2 ** max_label - 1) for r in range(max_label + 1)]
    ranked, _ = ltr.labels_in_ranked_order(scores, labels, mask)
    expected = [sum(STARANK_PBM_EXAMINATION[i] * gamma[int(r)] for i, r in enumerate(row[:10])) for row in ranked]
    out = query_metrics(scores, labels, mask, [10], max_label=max_label, simulated_clicks=True,
                        generator=torch.Generator().manual_seed(3))
    assert out["clicks_pbm@10"].tolist() == pytest.approx(expected, abs=1e-5)
    mc = ltr.expected_clicks_ubm_mc(scores, labels, mask, UBM_TABLE, gamma, 64, torch.Generator().manual_seed(3), 10)
    torch.testing.assert_close(out["clicks_ubm@10"], mc)


def test_ties_follow_column_order_and_padding_goes_last() -> None:
    # equal scores: column 0 (label 0) ranks before column 1 (label 3) -> DCG = 0/lg2 + 7/lg3
    scores = torch.tensor([[0.5, 0.5, float("-inf"), 9.0]])
    labels = torch.tensor([[0, 3, 1, 4]])
    mask = torch.tensor([[True, True, True, False]])
    assert ltr.ranking_from_scores(scores, mask).tolist() == [[0, 1, 2, 3]]  # real -inf still before the padding
    assert ltr.dcg_at_k(scores, labels, mask, 2).item() == pytest.approx(7 / lg(3))
    ranked, ranked_mask = ltr.labels_in_ranked_order(scores, labels, mask)
    assert ranked.tolist() == [[0.0, 3.0, 1.0, 0.0]] and ranked_mask.tolist() == [[True, True, True, False]]


def test_bad_cutoff_and_gain_raise_config_errors() -> None:
    s, y, m, _ = padded_random(seed=0, batch=2)
    with pytest.raises(ConfigError, match="cut-off"):
        ltr.ndcg_at_k(s, y, m, 0)
    with pytest.raises(ConfigError, match="gain"):
        ltr.dcg_at_k(s, y, m, 3, gain="cubic")


# ------------------------------------------------------------------------------------------ hand-computed cases
# One slate whose scores put the documents in column order; ranked labels [2, 0, 4, 0, 3] (+ one padded column).
HAND_SCORES = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 100.0]])
HAND_LABELS = torch.tensor([[2, 0, 4, 0, 3, 4]])
HAND_MASK = torch.tensor([[True] * 5 + [False]])


def test_err_by_hand() -> None:
    r = [3 / 16, 0.0, 15 / 16, 0.0, 7 / 16]  # (2^label - 1) / 2^4
    full = r[0] + (1 - r[0]) * (1 - r[1]) * r[2] / 3 + (1 - r[0]) * (1 - r[2]) * r[4] / 5
    assert ltr.err_at_k(HAND_SCORES, HAND_LABELS, HAND_MASK).item() == pytest.approx(full)
    assert ltr.err_at_k(HAND_SCORES, HAND_LABELS, HAND_MASK, 2).item() == pytest.approx(3 / 16)
    # max_label = 2: R = (2^l - 1) / 4, the top document alone stops the user with probability 3/4
    assert ltr.err_at_k(HAND_SCORES, HAND_LABELS, HAND_MASK, 1, max_label=2).item() == pytest.approx(3 / 4)


def test_average_precision_by_hand() -> None:
    # threshold 1: rel [1, 0, 1, 0, 1] -> (P@1 + P@3 + P@5) / 3
    ap = ltr.average_precision(HAND_SCORES, HAND_LABELS, HAND_MASK)
    assert ap.item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # cut-off 2: only P@1 counts, denominator min(2, 3) = 2
    assert ltr.average_precision(HAND_SCORES, HAND_LABELS, HAND_MASK, k=2).item() == pytest.approx(1 / 2)
    # threshold 3: rel [0, 0, 1, 0, 1] -> (1/3 + 2/5) / 2; relevant docs below a cut-off still count: k=3 -> (1/3)/2
    assert ltr.average_precision(HAND_SCORES, HAND_LABELS, HAND_MASK, threshold=3).item() == pytest.approx(
        (1 / 3 + 2 / 5) / 2)
    assert ltr.average_precision(HAND_SCORES, HAND_LABELS, HAND_MASK, k=3, threshold=3).item() == pytest.approx(
        (1 / 3) / 2)
    # no relevant real document (the padded 4 must not count) -> 0
    assert ltr.average_precision(HAND_SCORES, HAND_LABELS, HAND_MASK, threshold=5).item() == 0.0


def test_reciprocal_rank_by_hand() -> None:
    assert ltr.reciprocal_rank(HAND_SCORES, HAND_LABELS, HAND_MASK).item() == pytest.approx(1.0)
    assert ltr.reciprocal_rank(HAND_SCORES, HAND_LABELS, HAND_MASK, threshold=3).item() == pytest.approx(1 / 3)
    assert ltr.reciprocal_rank(HAND_SCORES, HAND_LABELS, HAND_MASK, threshold=3, k=2).item() == 0.0
    assert ltr.reciprocal_rank(HAND_SCORES, HAND_LABELS, HAND_MASK, threshold=5).item() == 0.0


def test_position_accuracy_ndcg_is_not_standard_ndcg() -> None:
    # binary labels [1, 0, 1, 0]; predicted order [2, 0, 1, 3], ideal (ties by column) [0, 2, 1, 3]:
    # both relevant docs on top (standard NDCG = 1) but only positions 2 and 3 agree with the ideal order
    scores = torch.tensor([[0.8, 0.5, 0.9, 0.1]])
    labels = torch.tensor([[1, 0, 1, 0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    expected = (1 / lg(4) + 1 / lg(5)) / (1 / lg(2) + 1 / lg(3) + 1 / lg(4) + 1 / lg(5))
    assert ltr.position_accuracy_ndcg(scores, labels, mask).item() == pytest.approx(expected)
    assert ltr.ndcg_at_k(scores, labels, mask).item() == pytest.approx(1.0)
    assert ltr.position_accuracy_ndcg(scores, labels, mask, 2).item() == 0.0
    # only real documents count: a 2-document slate padded to 4, ranked ideally -> 1
    short = torch.tensor([[True, True, False, False]])
    assert ltr.position_accuracy_ndcg(torch.tensor([[0.9, 0.1, 5.0, 6.0]]), labels, short, 4).item() == 1.0


# ------------------------------------------------------------------------------------ simulation-based metrics
@pytest.mark.parametrize("k", [1, 4, None])
def test_dcg_is_pbm_expected_clicks_with_log_discount_and_exp_gain(k: int | None) -> None:
    scores, labels, mask, _ = padded_random(seed=11)
    length = scores.shape[1]
    examination = [1 / lg(rank + 1) for rank in range(1, length + 1)]
    gain = [2.0 ** r - 1 for r in range(5)]
    clicks = ltr.expected_clicks_pbm(scores, labels, mask, examination, gain, k)
    torch.testing.assert_close(clicks, ltr.dcg_at_k(scores, labels, mask, k))
    assert clicks.max() > 1.0  # not a degenerate all-zero comparison


def test_expected_clicks_pbm_short_table_repeats_last_value() -> None:
    # e = [0.5, 0.2, 0.2, 0.2, 0.2] over ranked labels [2, 0, 4, 0, 3] with ULTRA's gamma
    g = ULTRA_CLICK_PROB
    expected = 0.5 * g[2] + 0.2 * (g[0] + g[4] + g[0] + g[3])
    got = ltr.expected_clicks_pbm(HAND_SCORES, HAND_LABELS, HAND_MASK, [0.5, 0.2], g)
    assert got.item() == pytest.approx(expected)


def exact_ubm_expected_clicks(ranked_labels: list[int], table: list[list[float]], gamma: list[float]) -> float:
    """Sum over all 2^n click vectors of P(vector) * number of clicks, walking the UBM by hand."""
    total = 0.0
    for vector in itertools.product([0, 1], repeat=len(ranked_labels)):
        prob, last = 1.0, -1
        for pos, click in enumerate(vector):
            p = table[pos][pos - last - 1] * gamma[ranked_labels[pos]]
            prob *= p if click else 1.0 - p
            last = pos if click else last
        total += prob * sum(vector)
    return total


def test_ubm_monte_carlo_matches_exact_enumeration() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4], [0.4, 0.9, 0.1, 0.5]])
    labels = torch.tensor([[4, 0, 3, 1], [4, 0, 3, 1], [2, 2, 0, 4]])
    mask = torch.ones(3, 4, dtype=torch.bool)
    ranked = [[4, 0, 3, 1], [1, 3, 0, 4], [2, 4, 2, 0]]
    exact = [exact_ubm_expected_clicks(r, UBM_TABLE, ULTRA_CLICK_PROB) for r in ranked]
    gen = torch.Generator().manual_seed(0)
    mc = ltr.expected_clicks_ubm_mc(scores, labels, mask, UBM_TABLE, ULTRA_CLICK_PROB, 40_000, gen)
    assert mc.tolist() == pytest.approx(exact, abs=0.02)
    # examination matters: a model that examined every position would give sum(gamma), 0.2 above the exact value
    assert sum(ULTRA_CLICK_PROB[r] for r in ranked[0]) - exact[0] > 0.2
    # cut-off k=1: only the top document, examined with probability 1
    gen = torch.Generator().manual_seed(1)
    top = ltr.expected_clicks_ubm_mc(scores, labels, mask, UBM_TABLE, ULTRA_CLICK_PROB, 40_000, gen, k=1)
    assert top.tolist() == pytest.approx([ULTRA_CLICK_PROB[r[0]] for r in ranked], abs=0.015)


def test_conventions_are_json_and_name_every_policy() -> None:
    text = json.dumps(ltr.CONVENTIONS)
    for key in ("gain", "discount", "ranking", "idcg_zero", "average_precision", "expected_clicks"):
        assert key in ltr.CONVENTIONS
    assert "stable" in text and "LightGBM" in text
