"""The sweep summary: ranking by validation only, failures last, seed aggregation."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from recx.sweep import aggregate_seeds, collect_runs, write_summary


def make_job(folder, overrides, valid=None, test=None, error=None):
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if valid is not None:
        (folder / "metrics.json").write_text(json.dumps({"valid": {"recall@20": valid}, "test": {"recall@20": test},
                                                         "best_epoch": 3}))
    if error:
        (folder / "error.txt").write_text(error)


def test_rows_are_ranked_by_valid_not_test(tmp_path):
    make_job(tmp_path / "0", ["model=bpr", "seed=1"], valid=0.2, test=0.9)
    make_job(tmp_path / "1", ["model=lightgcn", "seed=1"], valid=0.3, test=0.1)
    make_job(tmp_path / "2", ["model=vbpr", "seed=1"], error="ConfigError: boom")
    rows = collect_runs(tmp_path, "recall@20")
    assert [r["params"] for r in rows] == ["model=lightgcn", "model=bpr", "model=vbpr"]
    assert rows[2]["status"] == "failed" and rows[2]["error"] == "ConfigError: boom"
    write_summary(rows, tmp_path / "summary.csv", "recall@20")
    assert (tmp_path / "summary.csv").read_text().splitlines()[1].startswith("1,1,model=lightgcn,ok")


def test_seed_aggregation_mean_and_std(tmp_path):
    for k, (model, seed, v) in enumerate([("bpr", 1, 0.1), ("bpr", 2, 0.3), ("pop", 1, 0.05), ("pop", 2, 0.05)]):
        make_job(tmp_path / str(k), [f"model={model}", f"seed={seed}"], valid=v, test=v)
    groups = aggregate_seeds(collect_runs(tmp_path, "recall@20"), "recall@20")
    assert [g["params"] for g in groups] == ["model=bpr", "model=pop"]
    assert groups[0]["valid/recall@20"] == pytest.approx(0.2)
    assert groups[0]["valid/recall@20:std"] == pytest.approx(0.1414213, rel=1e-5)  # sample std of (0.1, 0.3)
    assert groups[1]["n"] == 2 and groups[1]["test/recall@20:std"] == 0.0


def test_compare_table_puts_the_compared_values_side_by_side(tmp_path):
    from recx.sweep import compare_table

    for k, (bb, rep, seed, v) in enumerate([("bpr", "id", 1, 0.1), ("bpr", "id", 2, 0.3), ("bpr", "motor", 1, 0.4),
                                            ("bpr", "motor", 2, 0.4), ("lightgcn", "motor", 1, 0.5),
                                            ("lightgcn", "motor", 2, 0.7)]):
        make_job(tmp_path / str(k), [f"model/backbone={bb}", f"model.item_representation={rep}", f"seed={seed}"],
                 valid=v, test=v)
    groups = aggregate_seeds(collect_runs(tmp_path, "recall@20"), "recall@20")
    header, rows = compare_table(groups, "model.item_representation", ["recall@20"])
    assert header[:3] == ["setting", "motor: recall@20", "id: recall@20"]
    by_setting = {r[0]: r for r in rows}
    assert by_setting["model/backbone=bpr"][1:3] == ["0.4000 ± 0.0000", "0.2000 ± 0.1414"]
    assert by_setting["model/backbone=lightgcn"][2] == ""  # no ID run for that backbone
