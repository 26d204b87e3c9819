"""Full-ranking top-N metrics: pure tensor functions of one hit matrix, and one accumulator.

The shared scorer (:mod:`recx.scoring`) masks each user's seen items, ranks the rest (score descending, item id
ascending on ties) and hands over one ``[B, K]`` matrix of item ids, ``-1`` where the user had fewer than ``K``
rankable items. Every metric here is a function of the boolean *hit matrix* of that list against the user's held-out
items plus the number of held-out items ``n_pos`` -- nothing else -- so all metrics at all cut-offs come from one
top-K computation, and swapping a metric never touches the scorer.

The conventions follow MMRec/RecBole, the toolkits the reproduced papers report with (see :data:`CONVENTIONS`, which is
written into each run's ``conventions.json``): binary gain, Recall divided by ``|T_u|``, MAP normalised by
``min(|T_u|, k)``, users without held-out items skipped (and counted).

Everything is vectorised over users and ranks, so the same code runs on CPU and CUDA without per-user host syncs.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from recx.errors import ConfigError
from recx.metrics.beyond import average_popularity, gini, item_coverage

#: Written verbatim into every run's conventions.json: how each number in metrics.json was computed.
CONVENTIONS: dict = {
    "ranking": "full ranking over all items except the user's masked (seen) items; the top-K list is produced by "
               "the scorer, not by the metrics",
    "ties": "broken by the scorer before the metrics see the list: score descending, then item id ascending; the "
            "metrics only read list positions",
    "gain": "binary: an item is relevant (gain 1) iff it is one of the user's held-out items in the evaluated split",
    "missing_entries": "a -1 entry in a top-K list (the user had fewer than K rankable items) never counts as a hit",
    "recall": "hits@k / |T_u| (all held-out items of the user, NOT min(k, |T_u|); MMRec/RecBole convention)",
    "precision": "hits@k / k (k even when the user had fewer than k rankable items)",
    "hit_rate": "1 if at least one held-out item is in the top k, else 0",
    "mrr": "1 / rank of the first held-out item within the top k, else 0",
    "ndcg": "DCG@k / IDCG@k with DCG@k = sum_{r<=k} h_r / log2(r + 1) and "
            "IDCG@k = sum_{r<=min(|T_u|, k)} 1 / log2(r + 1)",
    "map": "AP@k = (1 / min(|T_u|, k)) * sum_{r<=k} P@r * h_r (RecBole/MMRec normaliser); MAP@k is its mean",
    "averaging": "metric@k is the unweighted mean over evaluated users",
    "users_without_held_out_items": "skipped: they enter no average and no beyond-accuracy count, and are counted "
                                    "in n_skipped_users",
    "beyond_accuracy": "computed from the top-max(ks) lists of the evaluated users: coverage = share of catalogue "
                       "items recommended at least once; avg_popularity = mean training interaction count of the "
                       "recommended items, weighted by how often each is recommended; gini = Gini index of the "
                       "per-item recommendation counts over all catalogue items (0 = uniform, -> 1 = concentrated)",
}


# ------------------------------------------------------------------------------------------------ hit matrix
def truth_keys(truth_indptr: Tensor, truth_indices: Tensor, n_items: int) -> Tensor:
    """Sorted int64 keys ``user * n_items + item`` of every held-out (user, item) pair.

    One flat sorted vector turns the per-user membership test into a single ``searchsorted`` over the whole batch.
    The keys are sorted here (cheap, once per evaluation) so that a CSR whose rows are not sorted cannot silently
    produce wrong hits.
    """
    indptr = truth_indptr.to(torch.int64)
    indices = truth_indices.to(device=indptr.device, dtype=torch.int64)
    n_users = indptr.numel() - 1
    rows = torch.repeat_interleave(
        torch.arange(n_users, device=indptr.device), indptr.diff(), output_size=indices.numel()
    )
    return torch.sort(rows * n_items + indices).values


def hits_from_keys(topk_items: Tensor, users: Tensor, keys: Tensor, n_items: int) -> Tensor:
    """Boolean ``[B, K]``: whether ``topk_items[b, r]`` is a held-out item of ``users[b]``, given :func:`truth_keys`.

    Entries outside ``[0, n_items)`` -- the ``-1`` padding in particular -- are masked out explicitly: without that,
    ``user * n_items - 1`` would be the key of the previous user's last item and could count as a hit.
    """
    items = topk_items.to(torch.int64)
    valid = (items >= 0) & (items < n_items)
    if keys.numel() == 0:
        return torch.zeros_like(valid)
    query = users.to(device=items.device, dtype=torch.int64).unsqueeze(1) * n_items + items.clamp(0, n_items - 1)
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return (keys[pos] == query) & valid


def hit_matrix(
    topk_items: Tensor, users: Tensor, truth_indptr: Tensor, truth_indices: Tensor, n_items: int
) -> tuple[Tensor, Tensor]:
    """The hit matrix of a batch of top-K lists and the number of held-out items of each user.

    Args:
        topk_items: int64 ``[B, K]`` item ids per user, best first; ``-1`` = no item (never a hit).
        users: int64 ``[B]`` user ids of the rows.
        truth_indptr, truth_indices: held-out items of every user as CSR (``[n_users + 1]`` and ``[nnz]``).
        n_items: catalogue size (used to build the ``user * n_items + item`` keys).

    Returns:
        ``(hits bool [B, K], n_pos int64 [B])``. Builds the truth keys on every call; the accumulator
        (:class:`TopKMetrics`) builds them once and calls :func:`hits_from_keys` instead.
    """
    device = topk_items.device
    indptr = truth_indptr.to(device=device, dtype=torch.int64)
    keys = truth_keys(indptr, truth_indices.to(device), n_items)
    users = users.to(device=device, dtype=torch.int64)
    return hits_from_keys(topk_items, users, keys, n_items), indptr[users + 1] - indptr[users]


# ------------------------------------------------------------------------------------------ per-user metrics
def _top(hits: Tensor, k: int) -> Tensor:
    """The first ``k`` columns of ``hits`` as float; ``k`` must be a valid cut-off for this matrix."""
    if not 1 <= int(k) <= hits.shape[1]:
        raise ConfigError(
            f"cut-off k={k} is not between 1 and K={hits.shape[1]}, the length of the ranked lists",
            field="metric.ks", fix=f"use ks between 1 and {hits.shape[1]} or let the scorer rank more items",
        )
    return hits[:, : int(k)].to(torch.float32)


def _ranks(k: int, device: torch.device) -> Tensor:
    return torch.arange(1, k + 1, device=device, dtype=torch.float32)


def recall(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """hits@k / |T_u|. The denominator is all held-out items (MMRec/RecBole), so users with |T_u| > k can't reach 1."""
    h = _top(hits, k)
    return h.sum(1) / n_pos.clamp(min=1).to(h.dtype)


