"""Learning-to-rank metrics on padded slates: pure, batched tensor functions.

Every function takes the same three tensors -- ``scores [B, L]`` (float), ``labels [B, L]`` (graded relevance, ints or
floats in ``0..max_label``) and ``mask [B, L]`` (bool, True = a real document) -- and returns one value per query,
``[B]``; the caller averages. Padded positions never count: they are ranked after every real document and their labels
are zeroed before any gain is taken, so whatever garbage sits in the padding cannot change a number.

The ranking is *score descending, ties broken by the original column order* (a stable sort, see
:func:`ranking_from_scores`). Tie handling is a convention that moves NDCG on tied scores (sklearn averages over ties,
allRank/LightGBM take the sort order); making it explicit -- and writing it into every run's ``conventions.json`` via
:data:`CONVENTIONS` -- is what lets numbers be compared across toolkits (research notes §6.1).

Besides the standard metrics (NDCG, ERR, AP, RR) this module has STARank's two families (research notes §1.5, §1.6):
the simulation-based *expected clicks* under a click model -- DCG@k is the position-based-model special case -- and the
"position accuracy" variant that STARank's code reports under the name NDCG.

Everything is vectorised over queries (and Monte-Carlo samples); only the inherently sequential UBM walks positions.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from recx.errors import ConfigError

#: Written into every learning-to-rank run's conventions.json: how each number was computed.
CONVENTIONS: dict = {
    "ranking": "score descending; ties broken by the original column order of the slate (stable sort); padded "
               "positions (mask False) are ranked after every real document and never count",
    "gain": "exp2 by default: 2^r - 1 for graded label r; 'linear' = r (sklearn.metrics.ndcg_score's default)",
    "discount": "1 / log2(rank + 1), rank starting at 1",
    "cutoff": "metric@k sums over the first k ranks; k=None means the whole (unpadded) list; the ideal DCG uses the "
              "same cutoff over the labels sorted descending",
    "idcg_zero": "queries without any relevant document (IDCG = 0) get NDCG = 0.0 by default (ULTRA, sklearn, "
                 "trec_eval, RecBole): a ranker gets no credit for a query it cannot get wrong; idcg_zero='one' "
                 "gives 1.0 instead (allRank >= 1.4.1, LightGBM, XGBoost). The policy used is recorded per run",
    "err": "Expected Reciprocal Rank (Chapelle et al. 2009): sum_r (1/r) R_r prod_{i<r} (1 - R_i) with "
           "R = (2^label - 1) / 2^max_label",
    "average_precision": "binary relevance label >= threshold; AP = sum_{i<=k} P@i * rel_i / n, n = number of "
                         "relevant real documents in the slate (LETOR/TREC: all of them, not only those retrieved), "
                         "min(k, n) with a cut-off k; queries without a relevant document get 0",
    "reciprocal_rank": "1 / rank of the first document with label >= threshold, 0 when there is none",
    "expected_clicks": "STARank simulation-based metric: E[number of clicks in the top k] under STARank's click "
                       "model (algo/Click.py) on the ranked list, one definition for every label scale: "
                       "gamma(r) = 0.1 + 0.9 (2^r - 1) / (2^max_label - 1) (STARank's formula with R = max_label + 1 "
                       "relevance levels: {0.1, 1.0} for binary labels, ULTRA's [.1 .16 .28 .52 1] for 0..4); "
                       "clicks_pbm@10 = sum_{rank<10} e_rank * gamma(label) in closed form with STARank's PBM "
                       "examination e = [1 1 .95 .82 .69 .54 .47 .43 .41 .43] (the UBM table's diagonal); "
                       "clicks_ubm@10 by Monte-Carlo (64 impressions per query) with STARank's (= ULTRA's) UBM table. "
                       "DCG@k is the PBM case e_rank = 1/log2(rank + 1), gamma(r) = 2^r - 1",
    "position_accuracy_ndcg": "logged as pos_acc@k: STARank code's 'NDCG' (NOT standard NDCG): "
                              "sum_{k<K} 1[pred_k == ideal_k] / log2(k+2) divided by sum_{k<K} 1/log2(k+2), "
                              "K = min(k, number of real documents); ideal order = labels descending, ties by column "
                              "order",
}


# ------------------------------------------------------------------------------------------------- helpers
def _check_k(k: int | None, length: int) -> int:
    """The number of ranks to sum over: ``min(k, L)`` (``L`` for None); ConfigError for a non-positive k."""
    if k is None:
        return length
    if int(k) < 1:
        raise ConfigError(f"cut-off k={k} must be a positive integer (or None for the whole list)",
                          field="metric.ks", fix="e.g. metric.ks=[1,3,5,10]")
    return min(int(k), length)


def _discount(n: int, device: torch.device) -> Tensor:
    """``1 / log2(rank + 1)`` for ranks ``1..n``."""
    return 1.0 / torch.log2(torch.arange(2, n + 2, device=device, dtype=torch.float32))


def _gain(labels: Tensor, gain: str) -> Tensor:
    if gain == "exp2":
        return torch.pow(2.0, labels) - 1.0
    if gain == "linear":
        return labels
    raise ConfigError(f"unknown gain {gain!r}", field="metric.gain", fix="use 'exp2' (2^r - 1) or 'linear' (r)")


def ranking_from_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """Column indices ``[B, L]`` of each slate in ranked order: real documents by score descending, then padding.

    Two stable sorts instead of filling the padding with ``-inf``: a real document may legitimately score ``-inf``,
    and it must still precede the padding. Stability makes ties fall back to the original column order, which is the
    documented convention (:data:`CONVENTIONS`) and keeps the result deterministic on every device.
    """
    by_score = torch.sort(scores, dim=1, descending=True, stable=True).indices
    real_first = torch.sort(mask.gather(1, by_score).to(torch.int8), dim=1, descending=True, stable=True).indices
    return by_score.gather(1, real_first)


def labels_in_ranked_order(scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(labels, mask)`` permuted into ranked order; labels as float32 with 0 at padded positions."""
    order = ranking_from_scores(scores, mask)
    ranked_mask = mask.gather(1, order)
    ranked = labels.to(torch.float32).gather(1, order)
    return torch.where(ranked_mask, ranked, torch.zeros_like(ranked)), ranked_mask  # where, not *: NaN padding


