"""The installed console script, end to end, in real subprocesses (each pays Lightning's import: keep them few)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECX = [sys.executable, "-m", "recx.cli"]


def recx(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    # one torch thread unless the caller's environment says otherwise: runs compared bit for bit (train vs eval) must
    # not depend on the load (tests/conftest.py)
    env = {"OMP_NUM_THREADS": "1", **os.environ, "RECX_OUTPUT_DIR": str(cwd / "outputs"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*RECX, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_help_is_fast_and_imports_no_lightning(tmp_path):
    started = time.perf_counter()
    out = recx("--help", cwd=tmp_path)
    elapsed = time.perf_counter() - started
    assert out.returncode == 0 and "lightgcn" in out.stdout
    assert elapsed < 3.0, f"recx --help took {elapsed:.1f}s"  # ~0.1 s measured; generous for loaded CI machines
    probe = subprocess.run([sys.executable, "-c", "import sys, recx.cli; print('lightning' in sys.modules, "
                            "'torch' in sys.modules)"], capture_output=True, text=True)
    assert probe.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_train_then_eval_console_scripts(tmp_path):
    out = recx("train", "experiment=smoke", "model=bpr", "logger=csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [run_dir] = list((tmp_path / "outputs" / "smoke-bpr").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("config.yaml", "conventions.json", "checkpoints/best.ckpt", "logs/metrics.csv"):
        assert (run_dir / name).is_file(), name
    assert "recall@20" in out.stdout  # the metrics table

    out = recx("eval", f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [eval_dir] = list((tmp_path / "outputs" / "eval").iterdir())
    assert json.loads((eval_dir / "metrics.json").read_text())["test"] == metrics["test"]


@pytest.mark.slow
def test_sweep_survives_a_failing_run_and_writes_a_sorted_summary(tmp_path):
    # every value is valid (bad values are refused before the sweep starts: tests/unit/test_validate.py), but a job
    # validating every 3rd epoch of 2 produces no checkpoint: those jobs fail, the others must still run and be ranked
    out = recx("sweep", "experiment=smoke", "model=bpr", "model.embedding_dim=8,32",
               "trainer.check_val_every_n_epoch=1,3", "trainer.max_epochs=2", "logger=none", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    [sweep_dir] = list((tmp_path / "outputs" / "sweeps" / "smoke-bpr").iterdir())
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    scores = [float(r["valid/recall@20"]) for r in rows[:2]]
    assert scores == sorted(scores, reverse=True)
    assert all("check_val_every_n_epoch=3" in r["params"] for r in rows[2:])
    assert "recall@20, sorted by valid" in out.stdout
    assert "Traceback" not in out.stderr + out.stdout


def test_sweep_with_a_bad_value_stops_before_the_first_job(tmp_path):
    out = recx("sweep", "experiment=smoke", "model=bpr", "model.embedding_dim=8,-1,32", cwd=tmp_path)
    assert out.returncode == 2 and "model.embedding_dim=-1 is out of range" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "outputs").exists()
