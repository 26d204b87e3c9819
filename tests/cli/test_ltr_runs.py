"""LTR runs through the real configs: train/eval parity, click models, pairing errors, the ml100k window view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recx import cli
from recx.errors import ConfigError
from recx.run import evaluate, train
from tests.cli.test_runs import eval_cfg
from tests.conftest import needs_mirror

SMALL_LTR = ["dataset=synthetic_ltr", "dataset.source.n_queries=60", "dataset.source.docs_per_query=[10,20]",
             "dataset.source.n_features=12", "dataset.source.n_relevant_features=4", "metric=ltr"]


def test_listnet_trains_and_eval_reproduces_its_test_metrics(compose_train, tmp_path):
    cfg = compose_train("model=listnet", *SMALL_LTR, "trainer.max_epochs=4", tiny=False)
    results = train(cfg)
    assert results["test"]["ndcg@10"] > 0.5
    run_dir = Path(cfg.paths.run_dir)
    conventions = json.loads((run_dir / "conventions.json").read_text())
    assert "2^r - 1" in conventions["gain"] and conventions["training_signal"] == "relevance labels"
    again = evaluate(eval_cfg(results["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == results["test"]


def test_click_training_records_the_click_setup(compose_train):
    cfg = compose_train("model=dla", *SMALL_LTR, "click_model=ubm", "click_model.eta=2", "trainer.max_epochs=2",
                        tiny=False)
    results = train(cfg)
    clicks = json.loads((Path(cfg.paths.run_dir) / "conventions.json").read_text())["clicks"]
    assert clicks["name"] == "ubm" and clicks["eta"] == 2 and clicks["policy"] == "ridge"
    assert len(clicks["estimated_propensity"]) == 10 and len(results["learned_propensity"]) == 10


def test_click_only_model_without_click_model_is_a_clear_error(compose_train):
    cfg = compose_train("model=inforank", *SMALL_LTR, tiny=False)
    with pytest.raises(ConfigError, match="learns from clicks") as err:
        train(cfg)
    assert err.value.field == "click_model"


def test_wrong_family_pairing_names_the_datasets_that_fit(compose_train):
    cfg = compose_train("model=starank", "dataset=synthetic_mm", tiny=False)
    with pytest.raises(ConfigError, match="cannot train") as err:
        cli.check_compatibility(cfg)
    assert "mslr10k" in err.value.fix and "ml100k" in err.value.fix  # ml100k serves LTR through its window view


def test_family_default_metric_is_chosen_unless_named(compose_train):
    cfg = compose_train("model=starank", "dataset=mslr10k", tiny=False)
    assert cli.family_metric_override(cfg, ["model=starank"]) == ["metric=ltr"]
    assert cli.family_metric_override(cfg, ["model=starank", "metric=topk"]) == []


@needs_mirror("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item")
def test_starank_on_ml100k_timeline_windows(compose_train):
    cfg = compose_train("model=starank", "dataset=ml100k", "metric=ltr", "trainer.max_epochs=1",
                        "trainer.limit_train_batches=3", tiny=False)
    results = train(cfg)
    assert results["test"]["n_queries"] == 943  # one test window per user
    assert results["data"]["features"] == 23 and results["data"]["max_label"] == 1


@needs_mirror("mslr-web10k-sample/msn1.fold1.train.5k.txt", "mslr-web10k-sample/msn1.fold1.test.5k.txt")
def test_inforank_on_the_real_mslr_sample_with_pbm_clicks(compose_train):
    cfg = compose_train("model=inforank", "dataset=mslr10k", "metric=ltr", "click_model=pbm", "trainer.max_epochs=2",
                        tiny=False)
    results = train(cfg)
    assert results["test"]["n_queries"] == 42 and results["data"]["features"] == 136


@needs_mirror("mslr-web10k-sample/msn1.fold1.train.5k.txt", "mslr-web10k-sample/msn1.fold1.test.5k.txt")
def test_starank_on_mslr_windows_logs_position_accuracy_and_the_idcg_policy(compose_train):
    """STARank's own setup (dataset=mslr10k_windows): binary windows of 10 with the previous window as history; the run
    reports pos_acc@k beside NDCG and records idcg_zero (default zero) in conventions.json."""
    cfg = compose_train("model=starank", "dataset=mslr10k_windows", "metric=ltr", "trainer.max_epochs=1", tiny=False)
    results = train(cfg)
    assert results["test"]["n_queries"] == 81  # one test window per sample query with > 40 documents
    assert results["data"]["max_label"] == 1 and results["data"]["features"] == 136
    assert {f"pos_acc@{k}" for k in (1, 3, 5, 10)} <= set(results["test"])
    conventions = json.loads((Path(cfg.paths.run_dir) / "conventions.json").read_text())
    assert conventions["idcg_zero"] == "zero" and "pos_acc@k" in conventions["position_accuracy_ndcg"]
    assert conventions["data"]["setup"].startswith("STARank windows")
