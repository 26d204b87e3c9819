"""`hardware=ddp` on CPU (two gloo processes): the DDP run's metrics equal a single process re-scoring its checkpoint.

Lightning's default DistributedSampler pads the last share by repeating samples; with an odd number of users (or
query batches) that would count one twice. The evaluation loaders use an unpadded sampler instead (recx.training), and
the LTR module gathers its per-process sums; these tests fail without either.
"""

from __future__ import annotations

import json

import pytest

from tests.cli.test_subprocess import recx

DDP_CPU = ["hardware=ddp", "hardware.accelerator=cpu", "hardware.devices=2", "hardware.num_threads=1"]


def ddp_then_one_process(tmp_path, args: list[str]) -> tuple[dict, dict]:
    """Train ``args`` with two gloo processes, then re-score its best checkpoint in one: (DDP metrics, one-process
    test metrics)."""
    run = tmp_path / "ddp"
    out = recx("train", *args, *DDP_CPU, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    ddp = json.loads((run / "metrics.json").read_text())
    assert ddp["processes"] == 2
    out = recx("eval", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return ddp, json.loads((tmp_path / "one" / "metrics.json").read_text())["test"]


@pytest.mark.slow
@pytest.mark.parametrize("model, data", [
    ("bpr", ["dataset=synthetic_mm", "dataset.source.n_users=301", "dataset.source.n_items=200",
             "callbacks.lis.enabled=false"]),
    ("listnet", ["dataset=synthetic_ltr", "dataset.source.n_queries=90", "+dataset.datamodule.eval_batch_size=7"]),
    # 18 test queries fit one batch of 64: it is split so that each process has one (else one would skip and hang)
    ("listnet", ["dataset=synthetic_ltr", "dataset.source.n_queries=90"]),
], ids=["topn-odd-users", "ltr-odd-batches", "ltr-one-batch"])
def test_two_process_ddp_metrics_match_one_process(tmp_path, model, data):
    ddp, single = ddp_then_one_process(tmp_path, [f"model={model}", *data, "trainer.max_epochs=2"])
    exact = {k: v for k, v in ddp["test"].items() if k != "clicks_ubm@10"}  # UBM clicks are Monte Carlo per process
    # float32 scores: batches cut differently under DDP (padding widths) move the 8th digit at most
    assert exact == pytest.approx({k: single[k] for k in exact}, abs=1e-6)
    assert ddp["test"].get("n_users", ddp["test"].get("n_queries")) in (301, 18)  # 18 test queries = 3 batches of <= 7: one process gets two


def test_ddp_is_refused_for_models_that_train_in_one_process(tmp_path):
    out = recx("train", "model=src", "dataset=synthetic_kt", *DDP_CPU, cwd=tmp_path)  # DKT trains under DDP now
    assert out.returncode == 2 and "hardware=ddp" in out.stderr + out.stdout
