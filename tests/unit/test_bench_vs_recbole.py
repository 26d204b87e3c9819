"""scripts/bench_vs_recbole.py's pure helpers: the RecBole atomic-file export of a recx split and its counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from recx.data.recbole import read_atomic

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vs_recbole", REPO / "scripts" / "bench_vs_recbole.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def splits() -> dict[str, torch.Tensor]:
    return {"train": torch.tensor([[0, 3], [0, 1], [2, 0], [1, 10]]),
            "valid": torch.tensor([[0, 2], [2, 5]]),
            "test": torch.tensor([[1, 4]])}


def test_atomic_split_round_trips_through_recx_reader(bench, tmp_path):
    paths = bench.write_atomic_split(splits(), tmp_path, "toy")
    assert {s: p.name for s, p in paths.items()} == {"train": "toy.train.inter", "valid": "toy.valid.inter",
                                                     "test": "toy.test.inter"}
    assert all(p.parent == tmp_path / "toy" for p in paths.values())
    assert paths["train"].read_text().splitlines()[0] == "user_id:token\titem_id:token"
    for split, pairs in splits().items():
        frame = read_atomic(paths[split])
        assert frame.columns == ["user_id", "item_id"]
        back = [[int(u), int(i)] for u, i in zip(frame["user_id"], frame["item_id"])]
        assert back == pairs.tolist()  # same rows, same order; ids are the recx indices as tokens


def test_atomic_split_refuses_bad_input(bench, tmp_path):
    bad = splits()
    del bad["test"]
    with pytest.raises(ValueError, match="splits"):
        bench.write_atomic_split(bad, tmp_path, "toy")
    with pytest.raises(ValueError, match="integer"):
        bench.write_atomic_split({**splits(), "valid": torch.rand(3, 2)}, tmp_path, "toy")
    with pytest.raises(ValueError, match="negative"):
        bench.write_atomic_split({**splits(), "test": torch.tensor([[-1, 2]])}, tmp_path, "toy")


def test_split_counts_and_same_data_check(bench):
    counts = bench.split_counts(splits())
    assert counts == {"interactions": {"train": 4, "valid": 2, "test": 1}, "eval_users": {"valid": 2, "test": 1}}
    ours = {"data": counts}
    bench.check_same_data(ours, {"data": dict(counts)})
    other = {"data": {**counts, "eval_users": {"valid": 2, "test": 2}}}
    with pytest.raises(SystemExit, match="same split"):
        bench.check_same_data(ours, other)
