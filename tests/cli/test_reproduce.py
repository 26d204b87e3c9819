"""`recx sweep experiment=reproduce_smoke`: the reproduction machinery end to end on a tiny generated-data suite."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_subprocess import recx


@pytest.mark.slow
def test_smoke_suite_passes_then_a_tightened_range_fails_without_rerunning(tmp_path):
    out = recx("sweep", "experiment=reproduce_smoke", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [folder] = list((tmp_path / "outputs" / "reproduce").iterdir())
    report = json.loads((folder / "report.json").read_text())
    assert report["complete"] and report["passed"] and report["counts"]["pass"] == 3
    bpr = report["papers"][0]
    train, rescore = (c["mean"] for c in bpr["checks"])
    assert rescore == train  # the chained step re-scored the first step's checkpoint: the same number
    assert (folder / "runs" / "bpr" / "train" / "seed1" / "checkpoints" / "best.ckpt").is_file()
    md = (folder / "report.md").read_text()
    assert "suite `smoke`: PASSED" in md and "| pass |" in md

    # same folder, finished steps reused (no training), a range the number cannot meet: exit 1, the report says why
    out = recx("sweep", "experiment=reproduce_smoke", f"reproduce.resume={folder}", "reproduce.only=[lightgcn]",
               "reproduce.papers.lightgcn.checks.0.high=0.06", "reproduce.papers.lightgcn.checks.0.low=0.05",
               cwd=tmp_path)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    assert report["counts"]["fail"] == 1 and not report["passed"]
    assert report["papers"][0]["steps"][0]["runs"]["1"]["reused"]
    assert "FAILED" in (folder / "report.md").read_text()


def test_a_suite_is_refused_by_train_with_the_fix(tmp_path):
    out = recx("train", "experiment=reproduce_smoke", cwd=tmp_path)
    assert out.returncode == 2
    assert "recx sweep experiment=" in out.stderr + out.stdout
    assert not (tmp_path / "outputs").exists()
