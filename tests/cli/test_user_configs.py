"""User config folders (RECX_CONFIG_PATH / --config-dir): groups merge with recx's, user modules import, the
pre-checks know the user's choices, and a shipped name cannot be shadowed. Uses examples/user_config (the docs'
worked example)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recx import config_paths
from recx.errors import ConfigError
from tests.cli.test_subprocess import recx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user_config"


@pytest.fixture()
def user_path(monkeypatch):
    monkeypatch.setenv(config_paths.CONFIG_PATH_ENV, str(EXAMPLE))
    return EXAMPLE


def test_user_choices_merge_with_recx_groups(user_path):
    assert "my_itemknn" in config_paths.group_choices("model") and "bpr" in config_paths.group_choices("model")
    assert config_paths.config_file("dataset", "my_small_mm") == EXAMPLE / "dataset" / "my_small_mm.yaml"
    from recx.cli import check_choices, compose, datasets_for_family

    check_choices(["model=my_itemknn", "dataset=my_small_mm", "experiment=my_knn_small"])
    assert "my_small_mm" in datasets_for_family("topn")
    cfg = compose("train", ["experiment=my_knn_small"])
    assert cfg.model._target_ == "my_models.ItemKNN" and cfg.dataset.name == "my_small_mm"


def test_a_user_config_cannot_shadow_a_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bpr.yaml").write_text("name: bpr\nfamily: topn\n")
    monkeypatch.setenv(config_paths.CONFIG_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="defined twice"):
        config_paths.group_choices("model")
    with pytest.raises(ConfigError, match="has the name of recx's"):
        config_paths.hydra_searchpath_override()


def test_a_missing_user_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(config_paths.CONFIG_PATH_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError) as err:
        config_paths.user_config_dirs()
    assert err.value.field == "RECX_CONFIG_PATH" and "nope" in err.value.render()


def test_config_dir_flag_is_taken_out_of_the_command_line():
    from recx.cli import split_config_dirs

    assert split_config_dirs(["train", "--config-dir", "a", "model=bpr", "--config-dir=b", "-cd", "c"]) == (
        ["train", "model=bpr"], ["a", "b", "c"])


@pytest.mark.slow
def test_train_a_user_model_on_a_user_dataset_from_any_folder(tmp_path):
    """--config-dir from a folder that is not the repository: the user's module is imported, the run finishes; a
    wrong pairing names the user dataset among the choices; `recx data` takes --config-dir after the name."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = recx("train", "model=my_itemknn", "dataset=my_small_mm", "--config-dir", str(EXAMPLE),
               "trainer.max_epochs=1", "callbacks.lis.enabled=false", cwd=work)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    [run_dir] = list((work / "outputs" / "my_itemknn-my_small_mm").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["recall@20"] > 0.05  # item kNN on planted clusters beats chance (20/201 ≈ 0.1 of items)

    out = recx("train", "model=starank", "dataset=my_small_mm", "--config-dir", str(EXAMPLE), cwd=work)
    assert out.returncode == 2 and "cannot train on dataset 'my_small_mm'" in out.stderr

    env_out = recx("data", "list", "--config-dir", str(EXAMPLE), cwd=work)
    assert env_out.returncode == 0 and "my_small_mm" in env_out.stdout
    out = recx("data", "prepare", "my_small_mm", "--config-dir", str(EXAMPLE), cwd=work)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_an_experiment_from_the_environment_variable(tmp_path):
    env_dir = tmp_path / "configs"
    shutil.copytree(EXAMPLE, env_dir)
    env = {**os.environ, "RECX_CONFIG_PATH": str(env_dir), "RECX_OUTPUT_DIR": str(tmp_path / "outputs")}
    out = subprocess.run([sys.executable, "-m", "recx.cli", "train", "experiment=my_knn_small"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert list((tmp_path / "outputs" / "my_itemknn-my_small_mm").iterdir())
