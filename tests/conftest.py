"""Shared fixtures: offline, deterministic, small.

* ``RECX_DATA_DIR`` points at a per-session temporary folder, so tests never touch ./data or each other's caches.
* ``RECX_DATA_MIRROR`` defaults to ../shared/data (the read-only copies of real datasets); tests that need a real
  dataset skip with a reason when it is absent.
* ``compose_train(...)`` composes the real conf/ with Hydra's compose API and points the run folder at tmp_path, with
  one torch thread: ``hardware.num_threads=auto`` follows the machine's load, and a thread count that differs between
  two runs changes float sums in the last bits, so tests that compare runs bit for bit (resume, ``recx eval``) would
  depend on what else the CI machine was doing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

os.environ.setdefault("WANDB_MODE", "disabled")
if "RECX_DATA_MIRROR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["RECX_DATA_MIRROR"] = str(SHARED_DATA)

#: a synthetic_mm small enough that a model trains in a couple of seconds, with the planted structure intact
TINY_SYNTHETIC = [
    "dataset.source.n_users=300",
    "dataset.source.n_items=240",
    "dataset.source.interactions_per_user=30",
    "dataset.datamodule.batch_size=512",
]


#: a fixed thread count for runs that are compared bit for bit (see the module docstring)
FIXED_THREADS = "hardware.num_threads=1"


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recx-data")
    os.environ["RECX_DATA_DIR"] = str(path)
    return path


def mirror() -> Path | None:
    value = os.environ.get("RECX_DATA_MIRROR")
    return Path(value) if value and Path(value).is_dir() else None


def needs_mirror(*relative: str):
    """Skip unless every ``relative`` path exists under RECX_DATA_MIRROR."""
    root = mirror()
    ok = root is not None and all((root / r).is_file() for r in relative)
    return pytest.mark.skipif(not ok, reason=f"real data {relative} not under RECX_DATA_MIRROR")


@pytest.fixture
def compose_train(tmp_path):
    """Compose conf/train.yaml with overrides; the run goes to tmp_path/run, no logger, no progress bar."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def _compose(*overrides: str, tiny: bool = True, run_dir: Path | None = None):
        base = [f"paths.run_dir={run_dir or tmp_path / 'run'}", "logger=none", "progress=false", FIXED_THREADS]
        extra = TINY_SYNTHETIC if tiny else []
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "recx" / "conf"), version_base="1.3"):
            return compose("train", overrides=base + extra + list(overrides))

    yield _compose
    GlobalHydra.instance().clear()