def grade_index(ranked: Tensor, ranked_mask: Tensor, n_grades: int) -> Tensor:
    """Labels as int64 indices into a per-grade table (0 at padding); ConfigError when a real label is not an integer
    in ``0..n_grades-1`` -- e.g. graded 0..4 labels fed to a binary (STARank) click table."""
    ranked = torch.where(ranked_mask, ranked, torch.zeros_like(ranked))
    idx = ranked.round().to(torch.int64)
    bad = ranked_mask & ((idx < 0) | (idx >= n_grades) | (idx.to(ranked.dtype) != ranked))
    if bool(bad.any()):
        raise ConfigError(f"labels must be integers in 0..{n_grades - 1} for a click-probability table of "
                          f"{n_grades} grades, got {ranked[bad].unique().tolist()[:5]}", field="click_model",
                          fix="binarise/clip the labels or use a click model with as many grades as the labels")
    return idx.clamp(0, n_grades - 1)


# ---------------------------------------------------------------------------------------- standard metrics
def dcg_at_k(scores: Tensor, labels: Tensor, mask: Tensor, k: int | None = None, gain: str = "exp2") -> Tensor:
    """DCG@k = sum_{rank<=k} gain(label) / log2(rank + 1) of the ranking induced by ``scores``."""
    ranked, _ = labels_in_ranked_order(scores, labels, mask)
    n = _check_k(k, ranked.shape[1])
    return (_gain(ranked[:, :n], gain) * _discount(n, ranked.device)).sum(1)


def ndcg_at_k(
    scores: Tensor, labels: Tensor, mask: Tensor, k: int | None = None, gain: str = "exp2", idcg_zero: str = "zero"
) -> Tensor:
    """NDCG@k = DCG@k / IDCG@k, IDCG = DCG of the labels sorted descending (same gain, same cut-off).

    ``idcg_zero`` decides queries without a relevant document, where the ratio is 0/0: ``"zero"`` -> 0.0 (the
    default: ULTRA, sklearn, trec_eval, RecBole) or ``"one"`` -> 1.0 (allRank, LightGBM, XGBoost: "any order is
    ideal"). The choice shifts mean NDCG by the share of such queries -- with ``"one"`` every ranker, random included,
    scores 1.0 on them (4.5 % of the ml100k windows) -- which is why it is a parameter and part of
    :data:`CONVENTIONS`.
    """
    if idcg_zero not in ("one", "zero"):
        raise ConfigError(f"unknown idcg_zero {idcg_zero!r}", field="metric.idcg_zero", fix="use 'one' or 'zero'")
    dcg = dcg_at_k(scores, labels, mask, k, gain)
    ideal_labels = torch.where(mask, labels.to(torch.float32), 0.0)  # padded -> 0: last in the ideal ranking too
    idcg = dcg_at_k(ideal_labels, ideal_labels, mask, k, gain)
    fill = torch.full_like(dcg, 1.0 if idcg_zero == "one" else 0.0)
    return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), fill)


