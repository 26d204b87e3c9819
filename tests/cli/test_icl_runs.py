"""`recx eval model=icl ...`: in-context accuracy with and without FEEDER, through the real configs (tiny LM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recx import cli
from recx.errors import ConfigError
from recx.run import train
from tests.conftest import needs_mirror

pytest.importorskip("transformers", reason="the llm extra is not installed")
RT = "rotten-tomatoes/rotten_tomatoes_corpus_full.csv.bz2"
SMALL = ["model=icl", "lm=tiny", "dataset=rt_polarity", "metric=icl_accuracy", "model.pool_size=16",
         "model.test_size=10", "model.encoder=tfidf", "model.shots=2"]


@needs_mirror(RT)
def test_feeder_pool_run_reports_size_calls_and_reuses_its_judgements(compose_train, tmp_path):
    first = train(compose_train(*SMALL, "model.pool=feeder", tiny=False, run_dir=tmp_path / "a"))
    assert 0 <= first["test"]["accuracy"] <= 1 and 1 <= first["feeder"]["size"] <= 16
    assert first["feeder"]["lm_judgements"] > 0 and Path(first["feeder"]["cache"]).is_file()
    again = train(compose_train(*SMALL, "model.pool=feeder", tiny=False, run_dir=tmp_path / "b"))
    assert again["feeder"]["lm_judgements"] == 0 and again["feeder"]["size"] == first["feeder"]["size"]
    full = train(compose_train(*SMALL, "model.selector=diversity", tiny=False, run_dir=tmp_path / "c"))
    assert "feeder" not in full and full["pool_size"] == 16
    assert "split" in json.loads((tmp_path / "c" / "conventions.json").read_text())
    assert first["feeder"]["sufficiency"] == "def1"
    assert "Def. 1" in json.loads((tmp_path / "a" / "conventions.json").read_text())["feeder_sufficiency"]
    old = train(compose_train(*SMALL, "model.pool=feeder", "model.feeder.sufficiency=any", tiny=False,
                              run_dir=tmp_path / "d"))
    assert old["feeder"]["sufficiency"] == "any" and "no zero-shot" in json.loads(
        (tmp_path / "d" / "conventions.json").read_text())["feeder_sufficiency"]


@needs_mirror(RT)
def test_bad_pool_and_selector_are_clear_errors(compose_train, tmp_path):
    with pytest.raises(ConfigError, match="unknown pool"):
        train(compose_train(*SMALL, "model.pool=half", tiny=False, run_dir=tmp_path / "a"))
    with pytest.raises(ConfigError, match="unknown selector"):
        train(compose_train(*SMALL, "model.selector=psychic", tiny=False, run_dir=tmp_path / "b"))
    with pytest.raises(ConfigError, match="model.feeder.sufficiency"):
        train(compose_train(*SMALL, "model.pool=feeder", "model.feeder.sufficiency=maybe", tiny=False,
                            run_dir=tmp_path / "c"))


def test_short_keys_of_the_eval_command_are_rewritten(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(cli, "_hydra_app", lambda name: (lambda: None))
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(tmp_path))
    cli.run_hydra("eval", ["model=icl", "lm=tiny", "dataset=rt_polarity", "selector=similarity", "shots=5",
                           "pool=feeder"])
    assert {"model.selector=similarity", "model.shots=5", "model.pool=feeder", "metric=icl_accuracy"} <= set(sys.argv)


@needs_mirror(RT)
def test_bilevel_fine_tuning_rounds_on_feeder_and_full_pools(compose_train, tmp_path):
    base = ["model=feeder_ft", "lm=tiny", "dataset=rt_polarity", "metric=icl_accuracy", "model.pool_size=12",
            "model.test_size=6", "model.encoder=tfidf", "model.shots=2", "model.rounds=2", "model.batch_size=4"]
    feeder = train(compose_train(*base, tiny=False, run_dir=tmp_path / "feeder"))
    full = train(compose_train(*base, "model.pool=full", tiny=False, run_dir=tmp_path / "full"))
    assert [r["round"] for r in feeder["rounds"]] == [0, 1, 2]
    assert all(1 <= r["train_size"] <= 12 and r["feeder"]["lm_judgements"] > 0 for r in feeder["rounds"][1:])
    assert all(r["train_size"] == 12 and r["feeder"] is None for r in full["rounds"][1:])
    assert feeder["rounds"][0] == full["rounds"][0]  # the same LM before any fine-tuning
