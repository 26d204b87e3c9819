"""Sweeps through the cluster launchers, run locally: submitit's local executor (what `hydra/launcher=slurm` uses
on a cluster) and Ray in a local cluster. Each runs a 2-job sweep; the summary and the report still collect both."""

from __future__ import annotations

import csv
import importlib.util

import pytest

from tests.cli.test_subprocess import recx

SWEEP = ["sweep", "model=pop", "dataset=synthetic_mm", "dataset.source.n_users=200", "dataset.source.n_items=101",
         "trainer.max_epochs=1", "callbacks.lis.enabled=false", "seed=1,2"]


def _summary_rows(tmp_path):
    [sweep_dir] = [p for p in (tmp_path / "outputs" / "sweeps").glob("*/*") if (p / "summary.csv").is_file()]
    with open(sweep_dir / "summary.csv") as f:
        return sweep_dir, list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="the `slurm` extra (hydra-submitit-launcher) is not installed")
def test_submitit_local_sweep_collects_every_job(tmp_path):
    out = recx(*SWEEP, "hydra/launcher=submitit_local", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep_dir, rows = _summary_rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert (sweep_dir / "report.md").is_file() and (sweep_dir / "report_configs.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
                    reason="the `ray` extra (hydra-ray-launcher) is not installed")
def test_ray_local_sweep_collects_every_job(tmp_path):
    out = recx(*SWEEP, "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
               "+hydra.launcher.ray.init.include_dashboard=false", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    _, rows = _summary_rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_slurm_and_ray_presets_compose():
    """recx's presets carry the keys a cluster user sets: partition, GPUs per job, time limit, parallelism."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    from hydra import compose, initialize_config_dir

    from recx.config_paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        slurm = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                        return_hydra_config=True).hydra.launcher
        ray = compose("train", overrides=["hydra/launcher=ray_cluster"], return_hydra_config=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.partition == "gpu"
    assert (slurm.gpus_per_node, slurm.timeout_min, slurm.array_parallelism) == (1, 240, 16)
    assert ray._target_.endswith("RayLauncher") and ray.ray.remote.num_gpus == 1
