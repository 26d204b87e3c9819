"""Full-ranking top-K with seen-item masking, in memory-bounded chunks (torch backend, CPU and CUDA alike).

Evaluation of a top-N model ranks *every* item for every test user, drops the items the user already interacted with
(train items; at test time also validation items) and keeps the best ``k``. Three things make that subtle:

* **Memory.** A ``[users, items]`` score matrix does not fit for real catalogues (20k x 50k float32 is 4 GB), so users
  are processed in chunks sized from a memory budget (:func:`chunk_size_for`).
* **Masking** must not loop over users in Python: :func:`mask_seen_` turns the CSR rows of a whole chunk into one
  ``(row, col)`` index pair list with ``repeat_interleave``/``cumsum`` arithmetic and writes ``-inf`` in one shot.
* **Ties.** ``torch.topk`` picks an unspecified subset of items tied at the k-th score, and an unspecified order among
  tied items inside the selection. Popularity-style models produce exactly such ties, and then metric values would
  depend on the backend, the device and the chunking. :func:`topk_deterministic` fixes the rule: score descending,
  then item id ascending -- for the order *and* for which tied items cross the k-th boundary.

Entries that are ``-inf`` after masking are not rankable; when a user has fewer than ``k`` rankable items the missing
slots hold item id ``-1`` (and value ``-inf``), which metric code counts as a miss.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from recx.errors import ConfigError, TrainingError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

#: item id written into top-K slots that have no rankable item left
MISSING = -1


# ----------------------------------------------------------------------------------------------------- masking
@torch.no_grad()
def seen_pairs(users: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)`` of every seen item of ``users``: ``rows[j]`` is the position in ``users``, ``cols[j]`` the item.

    Vectorised CSR row gathering: with ``start = indptr[u]`` and ``count = indptr[u+1] - start`` per batch user, entry
    ``j`` of the output belongs to batch row ``r = repeat_interleave(arange(B), count)[j]`` and sits at offset
    ``j - (cumsum(count) - count)[r]`` inside that user's CSR row. Duplicate users in ``users`` simply repeat a row.
    Computed on ``indptr``'s device; the caller moves the (small) result where the scores live.
    """
    device = indptr.device
    users = users.to(device=device, dtype=torch.long)
    n_rows = indptr.numel() - 1
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= n_rows):
        raise ValueError(f"user ids must lie in [0, {n_rows}) to look up seen items, got "
                         f"[{int(users.min())}, {int(users.max())}]")
    starts = indptr[users]
    counts = indptr[users + 1] - starts
    total = int(counts.sum()) if counts.numel() else 0
    if total == 0:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    rows = torch.repeat_interleave(torch.arange(users.numel(), device=device), counts, output_size=total)
    row_offsets = torch.cumsum(counts, 0) - counts  # where each batch row starts in the flat output
    within = torch.arange(total, device=device) - row_offsets[rows]
    cols = indices[starts[rows] + within]
    return rows, cols


@torch.no_grad()
def mask_seen_(scores: torch.Tensor, users: torch.Tensor, indptr: torch.Tensor,
               indices: torch.Tensor) -> torch.Tensor:
    """Set ``scores[b, seen items of users[b]] = -inf`` in place and return ``scores``.

    ``(indptr, indices)`` is the seen-item CSR over all users (int64, rows sorted and deduplicated). It may live on a
    different device than ``scores`` (e.g. CPU CSR, GPU scores): the row gathering runs where the CSR lives and only
    the batch's ``(row, col)`` pairs are moved.
    """
    if scores.dim() != 2 or scores.shape[0] != users.numel():
        raise ValueError(f"scores must be [len(users), n_items], got {tuple(scores.shape)} for {users.numel()} users")
    rows, cols = seen_pairs(users, indptr, indices)
    if rows.numel():
        if rows.device != scores.device:
            rows, cols = rows.to(scores.device, non_blocking=True), cols.to(scores.device, non_blocking=True)
        scores[rows, cols] = float("-inf")
    return scores


