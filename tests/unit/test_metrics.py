"""Top-N and beyond-accuracy metrics against independent oracles.

* a small case worked out by hand (expected values written as fractions / log expressions below);
* torchmetrics.retrieval on random full-ranking data (recall, ndcg, precision, hit_rate, mrr);
* sklearn's average_precision_score for MAP (torchmetrics' MAP uses another normaliser);
* an O(n^2) Gini and hand-counted coverage / popularity;
* the accumulator: batching invariance, skipped users, output keys.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recx.errors import ConfigError
from recx.metrics.beyond import average_popularity, gini, item_coverage
from recx.metrics.topk import (
    CONVENTIONS,
    TOPK_METRICS,
    TopKMetrics,
    compute_topk_metrics,
    hit_matrix,
)

ALL = ["recall", "ndcg", "precision", "hit_rate", "mrr", "map"]


def csr(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    indptr = torch.tensor([0] + list(np.cumsum([len(r) for r in rows])), dtype=torch.int64)
    indices = torch.tensor([i for r in rows for i in r], dtype=torch.int64)
    return indptr, indices


def lg(x: float) -> float:
    return math.log2(x)


# --------------------------------------------------------------------------------------------- hand case
# n_items = 10, K = 5.
#   user 0: truth {1, 4, 7, 9} (n_pos 4), list [4, 2, 7, 0, 1]    -> hits [1, 0, 1, 0, 1]
#   user 1: truth {3}          (n_pos 1), list [5, 3, -1, -1, -1] -> hits [0, 1, 0, 0, 0]
#           (the -1 key 1*10-1 = 9 is user 0's item 9: must NOT count)
#   user 2: truth {}           (n_pos 0), list [9, 1, 2, 3, 4]    -> skipped
#   user 3: truth {0,1,2,3,4,5,6,8} (n_pos 8 > k), list [6, 8, 7, 0, 5] -> hits [1, 1, 0, 1, 1]
N_ITEMS = 10
TRUTH = [[1, 4, 7, 9], [3], [], [0, 1, 2, 3, 4, 5, 6, 8]]
TOPK = torch.tensor([[4, 2, 7, 0, 1], [5, 3, -1, -1, -1], [9, 1, 2, 3, 4], [6, 8, 7, 0, 5]])
USERS = torch.arange(4)
HITS = [[1, 0, 1, 0, 1], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1]]

EXPECTED = {
    # user 0 @3: hits [1,0,1], 2 hits of 4
    #   recall 2/4, precision 2/3, hit 1, mrr 1/1
    #   DCG = 1/lg2 + 1/lg4 = 1 + 1/2; IDCG(min(4,3)=3) = 1 + 1/lg3 + 1/2
    #   AP = (P@1 + P@3) / min(4,3) = (1 + 2/3) / 3 = 5/9
    # user 0 @5: hits [1,0,1,0,1], 3 hits
    #   recall 3/4, precision 3/5, hit 1, mrr 1
    #   DCG = 1 + 1/2 + 1/lg6; IDCG(4) = 1 + 1/lg3 + 1/2 + 1/lg5
    #   AP = (1 + 2/3 + 3/5) / min(4,5) = (34/15) / 4 = 17/30
    # user 1 @3 and @5: one hit at rank 2 of 1 positive
    #   recall 1, precision 1/3 resp. 1/5 (denominator k despite the -1 padding), hit 1, mrr 1/2
    #   DCG = 1/lg3; IDCG(1) = 1; AP = P@2 / 1 = 1/2
    # user 3 @3: hits [1,1,0] of 8 positives
    #   recall 2/8, precision 2/3, hit 1, mrr 1
    #   DCG = 1 + 1/lg3; IDCG(3) = 1 + 1/lg3 + 1/2; AP = (1 + 1) / 3 = 2/3
    # user 3 @5: hits [1,1,0,1,1]
    #   recall 4/8, precision 4/5, hit 1, mrr 1
    #   DCG = 1 + 1/lg3 + 1/lg5 + 1/lg6; IDCG(5) = 1 + 1/lg3 + 1/2 + 1/lg5 + 1/lg6
    #   AP = (1 + 1 + 3/4 + 4/5) / 5 = (71/20) / 5 = 71/100
    "recall@3": [2 / 4, 1, 0, 2 / 8],
    "recall@5": [3 / 4, 1, 0, 4 / 8],
    "precision@3": [2 / 3, 1 / 3, 0, 2 / 3],
    "precision@5": [3 / 5, 1 / 5, 0, 4 / 5],
    "hit_rate@3": [1, 1, 0, 1],
    "hit_rate@5": [1, 1, 0, 1],
    "mrr@3": [1, 1 / 2, 0, 1],
    "mrr@5": [1, 1 / 2, 0, 1],
    "ndcg@3": [(1 + 1 / 2) / (1 + 1 / lg(3) + 1 / 2), 1 / lg(3), 0,
               (1 + 1 / lg(3)) / (1 + 1 / lg(3) + 1 / 2)],
    "ndcg@5": [(1 + 1 / 2 + 1 / lg(6)) / (1 + 1 / lg(3) + 1 / 2 + 1 / lg(5)), 1 / lg(3), 0,
               (1 + 1 / lg(3) + 1 / lg(5) + 1 / lg(6)) / (1 + 1 / lg(3) + 1 / 2 + 1 / lg(5) + 1 / lg(6))],
    "map@3": [5 / 9, 1 / 2, 0, 2 / 3],
    "map@5": [17 / 30, 1 / 2, 0, 71 / 100],
}


def test_hit_matrix_by_hand():
    hits, n_pos = hit_matrix(TOPK, USERS, *csr(TRUTH), N_ITEMS)
    assert hits.dtype == torch.bool
    assert hits.int().tolist() == HITS
    assert n_pos.tolist() == [4, 1, 0, 8]


def test_hit_matrix_subset_of_users_and_unsorted_truth_rows():
    # rows may come in any order and the batch may be any subset of users, in any order
    indptr, indices = csr([[9, 7, 4, 1], [3], [], [8, 6, 5, 4, 3, 2, 1, 0]])
    hits, n_pos = hit_matrix(TOPK[[3, 1]], torch.tensor([3, 1]), indptr, indices, N_ITEMS)
    assert hits.int().tolist() == [HITS[3], HITS[1]]
    assert n_pos.tolist() == [8, 1]


def test_minus_one_never_hits_even_when_key_collides():
    # user 1's -1 has key 1*10 - 1 = 9 = key of (user 0, item 9); user 0 does hold item 9
    hits, _ = hit_matrix(torch.tensor([[-1, -1]]), torch.tensor([1]), *csr([[9], [9]]), N_ITEMS)
    assert hits.tolist() == [[False, False]]
    hits, _ = hit_matrix(torch.tensor([[9, -1]]), torch.tensor([0]), *csr([[9], [9]]), N_ITEMS)
    assert hits.tolist() == [[True, False]]


def test_per_user_metrics_by_hand():
    hits, n_pos = hit_matrix(TOPK, USERS, *csr(TRUTH), N_ITEMS)
    values = compute_topk_metrics(hits, n_pos, ALL, [3, 5])
    assert set(values) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        assert values[key].tolist() == pytest.approx(expected, abs=1e-6), key


def test_users_without_positives_give_zero_not_nan():
    hits = torch.zeros(3, 4, dtype=torch.bool)
    n_pos = torch.zeros(3, dtype=torch.int64)
    for key, v in compute_topk_metrics(hits, n_pos, ALL, [1, 4]).items():
        assert torch.isfinite(v).all(), key
        assert v.tolist() == [0.0, 0.0, 0.0], key


def test_order_of_misses_and_their_ids_is_irrelevant():
    # ties are the scorer's business: the metrics only see hit positions, so replacing or permuting the
    # non-relevant items (as a different tie break among them would) changes nothing
    other = torch.tensor([[4, 8, 7, 6, 1], [0, 3, -1, -1, -1], [5, 6, 7, 8, 0], [6, 8, 9, 0, 5]])
    a = compute_topk_metrics(*hit_matrix(TOPK, USERS, *csr(TRUTH), N_ITEMS), ALL, [3, 5])
    b = compute_topk_metrics(*hit_matrix(other, USERS, *csr(TRUTH), N_ITEMS), ALL, [3, 5])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # ... while moving a hit does change them
    moved = torch.tensor([[2, 4, 7, 0, 1]])
    c = compute_topk_metrics(*hit_matrix(moved, USERS[:1], *csr(TRUTH), N_ITEMS), ["mrr"], [3])
    assert c["mrr@3"].tolist() == [pytest.approx(1 / 2)]


def test_accumulator_by_hand_with_beyond_accuracy():
    popularity = torch.tensor([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    metric = TopKMetrics(ALL, [5, 3], *csr(TRUTH), N_ITEMS, item_popularity=popularity)
    metric.update(TOPK, USERS)
    out = metric.compute()
    evaluated = [0, 1, 3]  # user 2 has no held-out items
    for key, per_user in EXPECTED.items():
        assert out[key] == pytest.approx(sum(per_user[u] for u in evaluated) / 3, abs=1e-7), key
    assert out["recall@3"] == pytest.approx((1 / 2 + 1 + 1 / 4) / 3)  # = 7/12
    assert out["n_users"] == 3.0
    assert out["n_skipped_users"] == 1.0
    # beyond accuracy over the top-5 lists of users 0, 1, 3 (user 2's list, which alone holds item 9, is ignored):
    # counts per item 0..9 = [2, 1, 1, 1, 1, 2, 1, 2, 1, 0], 12 recommendations
    #   coverage = 9/10
    #   avg popularity = (2*10 + 9 + 8 + 7 + 6 + 2*5 + 4 + 2*3 + 2) / 12 = 72/12 = 6
    #   gini: sorted [0,1,1,1,1,1,1,2,2,2], coefficients 2i-11 = -9..9 step 2
    #         -> (-7 -5 -3 -1 +1 +3 +2*5 +2*7 +2*9) / (10 * 12) = 30/120 = 1/4
    assert metric.rec_counts.tolist() == [2, 1, 1, 1, 1, 2, 1, 2, 1, 0]
    assert out["coverage@5"] == pytest.approx(9 / 10)
    assert out["avg_popularity@5"] == pytest.approx(6.0)
    assert out["gini@5"] == pytest.approx(1 / 4)


def test_accumulator_keys():
    metric = TopKMetrics(["ndcg", "recall"], [20, 10], *csr(TRUTH), N_ITEMS)
    metric.update(torch.tensor([[1] * 20]), torch.tensor([0]))
    assert list(metric.compute()) == ["ndcg@10", "ndcg@20", "recall@10", "recall@20", "n_users", "n_skipped_users"]
    metric = TopKMetrics(["ndcg"], [2], *csr(TRUTH), N_ITEMS, item_popularity=torch.ones(N_ITEMS, dtype=torch.int64))
    metric.update(torch.tensor([[1, 2]]), torch.tensor([0]))
    assert list(metric.compute()) == ["ndcg@2", "coverage@2", "avg_popularity@2", "gini@2", "n_users",
                                      "n_skipped_users"]


# ------------------------------------------------------------------------------------------ config errors
def test_unknown_metric_and_bad_k_raise_config_error():
    hits, n_pos = hit_matrix(TOPK, USERS, *csr(TRUTH), N_ITEMS)
    with pytest.raises(ConfigError, match="recall, ndcg, precision, hit_rate, mrr, map"):
        compute_topk_metrics(hits, n_pos, ["recall", "auc"], [5])
    with pytest.raises(ConfigError, match="K=5"):
        compute_topk_metrics(hits, n_pos, ["recall"], [6])
    with pytest.raises(ConfigError, match="choose from"):
        TopKMetrics(["nDCG"], [5], *csr(TRUTH), N_ITEMS)
    with pytest.raises(ConfigError):
        TopKMetrics(["ndcg"], [0], *csr(TRUTH), N_ITEMS)
    metric = TopKMetrics(["ndcg"], [10], *csr(TRUTH), N_ITEMS)
    with pytest.raises(ConfigError, match="K=5"):  # the scorer ranked fewer items than the largest cut-off
        metric.update(TOPK, USERS)


def test_conventions_are_json_and_name_the_choices():
    text = json.dumps(CONVENTIONS)
    assert set(TOPK_METRICS) == set(ALL)
    for needle in ("binary", "|T_u|", "min(|T_u|, k)", "-1", "n_skipped_users", "item id ascending"):
        assert needle in text, needle


# ------------------------------------------------------------------------------------ random data oracles
def random_ranking(seed: int, n_users: int = 50, n_items: int = 200, k: int = 20):
    """Random full-ranking data: distinct scores, a seen mask, truth sets among rankable items, top-k lists.

    Users 0-4 have only 6 rankable items (so their lists end in -1 for k > 6); users 45-49 have no held-out items.
    """
    g = torch.Generator().manual_seed(seed)
    scores = torch.sigmoid(torch.randn(n_users, n_items, generator=g, dtype=torch.float64))
    assert all(torch.unique(row).numel() == n_items for row in scores)
    seen = torch.rand(n_users, n_items, generator=g) < 0.3
    seen[:5] = True
    seen[:5, :6] = False
    truth = (torch.rand(n_users, n_items, generator=g) < 0.1) & ~seen
    truth[:5, 1] = True
    truth[45:] = False
    masked = scores.masked_fill(seen, -math.inf)
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :k]
    top = torch.where(torch.gather(masked, 1, order) == -math.inf, torch.full_like(order, -1), order)
    rows = [torch.nonzero(t).flatten().tolist() for t in truth]
    return scores, seen, truth, top, csr(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_against_torchmetrics_retrieval(seed):
    from torchmetrics.retrieval import (
        RetrievalHitRate,
        RetrievalMRR,
        RetrievalNormalizedDCG,
        RetrievalPrecision,
        RetrievalRecall,
    )

    n_users, n_items, ks = 50, 200, [1, 3, 10, 20]
    scores, seen, truth, top, (indptr, indices) = random_ranking(seed, n_users, n_items, k=max(ks))
    assert (top[:5, 6:] == -1).all() and (top[5:] >= 0).all()
    rankable = ~seen
    preds, target = scores[rankable], truth[rankable]
    indexes = torch.arange(n_users).unsqueeze(1).expand(n_users, n_items)[rankable]

    metric = TopKMetrics(ALL, ks, indptr, indices, n_items)
    metric.update(top, torch.arange(n_users))
    ours = metric.compute()
    assert ours["n_users"] == 45 and ours["n_skipped_users"] == 5

    oracles = {"recall": RetrievalRecall, "ndcg": RetrievalNormalizedDCG, "precision": RetrievalPrecision,
               "hit_rate": RetrievalHitRate, "mrr": RetrievalMRR}
    for name, cls in oracles.items():
        for k in ks:
            oracle = cls(top_k=k, empty_target_action="skip")
            expected = float(oracle(preds, target, indexes=indexes))
            assert ours[f"{name}@{k}"] == pytest.approx(expected, abs=1e-6), f"{name}@{k}"


@pytest.mark.parametrize("seed", [0, 1])
def test_map_against_sklearn_average_precision(seed):
    from sklearn.metrics import average_precision_score

    n_users, n_items = 50, 200
    # k = n_items >= rankable items of every user: RecBole MAP@k is then the untruncated average precision
    scores, seen, truth, top, (indptr, indices) = random_ranking(seed, n_users, n_items, k=n_items)
    hits, n_pos = hit_matrix(top, torch.arange(n_users), indptr, indices, n_items)
    ap = compute_topk_metrics(hits, n_pos, ["map"], [n_items])[f"map@{n_items}"]
    checked = 0
    for u in range(n_users):
        if n_pos[u] == 0:
            continue
        keep = ~seen[u]
        expected = average_precision_score(truth[u][keep].numpy(), scores[u][keep].numpy())
        assert float(ap[u]) == pytest.approx(expected, abs=1e-6), u
        checked += 1
    assert checked == 45


def test_map_at_small_k_against_direct_definition():
    # the truncated case sklearn cannot express: a plain loop over the RecBole definition
    n_users, n_items, ks = 50, 200, [1, 5, 10]
    _, _, truth, top, (indptr, indices) = random_ranking(3, n_users, n_items, k=max(ks))
    hits, n_pos = hit_matrix(top, torch.arange(n_users), indptr, indices, n_items)
    values = compute_topk_metrics(hits, n_pos, ["map"], ks)
    for k in ks:
        for u in range(n_users):
            rel = set(torch.nonzero(truth[u]).flatten().tolist())
            found, total = 0, 0.0
            for r, item in enumerate(top[u, :k].tolist(), start=1):
                if item in rel:
                    found += 1
                    total += found / r
            expected = total / min(len(rel), k) if rel else 0.0
            assert float(values[f"map@{k}"][u]) == pytest.approx(expected, abs=1e-6), (u, k)


def test_batches_accumulate_like_one_batch():
    n_users, n_items = 50, 200
    _, _, _, top, (indptr, indices) = random_ranking(4, n_users, n_items, k=20)
    popularity = torch.randint(0, 50, (n_items,), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(n_users, generator=torch.Generator().manual_seed(1))

    whole = TopKMetrics(ALL, [5, 20], indptr, indices, n_items, item_popularity=popularity)
    whole.update(top, torch.arange(n_users))
    expected = whole.compute()

    parts = TopKMetrics(ALL, [5, 20], indptr, indices, n_items, item_popularity=popularity)
    for chunk in torch.split(perm, [7, 20, 23]):
        parts.update(top[chunk], chunk)
    got = parts.compute()
    assert list(got) == list(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    assert got["n_users"] == 45 and got["n_skipped_users"] == 5
    assert torch.equal(parts.rec_counts, whole.rec_counts)

    parts.reset()
    parts.update(top[:10], torch.arange(10))
    assert parts.compute()["n_users"] == 10.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    n_users, n_items = 50, 200
    _, _, _, top, (indptr, indices) = random_ranking(5, n_users, n_items, k=20)
    popularity = torch.arange(n_items)
    cpu = TopKMetrics(ALL, [5, 20], indptr, indices, n_items, item_popularity=popularity)
    cpu.update(top, torch.arange(n_users))
    gpu = TopKMetrics(ALL, [5, 20], indptr, indices, n_items, item_popularity=popularity).to("cuda")
    gpu.update(top.cuda(), torch.arange(n_users).cuda())
    a, b = cpu.compute(), gpu.compute()
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6), key


# ------------------------------------------------------------------------------------------ beyond accuracy
def test_gini_against_quadratic_formula():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100):
        counts = rng.integers(0, 20, size=n)
        counts[rng.integers(0, n)] += 1  # never all zero
        x = counts.astype(float)
        expected = np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean())
        assert gini(torch.from_numpy(counts)) == pytest.approx(expected, abs=1e-12), n


def test_gini_extremes():
    assert gini(torch.tensor([3, 3, 3, 3])) == 0.0
    assert gini(torch.tensor([0, 0, 0, 8])) == pytest.approx(3 / 4)  # (n-1)/n
    assert gini(torch.zeros(5, dtype=torch.int64)) == 0.0


def test_coverage_and_average_popularity_by_hand():
    counts = torch.tensor([0, 3, 0, 1, 0])
    assert item_coverage(counts, 5) == pytest.approx(2 / 5)
    # (3 * 10 + 1 * 2) / (3 + 1) = 32/4 = 8
    assert average_popularity(counts, torch.tensor([100, 10, 50, 2, 7])) == pytest.approx(8.0)
    assert average_popularity(torch.zeros(5, dtype=torch.int64), torch.ones(5)) == 0.0
