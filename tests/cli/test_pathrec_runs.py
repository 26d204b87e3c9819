"""`recx train model=dkt|src|...`: the learning-path family through the real configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recx import cli
from recx.errors import CheckpointError, ConfigError
from recx.run import train
from tests.conftest import needs_mirror

SMALL = ["dataset=synthetic_kt", "metric=path_reward", "dataset.source.n_students=150"]
SMALL_DKT = ["model.epochs=3", "model.embed=16", "model.hidden=16", "model.mlp=[8]"]


def test_dkt_then_src_on_its_checkpoint(compose_train, tmp_path):
    dkt = train(compose_train("model=dkt", *SMALL, *SMALL_DKT, tiny=False, run_dir=tmp_path / "dkt"))
    assert 0.0 < dkt["test"]["auc"] <= 1.0 and Path(dkt["best_checkpoint"]).is_file()
    cfg = compose_train("model=src", *SMALL, f"simulator.ckpt={dkt['best_checkpoint']}", "model.epochs=1",
                        "model.iterations=3", "model.batch_size=16", "model.path_length=5", "model.eval_batches=2",
                        "model.eval_batch_size=16", tiny=False, run_dir=tmp_path / "src")
    results = train(cfg)
    assert results["simulator"]["checkpoint"] == dkt["best_checkpoint"]
    assert set(results["test"]) >= {"ep", "ep_std", "e_start", "e_end"} and results["test"]["episodes"] == 32
    saved = json.loads((tmp_path / "src" / "metrics.json").read_text())
    assert saved["test"] == results["test"] and (tmp_path / "src" / "checkpoints" / "best.ckpt").is_file()


def test_baselines_share_the_test_episodes_and_auto_simulator_is_cached(compose_train, tmp_path, monkeypatch):
    import recx.pathrec.family as family

    shared = {}
    for model in ("src_random", "src_rule"):
        r = train(compose_train(f"model={model}", *SMALL, "model.path_length=5", "model.eval_batches=2",
                                "model.eval_batch_size=16", tiny=False, run_dir=tmp_path / model))
        shared[model] = r["test"]["e_start"]
        monkeypatch.setattr(family, "DKTModule", lambda *a, **k: pytest.fail("the cached simulator was retrained"))
    assert shared["src_random"] == shared["src_rule"]  # same episodes, same start exam


def test_a_non_dkt_checkpoint_is_refused_as_simulator(compose_train, tmp_path):
    bpr = train(compose_train("model=bpr", "trainer.max_epochs=1", run_dir=tmp_path / "bpr"))
    cfg = compose_train("model=src_random", *SMALL, f"simulator.ckpt={bpr['best_checkpoint']}", tiny=False,
                        run_dir=tmp_path / "src")
    with pytest.raises(CheckpointError, match="not a DKT checkpoint"):
        train(cfg)


def test_pathrec_models_need_a_pathrec_dataset(compose_train):
    cfg = compose_train("model=src", "dataset=ml100k", tiny=False)
    with pytest.raises(ConfigError, match="cannot train") as err:
        cli.check_compatibility(cfg)
    assert "assist2009" in err.value.fix


@needs_mirror("assist2009/assist2009_updated_train.csv", "assist2009/assist2009_updated_test.csv")
def test_dkt_on_real_assist2009(compose_train, tmp_path):
    cfg = compose_train("model=dkt", "dataset=assist2009", "metric=path_reward", "model.epochs=1",
                        "model.embed=32", "model.hidden=32", tiny=False)
    results = train(cfg)
    assert results["data"]["skills"] == 110 and results["test"]["interactions"] > 100_000
    assert results["test"]["auc"] > 0.6
