"""Top-N interactions as learning-to-rank slates: user timelines cut into windows, as STARank's code does.

Each user's ratings, in time order (ties by item id), are cut into consecutive windows of ``window`` items (a last
partial window is dropped). Query ``(u, w)`` for ``w ≥ 1``: the candidates are window ``w``, the history is window
``w − 1`` (features only, its labels unseen), and a candidate is relevant iff its rating ≥ ``relevant_rating``.
Per user, the last query is the test query, the one before it the validation query, the others train (STARank's
``get_sliding_sequence``). Users with fewer than two full windows contribute nothing.

Document features (all known before the candidates' ratings):
``genre`` multi-hot (19), release year ``(year − 1990) / 10``, ``log1p`` item popularity and the item's mean rating
(centred) over the *training rows* only (windows before each user's validation query), and the cosine between the
history's genre profile and the item's genres (the one user–item feature). No item ids: the models are feature-based.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from recx.data.grouplens import ML100K_GENRES
from recx.errors import DataError
from recx.ltr.data import LTRData, LTRSplit

FEATURES = [*(f"genre:{g}" for g in ML100K_GENRES), "year", "log_popularity", "mean_rating", "history_genre_cosine"]
POPULARITY_FEATURE = FEATURES.index("log_popularity") + 1  # 1-based, for the datamodule's popularity_feature


class TimelineWindows:
    """An LTR source over a top-N source with ratings and timestamps (``ml100k``): see the module docstring."""

    normalization = "none"

    def __init__(self, source: Any, window: int = 10, relevant_rating: float = 4.0) -> None:
        self.source, self.window, self.relevant_rating = source, window, relevant_rating
        self.name = f"{source.name}_windows"
        self.instructions = getattr(source, "instructions", None)

    def file_sets(self):
        return self.source.file_sets()

    def cache_key(self) -> dict:
        return {"source": self.source.cache_key(), "window": self.window, "relevant_rating": self.relevant_rating,
                "features": FEATURES}

    def read(self, raw_dir: Path) -> LTRData:
        raw = self.source.read(raw_dir)
        frame = raw.interactions
        missing = {"timestamp", "rating"} - set(frame.columns)
        if missing:
            raise DataError(f"timeline windows need {sorted(missing)} in the interactions of '{self.source.name}'",
                            field="dataset.source", fix="use a dataset with ratings and timestamps (ml100k)")
        return build_windows(frame, raw.items, self.window, self.relevant_rating, self.name)


def item_table(items: pl.DataFrame | None, item_ids: np.ndarray) -> np.ndarray:
    """``[n_items, 20]``: genre multi-hot and scaled release year, rows in ``item_ids`` order."""
    out = np.zeros((len(item_ids), len(ML100K_GENRES) + 1), dtype=np.float32)
    if items is None:
        return out
    lookup = pl.DataFrame({"item": item_ids.astype(str)}).join(
        items.with_columns(pl.col("item").cast(pl.Utf8)), on="item", how="left", maintain_order="left")
    index = {g: k for k, g in enumerate(ML100K_GENRES)}
    if "genres" in lookup.columns:
        for row, genres in enumerate(lookup["genres"].to_list()):
            for g in genres or ():
                if g in index:
                    out[row, index[g]] = 1.0
    if "release_year" in lookup.columns:
        years = pl.Series(lookup["release_year"]).cast(pl.Float64, strict=False).fill_null(1990.0).to_numpy()
        out[:, -1] = (years - 1990.0) / 10.0
    return out


def build_windows(frame: pl.DataFrame, items: pl.DataFrame | None, window: int, relevant_rating: float,
                  name: str) -> LTRData:
    frame = frame.with_columns(pl.col("item").cast(pl.Utf8)).sort(["user", "timestamp", "item"])
    user_codes = frame["user"].cast(pl.Utf8).to_numpy()
    _, user = np.unique(user_codes, return_inverse=True)
    item_ids, item = np.unique(frame["item"].to_numpy(), return_inverse=True)
    rating = frame["rating"].to_numpy().astype(np.float32)
    n = len(frame)
    start = np.r_[0, np.flatnonzero(np.diff(user)) + 1]  # rows are grouped by user after the sort
    counts = np.diff(np.r_[start, n])
    position = np.arange(n) - np.repeat(start, counts)
    n_windows = np.repeat(counts // window, counts)
    w = position // window
    keep = w < n_windows  # full windows only
    # split of each row as a candidate: last window test, the one before valid, earlier windows train
    split = np.where(w == n_windows - 1, 2, np.where(w == n_windows - 2, 1, 0))
    train_rows = keep & (w <= n_windows - 3)
    pop = np.bincount(item[train_rows], minlength=len(item_ids)).astype(np.float32)
    rating_sum = np.bincount(item[train_rows], weights=rating[train_rows], minlength=len(item_ids))
    global_mean = float(rating[train_rows].mean()) if train_rows.any() else 0.0
    mean_rating = np.where(pop > 0, rating_sum / np.maximum(pop, 1), global_mean) - global_mean
    static = np.concatenate([item_table(items, item_ids), np.log1p(pop)[:, None], mean_rating[:, None]], 1)

    rows = np.flatnonzero(keep)  # sorted by user, then position: consecutive blocks of `window` rows
    blocks = rows.reshape(-1, window)
    block_user, block_w = user[blocks[:, 0]], w[blocks[:, 0]]
    is_query = block_w >= 1
    cand = blocks[is_query]
    hist = blocks[np.flatnonzero(is_query) - 1]  # the previous block is the same user's previous window
    genres = static[:, : len(ML100K_GENRES)]
    profile = genres[item[hist]].sum(1)  # [Q, 19]
    cand_genres = genres[item[cand]]  # [Q, W, 19]
    cosine = (cand_genres * profile[:, None, :]).sum(-1) / (
        np.linalg.norm(cand_genres, axis=-1) * np.linalg.norm(profile, axis=-1, keepdims=True) + 1e-9)
    hist_genres = genres[item[hist]]
    hist_cosine = (hist_genres * profile[:, None, :]).sum(-1) / (
        np.linalg.norm(hist_genres, axis=-1) * np.linalg.norm(profile, axis=-1, keepdims=True) + 1e-9)
    cand_x = np.concatenate([static[item[cand]], cosine[..., None]], -1).astype(np.float32)
    hist_x = np.concatenate([static[item[hist]], hist_cosine[..., None]], -1).astype(np.float32)
    labels = (rating[cand] >= relevant_rating).astype(np.int64)
    query_split = split[cand[:, 0]]
    qids = block_user[is_query] * 10_000 + block_w[is_query]

    parts = {}
    for code, part in enumerate(("train", "valid", "test")):
        sel = np.flatnonzero(query_split == code)
        q = len(sel)
        parts[part] = LTRSplit(
            features=torch.from_numpy(cand_x[sel].reshape(q * window, -1)),
            labels=torch.from_numpy(labels[sel].reshape(-1)),
            offsets=torch.arange(q + 1, dtype=torch.long) * window,
            qids=torch.from_numpy(qids[sel].astype(np.int64)),
            history=torch.from_numpy(hist_x[sel]),
            history_mask=torch.ones(q, window, dtype=torch.bool),
        )
    meta = {"features": FEATURES, "window": window, "relevant_rating": relevant_rating,
            "popularity_column": POPULARITY_FEATURE - 1, "users": int(user.max()) + 1 if n else 0}
    return LTRData(name=name, meta=meta, **parts).validate()


# ------------------------------------------------------------------------------------- STARank's query windows
BINARIZE = ("median", "none")


class QueryWindows:
    """STARank's own task setup over any LTR source (``algo/PreprocessData.py::dealMQ2007``, research notes §1.1).

    All queries of the wrapped source (its train, validation and test files pooled, as STARank pools MQ2007's five
    parts) with more than ``min_docs`` documents are kept; their features are normalised per *original* query (the
    wrapped source's ``normalization``), labels are binarised at the query median (``label > median(label)``,
    ``binarize=median``; ``none`` keeps the graded labels), the documents are shuffled (seeded) and cut into
    consecutive windows of ``window`` (a last partial window is dropped). Query ``(q, w)`` for ``w >= 1``: candidates =
    window ``w``, history = window ``w - 1`` (features only). Per original query the last window is test, the one
    before validation, the others train -- so test windows come from queries also seen in training, unlike the
    full-list setup of the plain dataset.

    A deviation from the reference, on purpose: it numbers its windows globally (``10 * i``) while queries are not
    multiples of 10 long, so after the first query its windows straddle two queries; here every window stays inside
    its query (the intent).

    The wrapped source's raw folder is shared (``name`` is its name); the prepared cache differs by class and options.
    """

    normalization = "none"  # applied per original query in read(), before windowing
    raw_columns: tuple[int, ...] = ()

    def __init__(self, source: Any, window: int = 10, min_docs: int = 40, binarize: str = "median",
                 seed: int = 0) -> None:
        from recx.errors import ConfigError
        from recx.runtools import construct

        if binarize not in BINARIZE:
            raise ConfigError(f"unknown binarize {binarize!r}", field="dataset.source.binarize",
                              fix=f"choose one of {', '.join(BINARIZE)}")
        if int(window) < 1 or int(min_docs) < 3 * int(window) - 1:
            raise ConfigError(f"window={window}, min_docs={min_docs}: a kept query needs at least three windows "
                              "(the first is history only, the last two are validation and test)",
                              field="dataset.source", fix="use window >= 1 and min_docs >= 3 * window - 1 "
                              "(STARank: window 10, min_docs 40)")
        self.source = construct(source) if isinstance(source, dict) else source
        self.window, self.min_docs, self.binarize, self.seed = int(window), int(min_docs), binarize, int(seed)
        self.name = self.source.name
        self.instructions = getattr(self.source, "instructions", None)

    def file_sets(self):
        return self.source.file_sets()

    def cache_key(self) -> dict:
        from recx.data.prepare import describe

        return {"source": describe(self.source), "window": self.window, "min_docs": self.min_docs,
                "binarize": self.binarize, "seed": self.seed, "setup": "starank_windows"}

    def read(self, raw_dir: Path) -> LTRData:
        from recx.ltr.data import SPLITS, normalize_per_query

        data = self.source.read(raw_dir)
        method = getattr(self.source, "normalization", "none")
        keep = tuple(getattr(self.source, "raw_columns", ()))
        parts = [normalize_per_query(data.split(s), method, exclude=keep) for s in SPLITS]
        pooled = concat_splits(parts)
        out = query_windows(pooled, self.window, self.min_docs, self.binarize, self.seed, f"{self.name}_windows")
        out.meta.update({k: v for k, v in data.meta.items() if k not in out.meta},
                        wrapped_normalization={"method": method, "per": "original query", "raw_columns": list(keep)})
        return out


def concat_splits(parts: list[LTRSplit]) -> LTRSplit:
    """The queries of ``parts`` one after the other, as one split (no history)."""
    offsets, base = [torch.zeros(1, dtype=torch.long)], 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += p.n_docs
    return LTRSplit(torch.cat([p.features for p in parts]), torch.cat([p.labels for p in parts]), torch.cat(offsets),
                    torch.cat([p.qids for p in parts]))


def _query_medians(labels: np.ndarray, query: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``numpy.median`` of every query's labels (mean of the two middle values for an even count), vectorised."""
    ordered = labels[np.lexsort((labels, query))]
    lo, hi = starts + (lengths - 1) // 2, starts + lengths // 2
    return (ordered[lo] + ordered[hi]) / 2.0


