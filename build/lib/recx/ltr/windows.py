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
