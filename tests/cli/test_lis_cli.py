"""The LIS callback at the end of `recx train`, and `recx eval lis`: same inputs, same numbers; clear errors."""

from __future__ import annotations

import json

import pytest

from recx import cli
from recx.run import train

TINY = ["dataset.source.n_users=300", "dataset.source.n_items=240", "dataset.source.interactions_per_user=30"]


def test_callback_report_is_in_metrics_json_and_the_standalone_command_reproduces_it(compose_train, tmp_path):
    run_dir = tmp_path / "run"
    results = train(compose_train("model=bpr", "trainer.max_epochs=3", "model.lr=0.01", run_dir=run_dir))
    lis = results["lis"]
    assert set(lis["representations"]) == {"model", "image", "text"}
    assert set(lis["preferences"]) == {"train", "valid", "test"}
    assert 0 < lis["share_of_training_time"] and lis["wall_time_s"] > 0
    # the base row is the recommender itself: its full-ranking test metrics are the run's test metrics
    assert lis["base"]["recall@20"] == pytest.approx(results["test"]["recall@20"], abs=1e-6)
    assert json.loads((run_dir / "metrics.json").read_text())["lis"]["base"] == lis["base"]

    out = tmp_path / "standalone"
    assert cli.main(["eval", "lis", f"ckpt={results['best_checkpoint']}", f"hydra.run.dir={out}"]) == 0
    standalone = json.loads((out / "metrics.json").read_text())["lis"]
    for key in ("base", "representations", "preferences", "ratios", "protocol"):
        assert standalone[key] == lis[key], key


def test_standalone_without_a_checkpoint_ranks_against_popularity(tmp_path, capsys):
    out = tmp_path / "pop"
    assert cli.main(["eval", "lis", *TINY, "representation=[model,feature:latent]", "preference=[test,shuffled:test]",
                     f"hydra.run.dir={out}"]) == 0
    results = json.loads((out / "metrics.json").read_text())
    assert results["recommender"] == "popularity"
    assert set(results["lis"]["representations"]) == {"latent"}  # no trained model: 'model' is dropped
    assert results["lis"]["preferences"]["test"]["lis"] > results["lis"]["preferences"]["shuffled:test"]["lis"]
    assert "AIS / LIS(test)" in capsys.readouterr().out


def test_bad_specs_exit_2_and_name_the_fix(tmp_path, capsys):
    for override, message in (("representation=clip", "unknown representation"),
                              ("preference=tomorrow", "unknown preference"),
                              (f"preference={tmp_path / 'missing.csv'}", "not found")):
        out = tmp_path / override.split("=")[0]
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["eval", "lis", *TINY, override, f"hydra.run.dir={out}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not (out / "metrics.json").exists()


def test_a_model_without_item_vectors_still_gets_its_report(compose_train, tmp_path):
    results = train(compose_train("model=pop", "callbacks.lis.preferences=[test]", run_dir=tmp_path / "pop"))
    lis = results["lis"]
    assert "model" in lis["skipped"] and "item representations" in lis["skipped"]["model"]
    assert set(lis["representations"]) == {"image", "text"} and "test" in lis["preferences"]


def test_lis_can_be_switched_off(compose_train, tmp_path):
    results = train(compose_train("model=bpr", "trainer.max_epochs=1", "callbacks.lis.enabled=false",
                                  run_dir=tmp_path / "off"))
    assert "lis" not in results