def query_windows(split: LTRSplit, window: int = 10, min_docs: int = 40, binarize: str = "median", seed: int = 0,
                  name: str = "windows") -> LTRData:
    """The windows of :class:`QueryWindows` from one pooled split (features already normalised per query)."""
    lengths = split.lengths.numpy()
    kept_q = np.flatnonzero(lengths > min_docs)  # STARank: `len(_) > min_len`, min_len = 40
    if kept_q.size == 0:
        raise DataError(f"no query has more than {min_docs} documents", field="dataset.source.min_docs",
                        fix="lower min_docs (and window)")
    sub = split.subset(torch.from_numpy(kept_q))
    n_q, lengths = sub.n_queries, sub.lengths.numpy()
    starts = sub.offsets[:-1].numpy()
    query = np.repeat(np.arange(n_q), lengths)
    raw = sub.labels.numpy()
    labels = (raw > _query_medians(raw.astype(np.float64), query, starts, lengths)[query]).astype(np.int64) \
        if binarize == "median" else raw.astype(np.int64)
    keys = np.random.default_rng(seed).random(len(query))
    order = np.lexsort((keys, query))  # shuffled inside each query, queries in order
    position = np.arange(len(query)) - np.repeat(starts, lengths)
    n_windows = np.repeat(lengths // window, lengths)
    w = position // window
    rows = order[w < n_windows]  # `position` refers to the shuffled order: row order[i] sits at position[i]
    blocks = rows.reshape(-1, window)
    block_q = query[blocks[:, 0]]
    block_w = (w[w < n_windows].reshape(-1, window))[:, 0]
    is_query = block_w >= 1
    cand, hist = blocks[is_query], blocks[np.flatnonzero(is_query) - 1]
    last = (lengths // window)[block_q[is_query]] - 1
    qw = block_w[is_query]
    code = np.where(qw == last, 2, np.where(qw == last - 1, 1, 0))
    features = sub.features.numpy()
    stride = 10 ** max(3, len(str(int(lengths.max()) // window)))  # room for every window index of a query
    qids = sub.qids.numpy()[block_q[is_query]] * stride + qw
    parts = {}
    for c, part in enumerate(("train", "valid", "test")):
        sel = np.flatnonzero(code == c)
        parts[part] = LTRSplit(
            features=torch.from_numpy(features[cand[sel]].reshape(len(sel) * window, -1)),
            labels=torch.from_numpy(labels[cand[sel]].reshape(-1)),
            offsets=torch.arange(len(sel) + 1, dtype=torch.long) * window,
            qids=torch.from_numpy(qids[sel].astype(np.int64)),
            history=torch.from_numpy(features[hist[sel]]),
            history_mask=torch.ones(len(sel), window, dtype=torch.bool),
        )
    meta = {"setup": "STARank windows (algo/PreprocessData.py::dealMQ2007)", "window": window,
            "min_docs": min_docs, "binarize": binarize, "shuffle_seed": seed,
            "source_queries": split.n_queries, "kept_queries": int(n_q),
            "qid": f"original qid * {stride} + window index"}
    return LTRData(name=name, meta=meta, **parts).validate()
