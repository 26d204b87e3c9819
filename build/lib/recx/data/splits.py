"""Train/valid/test split strategies.

Each strategy is a small class built from the dataset config's ``split`` node (its constructor arguments are the
config keys), e.g.::

    split:
      _target_: recx.data.splits.TemporalRatioSplit
      ratios: [0.8, 0.1, 0.1]

and has one method, ``assign(frame) -> pl.Series``: for an indexed frame (columns ``u``, ``i``, and ``timestamp``
for the time-based strategies; see :func:`recx.data.indexing.index_raw`) it returns a ``split`` column, Int8, aligned
with the frame's rows: 0 train, 1 valid, 2 test. Strategies are per user (every user with enough interactions
appears in all three parts), as in RecBole's ``RO``/``TO`` orderings and MMRec's preprocessing, and fully vectorised
(one sort plus window expressions; no Python loop over users).

Counting rule of the ratio splits, for a user with ``n`` interactions and ratios ``(r_train, r_valid, r_test)``::

    n < 3:   everything to train (one or two interactions cannot feed three parts)
    n >= 3:  n_test = max(1, floor(n * r_test)), n_valid = max(1, floor(n * r_valid)), the rest to train

A part whose ratio is 0 stays empty (no minimum of 1), and train keeps at least one interaction. With 0.8/0.1/0.1
this equals MMRec's notebook rule (``n-2, 1, 1``) for ``n < 10``; above that MMRec takes ``floor(0.2 n)`` held-out
interactions and halves them, which can give test one more than valid. The floors add a 1e-9 guard so that products
such as ``0.29 * 100`` count as the integer they mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from recx.errors import ConfigError, DataError

TRAIN, VALID, TEST = 0, 1, 2
_ROW = "__row__"
_EPS = 1e-9


# ------------------------------------------------------------------------------------------------- validation
def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Return ``ratios`` as three floats, or raise a ConfigError naming ``split.ratios``."""
    fix = "give three non-negative numbers (train, valid, test) that sum to 1, e.g. [0.8, 0.1, 0.1]"
    try:
        values = [r for r in ratios]
    except TypeError:
        raise ConfigError(f"split ratios must be a list, got {ratios!r}", field="split.ratios", fix=fix) from None
    if len(values) != 3 or any(isinstance(r, bool) or not isinstance(r, (int, float)) for r in values):
        raise ConfigError(f"split ratios must be three numbers, got {values!r}", field="split.ratios", fix=fix)
    values = [float(r) for r in values]
    if any(not math.isfinite(r) or r < 0 for r in values):
        raise ConfigError(f"split ratios must be non-negative, got {values}", field="split.ratios", fix=fix)
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must sum to 1, got {values} (sum {sum(values):g})", field="split.ratios",
                          fix=fix)
    if values[0] <= 0:
        raise ConfigError("the train ratio must be positive", field="split.ratios", fix=fix)
    return values[0], values[1], values[2]


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}", field=f"split.{name}",
                          fix=f"set split.{name} to a whole number >= {minimum}")
    return int(value)


def _require_columns(frame: pl.DataFrame, columns: Sequence[str], strategy: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return
    if "timestamp" in missing:
        raise DataError(
            f"{strategy} orders each user's interactions by time, but this dataset has no timestamps",
            field="timestamp",
            fix="use `split: {_target_: recx.data.splits.RandomRatioSplit, ratios: [0.8, 0.1, 0.1]}` "
                "(or PresetSplit when the source ships its own split)",
        )
    raise DataError(f"{strategy} needs column(s) {missing}, the frame has {frame.columns}", field=",".join(missing),
                    fix="pass the frame returned by recx.data.indexing.index_raw")


def _check_timestamps(frame: pl.DataFrame, strategy: str) -> None:
    ts = frame["timestamp"]
    bad = ts.is_null()
    if ts.dtype.is_float():
        bad = bad | ts.is_nan().fill_null(False)
    if bad.any():
        raise DataError(f"{int(bad.sum())} interaction(s) have no timestamp, which {strategy} needs", field="timestamp",
                        fix="fill or drop them in the source, or use RandomRatioSplit")


# ------------------------------------------------------------------------------------------------- core
def _assign_by_position(frame: pl.DataFrame, order: list[str], n_valid: pl.Expr, n_test: pl.Expr) -> pl.Series:
    """Sort by ``u`` then ``order``; the last ``n_test`` rows of each user → test, the ``n_valid`` before → valid.

    ``n_valid``/``n_test`` are expressions of ``n`` (the user's interaction count). The result is re-aligned with
    the input rows.
    """
    if frame.height == 0:
        return pl.Series("split", [], dtype=pl.Int8)
    ranked = (
        frame.with_row_index(_ROW)
        .sort(["u", *order, _ROW])
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).over("u").alias("pos"),
            pl.len().over("u").cast(pl.Int64).alias("n"),
        )
        .with_columns(n_test.alias("n_test"))
        .with_columns(n_valid.alias("n_valid"))
        .with_columns(
            pl.when(pl.col("pos") >= pl.col("n") - pl.col("n_test")).then(pl.lit(TEST, pl.Int8))
            .when(pl.col("pos") >= pl.col("n") - pl.col("n_test") - pl.col("n_valid")).then(pl.lit(VALID, pl.Int8))
            .otherwise(pl.lit(TRAIN, pl.Int8))
            .alias("split")
        )
        .sort(_ROW)
    )
    return ranked["split"]


