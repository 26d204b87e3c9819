"""Generated learning-to-rank data with planted structure, for tests and for checking that a ranker learns at all.

Every document gets Gaussian features plus a per-query offset (LETOR features live on query-dependent scales too,
which per-query normalisation removes). A hidden utility — a random unit-norm linear function of the first
``n_relevant_features`` within-query deviations, a mild interaction term, and Gaussian noise of std ``noise`` —
is cut at quantiles into graded labels ``0..max_label`` whose frequencies halve from one grade to the next (for
``max_label=4``: 52% / 26% / 13% / 6% / 3%, skewed towards 0 like MSLR-WEB10K's 52% / 32% / 13% / 2% / 1%).

The LAST column (``n_features - 1``) is a popularity-like signal in ``[0, 1]``: a sigmoid of the noiseless utility
plus strong noise, so it correlates only weakly with relevance (a prior, not an oracle). InfoRank reads it as the
popularity signal; ``meta["popularity_column"]`` names it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from recx.errors import ConfigError
from recx.ltr.data import LTRData, LTRSplit

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train / valid / test, by whole queries


class SyntheticLTR:
    """Deterministic generator (one ``seed`` fixes everything); :meth:`generate` returns raw, unnormalised data."""

    def __init__(self, n_queries: int = 200, docs_per_query: Sequence[int] = (20, 60), n_features: int = 32,
                 n_relevant_features: int = 8, max_label: int = 4, noise: float = 0.5, seed: int = 0) -> None:
        lo, hi = (int(v) for v in docs_per_query)
        if not 1 <= lo <= hi:
            raise ConfigError(f"docs_per_query must be (min, max) with 1 <= min <= max, got {(lo, hi)}",
                              field="dataset.source.docs_per_query")
        if not 1 <= n_relevant_features < n_features:
            raise ConfigError(f"need 1 <= n_relevant_features < n_features (the last column is popularity), got "
                              f"{n_relevant_features} and {n_features}", field="dataset.source.n_relevant_features")
        if n_queries < 5 or max_label < 1 or noise < 0:
            raise ConfigError("need n_queries >= 5 (three splits), max_label >= 1 and noise >= 0",
                              field="dataset.source")
        self.n_queries = int(n_queries)
        self.docs_per_query = (lo, hi)
        self.n_features = int(n_features)
        self.n_relevant_features = int(n_relevant_features)
        self.max_label = int(max_label)
        self.noise = float(noise)
        self.seed = int(seed)

    @property
    def popularity_column(self) -> int:
        return self.n_features - 1

    def cache_key(self) -> dict:
        return {"n_queries": self.n_queries, "docs_per_query": list(self.docs_per_query),
                "n_features": self.n_features, "n_relevant_features": self.n_relevant_features,
                "max_label": self.max_label, "noise": self.noise, "seed": self.seed}

    def generate(self) -> LTRData:
        rng = np.random.default_rng(self.seed)
        lo, hi = self.docs_per_query
        lengths = rng.integers(lo, hi + 1, size=self.n_queries)
        query = np.repeat(np.arange(self.n_queries), lengths)
        n_docs, d, r = int(lengths.sum()), self.n_features - 1, self.n_relevant_features
        deviation = rng.standard_normal((n_docs, d))
        offset = rng.standard_normal((self.n_queries, d))
        weights = rng.standard_normal(r)
        weights /= np.linalg.norm(weights)
        signal = deviation[:, :r] @ weights  # unit variance
        if r >= 2:
            signal = signal + 0.3 * np.tanh(deviation[:, 0] * deviation[:, 1])
        utility = signal + self.noise * rng.standard_normal(n_docs)
        share = 0.5 ** np.arange(self.max_label + 1)
        cuts = np.quantile(utility, np.cumsum(share / share.sum())[:-1])
        labels = np.searchsorted(cuts, utility, side="right")
        popularity = 1.0 / (1.0 + np.exp(-(0.5 * signal / signal.std() + rng.standard_normal(n_docs))))
        features = np.concatenate([deviation + offset[query], popularity[:, None]], axis=1).astype(np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        full = LTRSplit(torch.from_numpy(features), torch.from_numpy(labels.astype(np.int64)),
                        torch.from_numpy(offsets.astype(np.int64)), torch.arange(1, self.n_queries + 1))
        order = rng.permutation(self.n_queries)
        n_train = round(SPLIT_FRACTIONS[0] * self.n_queries)
        n_valid = round(SPLIT_FRACTIONS[1] * self.n_queries)
        parts = np.split(order, [n_train, n_train + n_valid])
        train, valid, test = (full.subset(torch.from_numpy(np.sort(p))) for p in parts)
        meta = {"generator": self.cache_key(), "popularity_column": self.popularity_column,
                "relevant_features": list(range(r)), "label_shares": (share / share.sum()).round(4).tolist()}
        return LTRData(name="synthetic_ltr", train=train, valid=valid, test=test, meta=meta)