# ----------------------------------------------------------------------------------------- deterministic top-K
@torch.no_grad()
def order_candidates(values: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row of a candidate list by value descending, then item id ascending.

    Two passes: sort by id, then a *stable* sort by value keeps ascending ids among equal values. Candidate lists are
    short (``k`` or ``k`` + over-fetch), so this is cheap.
    """
    items, perm = torch.sort(items, dim=1)
    values = values.gather(1, perm)
    values, perm = torch.sort(values, dim=1, descending=True, stable=True)
    return values, items.gather(1, perm)


def _check_k(k: int, n_items: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"top-K cut-off must be a positive integer, got {k!r}", field="metric.ks")
    if k > n_items:
        raise ConfigError(f"top-K cut-off {k} exceeds the number of items ({n_items})", field="metric.ks",
                          fix=f"use cut-offs of at most {n_items}")
    return int(k)


@torch.no_grad()
def _resolve_boundary_ties(scores: torch.Tensor, kth: torch.Tensor, n_in: torch.Tensor, k: int,
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` (values, ids ascending) of rows whose k-th value ``kth`` is tied outside the selection.

    Every item scoring above ``kth`` is in the top-K; of the items scoring exactly ``kth``, the ``n_in`` smallest ids
    are. A running count of ties along the row (``cumsum``) picks them in O(n_items) per row -- cheaper than the full
    stable sort that would give the same answer (a popularity model can put every row here).
    """
    tie = scores == kth
    rank_among_ties = torch.cumsum(tie, dim=1, dtype=torch.int32)
    keep = (scores > kth) | (tie & (rank_among_ties <= n_in.to(torch.int32)))
    del tie, rank_among_ties
    items = keep.nonzero()[:, 1].view(scores.shape[0], k)  # nonzero() is row-major: ids ascending within a row
    return scores.gather(1, items), items


@torch.no_grad()
def topk_deterministic(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of each row ordered by score descending, then item id ascending: ``(values [B,k], items [B,k])``.

    The rule also decides which tied items cross the k-th boundary (the smallest ids win), so results do not depend on
    device, chunking or the ``torch.topk`` implementation. Fast path: one ``torch.topk`` of ``k + 1``. A row's boundary
    is ambiguous exactly when its (k+1)-th value equals its k-th (some item *outside* the top-K ties with one inside);
    this test is free, whereas counting ``scores == kth`` over whole rows costs 2-3x the ``topk`` itself. Only ambiguous
    rows are redone exactly; then every row's top-K is re-ordered by (value desc, id asc).

    ``-inf`` entries are unrankable (masked): their slots get item id ``-1``. NaN scores raise a TrainingError, because
    any ordering of them would be arbitrary.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [B, n_items], got shape {tuple(scores.shape)}")
    n_rows, n_items = scores.shape
    k = _check_k(k, n_items)
    if n_rows == 0:
        return scores.new_empty(0, k), torch.empty(0, k, dtype=torch.long, device=scores.device)
    fetch = min(k + 1, n_items)
    values, items = torch.topk(scores, fetch, dim=1, largest=True, sorted=True)
    if bool(torch.isnan(values[:, 0]).any()):  # topk ranks NaN above everything, so row maxima reveal any NaN
        raise TrainingError("the model produced NaN scores; rankings would be arbitrary",
                            fix="check training for divergence (lower model.lr) or NaN input features")
    resorted = None  # rows whose candidates are not in topk's value-descending order any more
    if fetch > k:
        kth = values[:, k - 1:k]
        # -inf ties are harmless: those slots become -1 whichever masked items topk picked
        bad = (values[:, k] == kth[:, 0]) & torch.isfinite(kth[:, 0])
        values, items = values[:, :k], items[:, :k]
        bad_rows = bad.nonzero().squeeze(1)
        if bad_rows.numel():
            n_in = (values[bad_rows] == kth[bad_rows]).sum(1, keepdim=True)
            # redo in blocks of 1/8 of the chunk: the temporaries (a row copy, int32 tie counts, a few bool masks,
            # ~13 bytes per score) then stay under half a score matrix, inside chunk_size_for's budget
            block = max(1, -(-n_rows // 8))
            for start in range(0, bad_rows.numel(), block):
                rows = bad_rows[start:start + block]
                fixed_values, fixed_items = _resolve_boundary_ties(scores[rows], kth[rows],
                                                                   n_in[start:start + block], k)
                values[rows], items[rows] = fixed_values, fixed_items
            resorted = bad_rows
    # topk already sorts by value; only rows with equal neighbouring values (ties inside the list) and the rows
    # redone above need the (value desc, id asc) ordering -- usually none, and two sorts of every row cost ~10 %
    # of a whole evaluation pass
    need = (values[:, 1:] == values[:, :-1]).any(1)
    if resorted is not None:
        need[resorted] = True
    rows = need.nonzero().squeeze(1)
    if rows.numel() == n_rows:
        values, items = order_candidates(values, items)
    elif rows.numel():
        values[rows], items[rows] = order_candidates(values[rows], items[rows])
    items = items.masked_fill(values == float("-inf"), MISSING)
    return values, items


# -------------------------------------------------------------------------------------------------- chunking
def chunk_size_for(n_items: int, memory_budget_mb: float, bytes_per_score: int = 4, copies: int = 3) -> int:
    """How many users' score rows fit in ``memory_budget_mb`` (at least 1).

    ``copies`` counts the score matrix plus the working memory of masking and top-K (the tie fix, ``topk`` buffers)
    and of ``score_fn`` itself. Measured peaks of :class:`TorchTopK` at 50k items: ~1.1 score matrices with distinct
    scores, ~1.8 with popularity-style ties in every row; 3 leaves room for the model's own temporaries.
    """
    if not memory_budget_mb or memory_budget_mb <= 0:
        raise ConfigError(f"memory budget must be positive, got {memory_budget_mb!r} MB",
                          field="metric.memory_budget_mb")
    if n_items < 1:
        raise ConfigError(f"cannot rank an empty item catalogue (n_items={n_items})")
    per_user = max(1, int(n_items) * int(bytes_per_score) * int(copies))
    return max(1, int(memory_budget_mb * 2**20) // per_user)


def check_ranker_args(k, seen_indptr, seen_indices, memory_budget_mb) -> int:
    """Validate the constructor arguments every ranker backend shares; return ``k`` as an int."""
    if (seen_indptr is None) != (seen_indices is None):
        raise ValueError("give both seen_indptr and seen_indices, or neither")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"top-K cut-off must be a positive integer, got {k!r}", field="metric.ks")
    chunk_size_for(1, memory_budget_mb)  # validates the budget early
    return int(k)


class TorchTopK:
    """Chunked full ranking: score a chunk of users, mask their seen items, take the deterministic top-K.

    ``device`` (optional) is where chunks of user ids are sent before ``score_fn`` is called and where the seen-item CSR
    is kept; by default user ids stay where they are and the CSR stays on the CPU (only each chunk's seen pairs move).
    Results live on the device of the scores. ``n_items`` may be given up front; otherwise the first call of
    :meth:`rank` learns it from a one-user chunk (results do not depend on chunking, so this is free of side effects).
    """

    def __init__(self, k: int, seen_indptr: torch.Tensor | None = None, seen_indices: torch.Tensor | None = None,
                 memory_budget_mb: float = 256, device: torch.device | str | None = None,
                 n_items: int | None = None) -> None:
        self.k = check_ranker_args(k, seen_indptr, seen_indices, memory_budget_mb)
        self.memory_budget_mb = memory_budget_mb
        self.device = torch.device(device) if device is not None else None
        if seen_indptr is not None:
            seen_indptr, seen_indices = seen_indptr.long(), seen_indices.long()
            if self.device is not None:
                seen_indptr, seen_indices = seen_indptr.to(self.device), seen_indices.to(self.device)
        self.seen_indptr, self.seen_indices = seen_indptr, seen_indices
        self.n_items = n_items

    @torch.no_grad()
    def _finish_chunk(self, scores: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if scores.shape[0] != users.numel():
            raise ValueError(f"score_fn returned {scores.shape[0]} rows for {users.numel()} users")
        if not scores.is_floating_point():
            scores = scores.float()
        if self.seen_indptr is not None:
            mask_seen_(scores, users, self.seen_indptr, self.seen_indices)
        values, items = topk_deterministic(scores, self.k)
        return items, values

    @torch.no_grad()
    def rank(self, score_fn: ScoreFn, users: torch.Tensor,
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(users_chunk, items [b,k], values [b,k])`` chunk by chunk, in the order of ``users``."""
        users = torch.as_tensor(users, dtype=torch.long)
        if self.device is not None:
            users = users.to(self.device)
        start = 0
        if self.n_items is None and users.numel():
            first = users[:1]
            scores = score_fn(first)
            self.n_items = int(scores.shape[1])
            items, values = self._finish_chunk(scores, first)
            del scores
            yield first, items, values
            start = 1
        if start >= users.numel():
            return
        chunk = chunk_size_for(self.n_items, self.memory_budget_mb)
        for begin in range(start, users.numel(), chunk):
            batch = users[begin:begin + chunk]
            scores = score_fn(batch)
            items, values = self._finish_chunk(scores, batch)
            del scores  # free before the next chunk is scored
            yield batch, items, values

    @torch.no_grad()
    def rank_all(self, score_fn: ScoreFn, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All of :meth:`rank` concatenated: ``(items [U,k], values [U,k])``."""
        return _concat(self.rank(score_fn, users), self.k)

    @torch.no_grad()
    def rank_vectors(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor, users: torch.Tensor,
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """:meth:`rank` for inner-product models: ``score = user_vecs[u] @ item_vecs.T``."""
        self.n_items = int(item_vecs.shape[0])
        item_t = item_vecs.T

        def score_fn(u: torch.Tensor) -> torch.Tensor:
            return user_vecs[u.to(user_vecs.device)] @ item_t

        return self.rank(score_fn, users)

    @torch.no_grad()
    def rank_all_vectors(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor,
                         users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All of :meth:`rank_vectors` concatenated: ``(items [U,k], values [U,k])``."""
        return _concat(self.rank_vectors(user_vecs, item_vecs, users), self.k)


def _concat(chunks: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], k: int,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    items, values = [], []
    for _, chunk_items, chunk_values in chunks:
        items.append(chunk_items)
        values.append(chunk_values)
    if not items:
        return torch.empty(0, k, dtype=torch.long), torch.empty(0, k)
    return torch.cat(items), torch.cat(values)
