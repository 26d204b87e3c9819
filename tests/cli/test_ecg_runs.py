"""The HeartLang pipeline through the real configs: quantizer → pretraining → probe, and its errors."""

from __future__ import annotations

import json

import pytest

from recx import cli
from recx.errors import CheckpointError, ConfigError
from recx.run import train

SMALL = ["dataset=synthetic_ecg", "metric=ecg", "dataset.source.n_records=60"]


def test_quantizer_pretraining_and_probe_chain(compose_train, tmp_path):
    vq = train(compose_train("model=vqhbr", *SMALL, "model.epochs=2", tiny=False, run_dir=tmp_path / "vq"))
    assert vq["valid"]["codes_used"] > 1 and 0 < vq["valid"]["codebook_usage"] <= 1
    hl = train(compose_train("model=heartlang", *SMALL, "model.epochs=2", f"tokenizer.ckpt={vq['best_checkpoint']}",
                             tiny=False, run_dir=tmp_path / "hl"))
    assert hl["tokenizer"] == vq["best_checkpoint"] and hl["valid"]["masked_loss"] > 0
    probe = train(compose_train("model=heartlang_probe", *SMALL, "model.epochs=3", "model.label_fraction=[0.5,1.0]",
                                f"backbone.ckpt={hl['best_checkpoint']}", tiny=False, run_dir=tmp_path / "probe"))
    assert set(probe["test"]) == {"auroc@0.5", "auroc@1"}
    saved = json.loads((tmp_path / "probe" / "conventions.json").read_text())
    assert "padding" in saved and "validation" in saved["selection"]


def test_pretraining_without_a_quantizer_and_with_a_wrong_checkpoint(compose_train, tmp_path):
    with pytest.raises(ConfigError, match="heartbeat quantizer") as err:
        train(compose_train("model=heartlang", *SMALL, tiny=False, run_dir=tmp_path / "a"))
    assert err.value.field == "tokenizer.ckpt"
    dkt = train(compose_train("model=dkt", "dataset=synthetic_kt", "metric=path_reward", "model.epochs=1",
                              "dataset.source.n_students=60", tiny=False, run_dir=tmp_path / "dkt"))
    with pytest.raises(CheckpointError, match="not a vqhbr checkpoint"):
        train(compose_train("model=heartlang", *SMALL, f"tokenizer.ckpt={dkt['best_checkpoint']}", tiny=False,
                            run_dir=tmp_path / "b"))


def test_probe_label_fraction_argument_is_rewritten_for_hydra(monkeypatch, tmp_path):
    seen = {}

    def fake_app(name):
        seen["config"] = name
        return lambda: None

    monkeypatch.setattr(cli, "_hydra_app", fake_app)
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(tmp_path))
    cli.run_hydra("eval", ["model=heartlang_probe", "dataset=synthetic_ecg", "label_fraction=0.01,0.1,1.0"])
    import sys

    assert seen["config"] == "train" and "model.label_fraction=[0.01,0.1,1.0]" in sys.argv


def test_ecg_models_need_an_ecg_dataset(compose_train):
    cfg = compose_train("model=vqhbr", "dataset=ml100k", tiny=False)
    with pytest.raises(ConfigError, match="cannot train") as err:
        cli.check_compatibility(cfg)
    assert "ptbxl" in err.value.fix  # the datasets that fit are listed