def precision(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """hits@k / k (``n_pos`` unused; kept so every metric has the same signature)."""
    h = _top(hits, k)
    return h.sum(1) / float(k)


def hit_rate(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """1 if any of the top k is a held-out item, else 0."""
    return (_top(hits, k).sum(1) > 0).to(torch.float32)


def mrr(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """1 / rank of the first hit within the top k (0 without one).

    ``max_r h_r / r`` is exactly that, because ``1/r`` decreases with ``r``; no argmax/gather needed.
    """
    h = _top(hits, k)
    return (h / _ranks(k, h.device)).amax(1)


def ndcg(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """Binary-gain NDCG@k: DCG = sum_r h_r / log2(r + 1), IDCG = DCG of min(|T_u|, k) hits at the top.

    Users with no held-out items have IDCG = 0 and get 0 instead of 0/0.
    """
    h = _top(hits, k)
    discount = 1.0 / torch.log2(_ranks(k, h.device) + 1.0)
    dcg = (h * discount).sum(1)
    ideal = torch.cat([discount.new_zeros(1), discount.cumsum(0)])  # ideal[m] = IDCG with m hits on top
    idcg = ideal[n_pos.clamp(0, k).to(device=h.device, dtype=torch.int64)]
    return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), torch.zeros_like(dcg))


def average_precision(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """AP@k = (1 / min(|T_u|, k)) * sum_r P@r * h_r (RecBole/MMRec normaliser, not the number of hits found).

    With ``min(|T_u|, k)`` the score is 1 only when the top min(|T_u|, k) slots are all hits; with k >= the number of
    rankable items it equals the usual (untruncated) average precision.
    """
    h = _top(hits, k)
    precision_at_r = h.cumsum(1) / _ranks(k, h.device)
    return (precision_at_r * h).sum(1) / n_pos.clamp(1, k).to(h.dtype)


MetricFn = Callable[[Tensor, Tensor, int], Tensor]

#: name in configs -> per-user metric ``(hits, n_pos, k) -> [B]``
TOPK_METRICS: dict[str, MetricFn] = {
    "recall": recall,
    "ndcg": ndcg,
    "precision": precision,
    "hit_rate": hit_rate,
    "mrr": mrr,
    "map": average_precision,
}


def check_metric_names(metrics: Sequence[str]) -> list[str]:
    """Return ``metrics`` as a list, or raise a ConfigError naming the unknown ones and the valid choices."""
    unknown = [m for m in metrics if m not in TOPK_METRICS]
    if unknown:
        raise ConfigError(
            f"unknown top-N metric(s) {unknown}", field="metric.metrics",
            fix=f"choose from {', '.join(TOPK_METRICS)}",
        )
    return list(metrics)


def compute_topk_metrics(
    hits: Tensor, n_pos: Tensor, metrics: Sequence[str], ks: Sequence[int]
) -> dict[str, Tensor]:
    """Per-user values of every ``metric@k``, keyed ``"recall@20"`` etc. (each a float ``[B]`` tensor).

    Raises ConfigError for an unknown metric name or a cut-off outside ``1..K``.
    """
    names = check_metric_names(metrics)
    out: dict[str, Tensor] = {}
    for name in names:
        for k in ks:
            out[f"{name}@{int(k)}"] = TOPK_METRICS[name](hits, n_pos, int(k))
    return out


# ----------------------------------------------------------------------------------------------- accumulator
class TopKMetrics(Metric):
    """Accumulates top-N metrics over batches of users (and over processes under DDP).

    States are sums, never means: per-``metric@k`` sums over evaluated users, the number of evaluated users, the
    number of skipped users (no held-out items) and, with ``item_popularity``, the per-item recommendation counts of
    the top-``max(ks)`` lists. Sums make batching and DDP sharding exact: every state reduces with ``sum``, and the
    means are taken once in :meth:`compute`.

    The ground truth is held as plain tensors (not states: it is the same on every process and must not be summed)
    and moved lazily to the device of the first batch that needs it.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        metrics: Sequence[str],
        ks: Sequence[int],
        truth_indptr: Tensor,
        truth_indices: Tensor,
        n_items: int,
        item_popularity: Tensor | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.metric_names = check_metric_names(metrics)
        if not ks or any(int(k) < 1 for k in ks):
            raise ConfigError(f"cut-offs {list(ks)} must be a non-empty list of positive integers", field="metric.ks",
                              fix="e.g. metric.ks=[10,20]")
        self.ks = sorted({int(k) for k in ks})
        self.max_k = self.ks[-1]
        self.n_items = int(n_items)
        self.metric_keys = [f"{m}@{k}" for m in self.metric_names for k in self.ks]

        indptr = torch.as_tensor(truth_indptr, dtype=torch.int64)
        indices = torch.as_tensor(truth_indices, dtype=torch.int64)
        if indptr.ndim != 1 or indices.ndim != 1 or int(indptr[-1]) != indices.numel():
            raise ValueError(f"truth CSR is inconsistent: indptr {tuple(indptr.shape)} ending at "
                             f"{int(indptr[-1]) if indptr.numel() else None}, indices {tuple(indices.shape)}")
        self._truth_indptr = indptr
        self._truth_keys = truth_keys(indptr, indices, self.n_items)

        self.add_state("sums", default=torch.zeros(len(self.metric_keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_users", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("n_skipped", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self._popularity = None
        if item_popularity is not None:
            pop = torch.as_tensor(item_popularity)
            if pop.shape != (self.n_items,):
                raise ValueError(f"item_popularity has shape {tuple(pop.shape)}, expected ({self.n_items},)")
            self._popularity = pop
            self.add_state("rec_counts", default=torch.zeros(self.n_items, dtype=torch.int64), dist_reduce_fx="sum")

    def _truth_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._truth_keys.device != device:
            self._truth_keys = self._truth_keys.to(device)
            self._truth_indptr = self._truth_indptr.to(device)
        return self._truth_indptr, self._truth_keys

    def update(self, topk_items: Tensor, users: Tensor) -> None:
        """Add one batch: ``topk_items`` int64 ``[B, K >= max(ks)]`` (``-1`` = no item), ``users`` int64 ``[B]``."""
        device = self.sums.device
        items = topk_items.to(device=device, dtype=torch.int64)
        users = users.to(device=device, dtype=torch.int64)
        indptr, keys = self._truth_on(device)
        hits = hits_from_keys(items, users, keys, self.n_items)
        n_pos = indptr[users + 1] - indptr[users]
        values = compute_topk_metrics(hits, n_pos, self.metric_names, self.ks)

        evaluated = n_pos > 0
        stacked = torch.stack([values[key] for key in self.metric_keys], dim=1).to(torch.float64)
        self.sums += (stacked * evaluated.unsqueeze(1)).sum(0)
        self.n_users += evaluated.sum()
        self.n_skipped += (~evaluated).sum()

        if self._popularity is not None:
            top = items[:, : self.max_k]
            counted = (top >= 0) & (top < self.n_items) & evaluated.unsqueeze(1)
            # scatter_add_ rather than bincount(top[counted]): boolean indexing would sync with the host per batch
            self.rec_counts.scatter_add_(0, top.clamp(0, self.n_items - 1).reshape(-1),
                                         counted.reshape(-1).to(torch.int64))

    def compute(self) -> dict[str, float]:
        """Means over evaluated users (0.0 when there were none; ``n_users`` says so) plus the user counts."""
        n_users = int(self.n_users.item())
        means = (self.sums / max(n_users, 1)).tolist()
        out: dict[str, float] = dict(zip(self.metric_keys, (float(v) for v in means)))
        if self._popularity is not None:
            k = self.max_k
            out[f"coverage@{k}"] = item_coverage(self.rec_counts, self.n_items)
            out[f"avg_popularity@{k}"] = average_popularity(self.rec_counts, self._popularity)
            out[f"gini@{k}"] = gini(self.rec_counts)
        out["n_users"] = float(n_users)
        out["n_skipped_users"] = float(self.n_skipped.item())
        return out