def _ratio_counts(ratios: tuple[float, float, float]) -> tuple[pl.Expr, pl.Expr]:
    """``(n_valid, n_test)`` expressions of the counting rule in the module docstring."""
    _, r_valid, r_test = ratios
    n = pl.col("n")
    enough = n >= 3

    def part(ratio: float) -> pl.Expr:
        if ratio <= 0:
            return pl.lit(0, pl.Int64)
        count = (n.cast(pl.Float64) * ratio + _EPS).floor().cast(pl.Int64)
        return pl.when(enough).then(pl.max_horizontal(count, pl.lit(1, pl.Int64))).otherwise(pl.lit(0, pl.Int64))

    n_test = pl.min_horizontal(part(r_test), pl.max_horizontal(n - 1, pl.lit(0, pl.Int64)))
    n_valid = pl.min_horizontal(part(r_valid), pl.max_horizontal(n - 1 - pl.col("n_test"), pl.lit(0, pl.Int64)))
    return n_valid, n_test


# ------------------------------------------------------------------------------------------------- strategies
class TemporalRatioSplit:
    """Per user, by time: the oldest ``r_train`` share → train, the next → valid, the newest → test.

    The common "temporal leave-ratio-out" protocol (RecBole ``order: TO`` with ``split: {RS: [...]}``, applied per
    user via ``group_by: user``): the model never trains on a user's future. Ties in timestamp keep the source's row
    order (a stable sort), so the result is deterministic. Counts follow the module docstring's rule.
    """

    def __init__(self, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> None:
        self.ratios = check_ratios(ratios)

    def assign(self, frame: pl.DataFrame) -> pl.Series:
        _require_columns(frame, ["u", "i", "timestamp"], type(self).__name__)
        _check_timestamps(frame, type(self).__name__)
        n_valid, n_test = _ratio_counts(self.ratios)
        return _assign_by_position(frame, ["timestamp"], n_valid, n_test)

    def __repr__(self) -> str:
        return f"TemporalRatioSplit(ratios={list(self.ratios)})"


class GlobalTemporalSplit:
    """One clock for everyone: the oldest ``r_train`` share of *all* interactions → train, the next → valid, the
    newest → test (``n_valid = floor(n·r_valid)``, ``n_test = floor(n·r_test)`` over the whole table).

    Unlike the per-user strategies, validation and test are real time windows: what happens in them (new items,
    trends) is unknown at training time, which is the setting of production evaluation and of LIS's "leaked future"
    preference data. Users who only appear late have no training history. Ties in timestamp keep the row order.
    """

    def __init__(self, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> None:
        self.ratios = check_ratios(ratios)

    def assign(self, frame: pl.DataFrame) -> pl.Series:
        _require_columns(frame, ["u", "i", "timestamp"], type(self).__name__)
        _check_timestamps(frame, type(self).__name__)
        n = frame.height
        if n == 0:
            return pl.Series("split", [], dtype=pl.Int8)
        n_test = int(math.floor(n * self.ratios[2] + _EPS))
        n_valid = int(math.floor(n * self.ratios[1] + _EPS))
        ranked = (
            frame.select("timestamp").with_row_index(_ROW)
            .sort(["timestamp", _ROW])
            .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("pos"))
            .with_columns(
                pl.when(pl.col("pos") >= n - n_test).then(pl.lit(TEST, pl.Int8))
                .when(pl.col("pos") >= n - n_test - n_valid).then(pl.lit(VALID, pl.Int8))
                .otherwise(pl.lit(TRAIN, pl.Int8))
                .alias("split")
            )
            .sort(_ROW)
        )
        return ranked["split"]

    def __repr__(self) -> str:
        return f"GlobalTemporalSplit(ratios={list(self.ratios)})"


class LeaveLastOutSplit:
    """Per user, by time: the last ``n_test`` interactions → test, the ``n_valid`` before them → valid.

    The leave-one-out protocol of NCF/SASRec-style evaluation (``n_valid = n_test = 1``). Users with fewer than
    ``min_train + n_valid + n_test`` interactions stay entirely in train, so every evaluated user has at least
    ``min_train`` training interactions. Ties in timestamp keep the source's row order.
    """

    def __init__(self, n_valid: int = 1, n_test: int = 1, min_train: int = 1) -> None:
        self.n_valid = _check_count(n_valid, "n_valid", 0)
        self.n_test = _check_count(n_test, "n_test", 0)
        self.min_train = _check_count(min_train, "min_train", 1)

    def assign(self, frame: pl.DataFrame) -> pl.Series:
        _require_columns(frame, ["u", "i", "timestamp"], type(self).__name__)
        _check_timestamps(frame, type(self).__name__)
        enough = pl.col("n") >= self.min_train + self.n_valid + self.n_test
        n_test = pl.when(enough).then(pl.lit(self.n_test, pl.Int64)).otherwise(pl.lit(0, pl.Int64))
        n_valid = pl.when(enough).then(pl.lit(self.n_valid, pl.Int64)).otherwise(pl.lit(0, pl.Int64))
        return _assign_by_position(frame, ["timestamp"], n_valid, n_test)

    def __repr__(self) -> str:
        return f"LeaveLastOutSplit(n_valid={self.n_valid}, n_test={self.n_test}, min_train={self.min_train})"


class RandomRatioSplit:
    """Per user, in a seeded random order: the first ``r_train`` share → train, then valid, then test (MMRec-like).

    MMRec's own split shuffles each user's interactions (unseeded) and cuts them; this one does the same with a
    reproducible order: every (user, item) pair gets a key ``splitmix64(seed, u, i)`` and each user's interactions
    are sorted by it. The assignment of a user therefore depends only on that user's pairs and the seed, not on row
    order or on the other users (adding a user does not reshuffle the rest), and it is the same on every platform
    and numpy/polars version. Counts follow the module docstring's rule.
    """

    def __init__(self, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> None:
        self.ratios = check_ratios(ratios)
        self.seed = _check_count(seed, "seed", 0)

    def assign(self, frame: pl.DataFrame) -> pl.Series:
        _require_columns(frame, ["u", "i"], type(self).__name__)
        keyed = frame.select("u", "i").with_columns(
            pl.Series("key", pair_hash(frame["u"].to_numpy(), frame["i"].to_numpy(), self.seed))
        )
        n_valid, n_test = _ratio_counts(self.ratios)
        return _assign_by_position(keyed, ["key"], n_valid, n_test)

    def __repr__(self) -> str:
        return f"RandomRatioSplit(ratios={list(self.ratios)}, seed={self.seed})"


class PresetSplit:
    """The source's own split (MMRec's ``x_label``, LATTICE's three files), kept as is so results compare with the
    numbers published on it."""

    def assign(self, frame: pl.DataFrame) -> pl.Series:
        if "split" not in frame.columns:
            raise DataError(
                "PresetSplit uses the split shipped with the data, but this source has none", field="split",
                fix="choose a split strategy in the dataset config, e.g. recx.data.splits.TemporalRatioSplit "
                    "(with timestamps) or recx.data.splits.RandomRatioSplit",
            )
        split = frame["split"]
        bad = split.is_null() | ~split.is_in([TRAIN, VALID, TEST]).fill_null(False)
        if bad.any():
            raise DataError(f"{int(bad.sum())} row(s) have a split code outside 0/1/2, e.g. {split.filter(bad)[0]}",
                            field="split", fix="split codes are 0 (train), 1 (valid), 2 (test)")
        return split.cast(pl.Int8).alias("split")

    def __repr__(self) -> str:
        return "PresetSplit()"


# ------------------------------------------------------------------------------------------------- hashing
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014), elementwise on uint64 (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def pair_hash(users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """A seeded pseudo-random uint64 key per (user, item) pair, independent of row order."""
    with np.errstate(over="ignore"):
        s = _splitmix64(np.asarray([seed], dtype=np.uint64))[0]
        u = _splitmix64(np.asarray(users).astype(np.uint64) ^ s)
        return _splitmix64(u ^ np.asarray(items).astype(np.uint64))
