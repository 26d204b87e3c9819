"""`recx train model=magus`: base run + multi-round simulation through the real configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recx import cli
from recx.errors import ConfigError
from recx.run import train


def test_magus_over_bpr_on_synthetic_mm_writes_report_and_plot(compose_train):
    cfg = compose_train("model=magus", "model/base=bpr", "metric=interactive", "trainer.max_epochs=3",
                        "model.fit.beta=[1.0]", "model.fit.alpha=[0.0,0.5]", "model.fit.steps=2")
    results = train(cfg)
    run_dir = Path(cfg.paths.run_dir)
    assert (run_dir / "success_curve.png").stat().st_size > 1000
    assert (run_dir / "base" / "checkpoints" / "best.ckpt").is_file()
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["strategies"]) == {"magus", "item_only", "query_only", "random_query", "no_graph"}
    assert len(saved["fit_trials"]) == 2 and saved["weights"]["selected_on"].startswith("validation")
    assert saved["weights"]["method"] == "gradient" and len(saved["fit"]["magus"]["path"]) == 3
    assert saved["weights_no_graph"]["alpha"] == 0 and saved["weights_no_graph"]["alpha_neg"] == 0
    # the default evaluation user is the noisy one, and the run records it
    conventions = json.loads((run_dir / "conventions.json").read_text())
    assert conventions["user_model"] == {"kind": "noisy", "error_rate": 0.1, "unknown_rate": 0.1, "seed": cfg.seed}
    assert "soft" in conventions["answer_evidence"] and saved["user_model"]["kind"] == "noisy"
    curve = [saved["strategies"]["magus"][f"success@{t}"] for t in range(1, 11)]
    assert curve == sorted(curve)  # Success@T never decreases
    assert results["test"]["success@5"] >= results["test"]["item_only/success@5"]
    assert cli.family_metric_override(cfg, ["model=magus"]) == []  # already interactive


def test_magus_reuses_a_trained_base_checkpoint_with_the_exact_user_and_grid(compose_train, tmp_path):
    base = train(compose_train("model=bpr", "trainer.max_epochs=2", run_dir=tmp_path / "bpr"))
    cfg = compose_train("model=magus", "metric=interactive", f"model.base_ckpt={base['best_checkpoint']}",
                        "model.fit.beta=[1.0]", "model.fit.alpha=[0.0]", "model.user.kind=exact",
                        "model.fit.method=grid", run_dir=tmp_path / "magus")
    results = train(cfg)
    assert results["base"]["trained"] is False and results["base"]["model"] == "bpr"
    assert not (tmp_path / "magus" / "base").exists()
    assert results["user_model"]["kind"] == "exact" and results["weights"]["method"] == "grid"
    conventions = json.loads((tmp_path / "magus" / "conventions.json").read_text())
    assert conventions["answer_evidence"].startswith("exact elimination")


def test_magus_on_an_ltr_dataset_is_a_clear_error(compose_train):
    cfg = compose_train("model=magus", "dataset=mslr10k", tiny=False)
    with pytest.raises(ConfigError, match="cannot train") as err:
        cli.check_compatibility(cfg)
    assert "ml100k" in err.value.fix and "synthetic_mm" in err.value.fix
