"""The package as a user installs it: a wheel that carries recx's configs, installed into a throw-away venv, composes
and trains from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_runs_from_any_folder(tmp_path):
    dist, source = tmp_path / "dist", tmp_path / "source"
    # build from a copy of what a wheel is made of, so setuptools' build/ folder never lands in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "recx", source / "recx", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    [wheel] = list(dist.glob("recx-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    configs = [n for n in names if n.startswith("recx/conf/") and n.endswith(".yaml")]
    assert "recx/conf/train.yaml" in names and "recx/conf/model/lightgcn.yaml" in names
    assert "recx/conf/experiment/reproduce_small.yaml" in names and len(configs) > 100
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Python: <3.14,>=3.11" in metadata and "torch<3,>=2.4" in metadata

    # a fresh venv that sees the already installed dependencies (a .pth line) but not the editable recx
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    [target] = list((venv / "lib").glob("python3.*/site-packages"))
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    python = venv / "bin" / "python"
    work = tmp_path / "somewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RECX_CONFIG_PATH")}
    env["PYTHONNOUSERSITE"] = "1"
    where = subprocess.run([str(python), "-c", "import recx; print(recx.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr  # the wheel, not the checkout
    out = subprocess.run([str(python), "-m", "recx.cli", "--help"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "lightgcn" in out.stdout, out.stderr[-2000:]
    out = subprocess.run([str(python), "-m", "recx.cli", "train", "model=pop", "dataset.source.n_users=200",
                          "dataset.source.n_items=101", "trainer.max_epochs=1", "callbacks.lis.enabled=false"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert list((work / "outputs" / "pop-synthetic_mm").glob("*/metrics.json"))  # ./outputs of the working folder
