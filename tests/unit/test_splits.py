"""Split strategies: exact hand cases, the counting rule, no temporal leakage, determinism, validation, speed."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recx.data.indexing import index_raw
from recx.data.splits import (GlobalTemporalSplit, LeaveLastOutSplit, PresetSplit, RandomRatioSplit,
                               TemporalRatioSplit)
from recx.errors import ConfigError, DataError

ML100K = Path("/work/shared/data/ml-100k")


def frame_of(users, items=None, timestamps=None) -> pl.DataFrame:
    data = {"u": users, "i": items if items is not None else list(range(len(users)))}
    if timestamps is not None:
        data["timestamp"] = [float(t) for t in timestamps]
    return pl.DataFrame(data, schema_overrides={"u": pl.Int64, "i": pl.Int64})


def expected_counts(n: int, ratios) -> tuple[int, int, int]:
    """The documented rule, written independently as a loop."""
    if n < 3:
        return n, 0, 0
    parts = []
    for r in ratios[1:]:
        parts.append(0 if r == 0 else max(1, math.floor(n * r + 1e-9)))
    n_valid, n_test = parts
    n_test = min(n_test, n - 1)
    n_valid = min(n_valid, n - 1 - n_test)
    return n - n_valid - n_test, n_valid, n_test


def random_frame(n_rows: int, n_users: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "u": rng.integers(0, n_users, n_rows),
        "i": rng.integers(0, 10 * n_users, n_rows),
        "timestamp": rng.integers(0, 50, n_rows).astype(float),  # many ties on purpose
    })


# ------------------------------------------------------------------------------------------------ temporal ratio
def test_temporal_hand_case():
    # user 0: 10 interactions in shuffled time order -> 8 train, 1 valid (t=8), 1 test (t=9)
    times0 = [5, 9, 0, 8, 1, 2, 3, 4, 6, 7]
    # user 1: 3 interactions -> 1/1/1 (at least one each); user 2: 2 interactions -> all train
    frame = frame_of([0] * 10 + [1, 1, 1] + [2, 2], timestamps=times0 + [30, 10, 20] + [1, 0])
    split = TemporalRatioSplit([0.8, 0.1, 0.1]).assign(frame)
    assert split.name == "split" and split.dtype == pl.Int8
    assert split.to_list() == [0, 2, 0, 1, 0, 0, 0, 0, 0, 0] + [2, 0, 1] + [0, 0]


def test_global_temporal_cuts_one_clock_for_everyone():
    # 10 interactions of 3 users; times 0..9 shuffled: the 8 oldest train, t=8 valid, t=9 test, whoever made them
    times = [5, 9, 0, 8, 1, 2, 3, 4, 6, 7]
    frame = frame_of([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], timestamps=times)
    split = GlobalTemporalSplit([0.8, 0.1, 0.1]).assign(frame).to_list()
    assert split == [0, 2, 0, 1, 0, 0, 0, 0, 0, 0]
    ts = np.array(times)
    assert ts[np.array(split) == 0].max() < ts[np.array(split) == 1].min() <= ts[np.array(split) == 2].min()
    ties = frame_of([0, 1, 2, 3, 4], timestamps=[1, 1, 1, 1, 1])
    assert GlobalTemporalSplit([0.6, 0.2, 0.2]).assign(ties).to_list() == [0, 0, 0, 1, 2]
    assert GlobalTemporalSplit().assign(frame_of([], timestamps=[])).to_list() == []
    with pytest.raises(DataError, match="timestamp"):
        GlobalTemporalSplit().assign(frame_of([0, 1], timestamps=[1.0, float("nan")]))


def test_temporal_ties_keep_row_order():
    frame = frame_of([0] * 5, timestamps=[1, 1, 1, 1, 1])
    assert TemporalRatioSplit([0.6, 0.2, 0.2]).assign(frame).to_list() == [0, 0, 0, 1, 2]


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (0.6, 0.4, 0.0), (0.5, 0.25, 0.25),
                                    (0.01, 0.98, 0.01), (0.71, 0.0, 0.29)])
def test_ratio_counting_rule(ratios):
    sizes = list(range(1, 41)) + [100, 101]
    users = np.repeat(np.arange(len(sizes)), sizes)
    frame = frame_of(users.tolist(), timestamps=np.arange(len(users)).tolist())
    for split in (TemporalRatioSplit(ratios).assign(frame), RandomRatioSplit(ratios, seed=3).assign(frame)):
        counts = (frame.with_columns(split).group_by("u", "split").len()
                  .pivot(on="split", index="u", values="len").fill_null(0).sort("u"))
        for u, n in enumerate(sizes):
            row = counts.row(u, named=True)
            got = (row.get("0", 0), row.get("1", 0), row.get("2", 0))
            assert got == expected_counts(n, ratios), (n, ratios)


def test_temporal_no_leakage():
    frame = random_frame(20_000, 800)
    split = TemporalRatioSplit().assign(frame)
    per_user = frame.with_columns(split).group_by("u").agg(
        pl.col("timestamp").filter(pl.col("split") == 0).max().alias("train_max"),
        pl.col("timestamp").filter(pl.col("split") == 1).min().alias("valid_min"),
        pl.col("timestamp").filter(pl.col("split") == 1).max().alias("valid_max"),
        pl.col("timestamp").filter(pl.col("split") == 2).min().alias("test_min"),
    )
    assert (per_user.filter(pl.col("valid_min") < pl.col("train_max")).height) == 0
    assert (per_user.filter(pl.col("test_min") < pl.col("train_max")).height) == 0
    assert (per_user.filter(pl.col("test_min") < pl.col("valid_max")).height) == 0


def test_temporal_needs_timestamps():
    with pytest.raises(DataError, match="no timestamps") as info:
        TemporalRatioSplit().assign(frame_of([0, 0, 0]))
    assert "RandomRatioSplit" in info.value.fix and info.value.field == "timestamp"
    with pytest.raises(DataError, match="1 interaction"):
        TemporalRatioSplit().assign(frame_of([0, 0, 0], timestamps=[1, float("nan"), 2]))
    with pytest.raises(DataError, match="needs column"):
        TemporalRatioSplit().assign(pl.DataFrame({"user": [0], "timestamp": [1.0]}))


# ------------------------------------------------------------------------------------------------ leave last out
def test_leave_last_out_hand_case():
    frame = frame_of([0] * 5 + [1, 1] + [2] * 3, timestamps=[4, 0, 3, 1, 2] + [0, 1] + [2, 1, 0])
    assert LeaveLastOutSplit().assign(frame).to_list() == [2, 0, 1, 0, 0] + [0, 0] + [2, 1, 0]
    two = LeaveLastOutSplit(n_valid=1, n_test=2, min_train=2).assign(frame)
    assert two.to_list() == [2, 0, 2, 0, 1] + [0, 0] + [0, 0, 0]  # user 2 has 3 < 2+1+2 interactions
    no_valid = LeaveLastOutSplit(n_valid=0, n_test=1).assign(frame)
    assert no_valid.to_list() == [2, 0, 0, 0, 0] + [0, 2] + [2, 0, 0]


def test_leave_last_out_validation():
    with pytest.raises(ConfigError, match="n_test") as info:
        LeaveLastOutSplit(n_test=-1)
    assert info.value.field == "split.n_test"
    with pytest.raises(ConfigError, match="min_train"):
        LeaveLastOutSplit(min_train=0)
    with pytest.raises(ConfigError):
        LeaveLastOutSplit(n_valid=1.5)
    with pytest.raises(DataError, match="RandomRatioSplit"):
        LeaveLastOutSplit().assign(frame_of([0, 0, 0]))


# ------------------------------------------------------------------------------------------------ random ratio
def test_random_split_is_deterministic_and_seeded():
    frame = random_frame(20_000, 500).drop("timestamp")
    a = RandomRatioSplit(seed=7).assign(frame)
    b = RandomRatioSplit(seed=7).assign(frame)
    c = RandomRatioSplit(seed=8).assign(frame)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.value_counts().sort("split")["count"].to_list() == c.value_counts().sort("split")["count"].to_list()


def test_random_split_ignores_row_order_and_other_users():
    frame = random_frame(5_000, 100).drop("timestamp").unique(["u", "i"], maintain_order=True)
    split = RandomRatioSplit(seed=1)
    base = frame.with_columns(split.assign(frame))
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=0)
    again = shuffled.with_columns(split.assign(shuffled))
    assert base.sort("u", "i").equals(again.sort("u", "i"))
    fewer = frame.filter(pl.col("u") < 50)
    sub = fewer.with_columns(split.assign(fewer))
    assert sub.sort("u", "i").equals(base.filter(pl.col("u") < 50).sort("u", "i"))


def test_random_split_varies_within_user():
    frame = frame_of([0] * 100, timestamps=range(100))
    split = RandomRatioSplit(seed=0).assign(frame).to_numpy()
    held_out = np.flatnonzero(split > 0)
    assert len(held_out) == 20 and held_out.max() - held_out.min() > 20  # not just the last rows


# ------------------------------------------------------------------------------------------------ preset + config
def test_preset_split():
    frame = frame_of([0, 0, 1]).with_columns(pl.Series("split", [0, 2, 1]))
    out = PresetSplit().assign(frame)
    assert out.to_list() == [0, 2, 1] and out.dtype == pl.Int8 and out.name == "split"
    with pytest.raises(DataError, match="has none") as info:
        PresetSplit().assign(frame_of([0]))
    assert "TemporalRatioSplit" in info.value.fix
    with pytest.raises(DataError, match="outside 0/1/2"):
        PresetSplit().assign(frame.with_columns(pl.Series("split", [0, 5, 1])))


@pytest.mark.parametrize("ratios", [(0.8, 0.2), (0.8, 0.1, 0.2), (1.1, -0.05, -0.05), (0.0, 0.5, 0.5),
                                    ("a", 0.5, 0.5), (True, 0.0, 0.0), 0.8, (0.8, float("nan"), 0.1)])
def test_bad_ratios(ratios):
    for cls in (TemporalRatioSplit, RandomRatioSplit):
        with pytest.raises(ConfigError) as info:
            cls(ratios=ratios)
        assert info.value.field == "split.ratios" and info.value.fix


def test_ratios_accept_lists_and_ints():
    assert TemporalRatioSplit([1, 0, 0]).ratios == (1.0, 0.0, 0.0)
    assert RandomRatioSplit(ratios=[0.8, 0.1, 0.1], seed=3).seed == 3


def test_empty_frame():
    empty = frame_of([], timestamps=[])
    assert TemporalRatioSplit().assign(empty).len() == 0
    assert RandomRatioSplit().assign(empty).dtype == pl.Int8


# ------------------------------------------------------------------------------------------------ scale + real data
def test_million_rows_fast():
    frame = random_frame(1_000_000, 50_000, seed=1)
    for strategy in (TemporalRatioSplit(), RandomRatioSplit(), LeaveLastOutSplit()):
        start = time.perf_counter()
        split = strategy.assign(frame)
        elapsed = time.perf_counter() - start
        assert split.len() == frame.height
        assert elapsed < 3.0, f"{strategy} took {elapsed:.2f}s on 1M rows"


@pytest.mark.skipif(not (ML100K / "ml-100k.inter").is_file(), reason="shared ml-100k data absent")
def test_ml100k_counts():
    from recx.data.recbole import read_recbole_interactions

    frame, users, _ = index_raw(read_recbole_interactions(ML100K / "ml-100k.inter"))
    sizes = frame.group_by("u").len()["len"].to_list()
    expected = np.array([expected_counts(n, (0.8, 0.1, 0.1)) for n in sizes]).sum(0).tolist()
    counts = TemporalRatioSplit().assign(frame).value_counts().sort("split")["count"].to_list()
    assert counts == expected == [80_808, 9_596, 9_596]
    loo = LeaveLastOutSplit().assign(frame).value_counts().sort("split")["count"].to_list()
    assert loo == [100_000 - 2 * 943, 943, 943]  # every ML-100K user has >= 20 ratings
    rnd = RandomRatioSplit(seed=0).assign(frame).value_counts().sort("split")["count"].to_list()
    assert rnd == counts