def err_at_k(scores: Tensor, labels: Tensor, mask: Tensor, k: int | None = None, max_label: int = 4) -> Tensor:
    """Expected Reciprocal Rank (Chapelle et al. 2009): a cascade user stops at rank r with probability R_r.

    ERR@k = sum_{r<=k} (1/r) R_r prod_{i<r} (1 - R_i), R = (2^label - 1) / 2^max_label. The product is an exclusive
    cumulative product, computed for all ranks at once.
    """
    ranked, _ = labels_in_ranked_order(scores, labels, mask)
    n = _check_k(k, ranked.shape[1])
    stop = (torch.pow(2.0, ranked[:, :n]) - 1.0) / 2.0 ** max_label
    reach = torch.cumprod(torch.cat([torch.ones_like(stop[:, :1]), 1.0 - stop[:, :-1]], dim=1), dim=1)
    ranks = torch.arange(1, n + 1, device=ranked.device, dtype=torch.float32)
    return (stop * reach / ranks).sum(1)


def _binary_relevance(scores: Tensor, labels: Tensor, mask: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Ranked binary relevance ``[B, L]`` (float) and the number of relevant real documents ``[B]``."""
    ranked, ranked_mask = labels_in_ranked_order(scores, labels, mask)
    rel = ((ranked >= threshold) & ranked_mask).to(torch.float32)
    return rel, rel.sum(1)


def average_precision(
    scores: Tensor, labels: Tensor, mask: Tensor, k: int | None = None, threshold: float = 1
) -> Tensor:
    """AP = sum_{i<=k} P@i * rel_i / n with rel = label >= threshold (LETOR/TREC style).

    n is the number of relevant real documents in the whole slate (``min(k, n)`` with a cut-off), so relevant documents
    ranked below k still cost; queries without a relevant document get 0 (they are usually filtered upstream).
    """
    rel, n_rel = _binary_relevance(scores, labels, mask, threshold)
    n = _check_k(k, rel.shape[1])
    rel = rel[:, :n]
    ranks = torch.arange(1, n + 1, device=rel.device, dtype=torch.float32)
    denom = n_rel if k is None else n_rel.clamp(max=n)  # n = min(k, L) >= min(k, n_rel) since n_rel <= L
    return torch.where(n_rel > 0, (rel.cumsum(1) / ranks * rel).sum(1) / denom.clamp(min=1), torch.zeros_like(n_rel))


def reciprocal_rank(
    scores: Tensor, labels: Tensor, mask: Tensor, threshold: float = 1, k: int | None = None
) -> Tensor:
    """1 / rank of the first document with label >= threshold (within the top k), 0 without one.

    ``max_r rel_r / r`` is that value because 1/r decreases with r -- no argmax needed.
    """
    rel, _ = _binary_relevance(scores, labels, mask, threshold)
    n = _check_k(k, rel.shape[1])
    ranks = torch.arange(1, n + 1, device=rel.device, dtype=torch.float32)
    return (rel[:, :n] / ranks).amax(1)


# ------------------------------------------------------------------------------ STARank simulation metrics
def extend_table(values: Tensor, n: int) -> Tensor:
    """``values[:n]``, repeating the last entry when the table is shorter than ``n`` (ULTRA's rank >= 10 rule)."""
    if values.numel() >= n:
        return values[:n]
    return torch.cat([values, values[-1:].expand(n - values.numel())])


def expected_clicks_pbm(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    examination: Sequence[float] | Tensor,
    click_prob: Sequence[float] | Tensor,
    k: int | None = None,
) -> Tensor:
    """E[clicks in the top k] under the position-based model: sum_{rank<k} e_rank * gamma(label at rank).

    Closed form, because PBM clicks are independent across positions. ``examination[i]`` is the examination
    probability of rank ``i`` (0-based; ranks beyond the table use its last value) and ``click_prob[r]`` = gamma(r).
    DCG@k is exactly this with ``e_rank = 1/log2(rank + 1)`` (rank from 1) and ``gamma(r) = 2^r - 1`` -- the sense
    in which STARank calls standard metrics special cases of simulation-based ones (research notes §1.6).
    """
    ranked, ranked_mask = labels_in_ranked_order(scores, labels, mask)
    n = _check_k(k, ranked.shape[1])
    gamma = torch.as_tensor(click_prob, dtype=torch.float32, device=ranked.device)
    idx = grade_index(ranked[:, :n], ranked_mask[:, :n], gamma.numel())
    exam = extend_table(torch.as_tensor(examination, dtype=torch.float32, device=ranked.device), n)
    return (exam * gamma[idx] * ranked_mask[:, :n]).sum(1)


def ubm_table_tensor(table: Sequence[Sequence[float]] | Tensor, eta: float = 1.0) -> Tensor:
    """A lower-triangular UBM table (row k has k+1 entries) as a dense ``[R, R]`` float tensor, raised to ``eta``."""
    if isinstance(table, Tensor):
        dense = table.to(torch.float32)
    else:
        rows = len(table)
        dense = torch.zeros(rows, rows)
        for i, row in enumerate(table):
            if len(row) != i + 1:
                raise ConfigError(f"UBM table row {i} has {len(row)} entries, expected {i + 1}",
                                  field="click_model.table", fix="row k lists P(examine k | distance 1..k+1)")
            dense[i, : i + 1] = torch.tensor(row, dtype=torch.float32)
    return dense.pow(eta)


def ubm_examination(table: Tensor, position: int, last_click: Tensor) -> Tensor:
    """``table[k][k - last_click - 1]`` for every row of ``last_click`` (``-1`` = no click yet).

    Positions past the table use its last row, and distances past that row its last column -- a recx choice, only
    reached with a cut-off above the table length.
    """
    row = min(position, table.shape[0] - 1)
    col = (position - last_click - 1).clamp(0, row)
    return table[row][col]


def simulate_ubm(attraction: Tensor, table: Tensor, uniform: Tensor) -> Tensor:
    """Clicks ``[N, K]`` of the user browsing model, given ``P(click | examined)`` and one uniform draw per position.

    Examination at position k depends on the distance to the last click, so positions are walked in order (K is a
    slate cut-off, <= 10 in practice); every row is a separate impression and is handled in parallel. Shared by
    :func:`expected_clicks_ubm_mc` and :class:`recx.ltr.clicks.UserBrowsingModel`, so metric and simulator are one
    process.
    """
    clicks = torch.zeros_like(attraction)
    last = torch.full(attraction.shape[:1], -1, dtype=torch.int64, device=attraction.device)
    for pos in range(attraction.shape[1]):
        clicked = uniform[:, pos] < ubm_examination(table, pos, last) * attraction[:, pos]
        clicks[:, pos] = clicked.to(clicks.dtype)
        last = torch.where(clicked, torch.full_like(last, pos), last)
    return clicks


def expected_clicks_ubm_mc(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    ubm_table: Sequence[Sequence[float]] | Tensor,
    click_prob: Sequence[float] | Tensor,
    n_samples: int,
    generator: torch.Generator,
    k: int | None = None,
) -> Tensor:
    """Monte-Carlo E[clicks in the top k] under the user browsing model (no closed form: depends on the last click).

    ``n_samples`` impressions per query are simulated at once (queries x samples flattened into one batch); the
    standard error is about ``sqrt(k / 4 / n_samples)`` per query. Reproducible given ``generator`` (its device must
    match ``scores``).
    """
    ranked, ranked_mask = labels_in_ranked_order(scores, labels, mask)
    n = _check_k(k, ranked.shape[1])
    gamma = torch.as_tensor(click_prob, dtype=torch.float32, device=ranked.device)
    attraction = gamma[grade_index(ranked[:, :n], ranked_mask[:, :n], gamma.numel())] * ranked_mask[:, :n]
    table = ubm_table_tensor(ubm_table).to(ranked.device)
    batch = attraction.shape[0]
    flat = attraction.repeat_interleave(int(n_samples), dim=0)
    uniform = torch.rand(flat.shape, generator=generator, device=flat.device)
    return simulate_ubm(flat, table, uniform).sum(1).view(batch, int(n_samples)).mean(1)


def position_accuracy_ndcg(scores: Tensor, labels: Tensor, mask: Tensor, k: int | None = None) -> Tensor:
    """STARank's reported "NDCG@K" (``algo/utils.py::Evaluate``, research notes §1.5) -- NOT standard NDCG.

    hit_k = 1[the document predicted at rank k is the one the ideal order puts there], and the score is
    sum_{k<K} hit_k / log2(k+2) over sum_{k<K} 1/log2(k+2). It gives no credit for swapping two equally relevant
    documents unless the tie-break agrees (ideal order = labels descending, ties by column order here), so it sits
    below standard NDCG on binary labels. K = min(k, number of real documents), so padding never counts. Kept for
    parity runs only.
    """
    pred = ranking_from_scores(scores, mask)
    ideal = ranking_from_scores(labels.to(torch.float32), mask)
    n = _check_k(k, pred.shape[1])
    n_real = mask.sum(1, keepdim=True)
    ranks = torch.arange(n, device=pred.device)
    counted = (ranks.unsqueeze(0) < n_real).to(torch.float32)
    disc = _discount(n, pred.device) * counted
    hits = (pred[:, :n] == ideal[:, :n]).to(torch.float32)
    total = disc.sum(1)
    return torch.where(total > 0, (hits * disc).sum(1) / total.clamp(min=1e-12), torch.zeros_like(total))
