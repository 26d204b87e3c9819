"""`recx report`: a run folder's curve (chosen epoch marked) and a sweep folder's per-configuration plot, each with
a markdown summary; folders that are neither are refused by name."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from recx.errors import ConfigError
from recx.report import epoch_history, write_report


def make_run(folder, valid_curve, best, test=0.3, overrides=("seed=1",)):
    (folder / "logs").mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "bpr"}, "dataset": {"name": "toy"},
                                                        "metric": {"monitor": "recall@20"}}))
    with open(folder / "logs" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "val/recall@20"])
        for epoch, value in enumerate(valid_curve):  # Lightning writes the groups on separate, sparse rows
            w.writerow([epoch, epoch * 10, "", value])
            w.writerow([epoch, epoch * 10, 1.0 / (epoch + 1), ""])
        w.writerow([len(valid_curve), 99, "", 0.99])  # the best checkpoint re-validated after training
    (folder / "metrics.json").write_text(json.dumps({"best_epoch": best, "valid": {"recall@20": valid_curve[best]},
                                                     "test": {"recall@20": test, "ndcg@20": test / 2}}))


def test_run_report_plots_the_monitor_and_marks_the_chosen_epoch(tmp_path):
    run = tmp_path / "run"
    make_run(run, [0.1, 0.3, 0.25], best=1)
    files = write_report(run)
    assert run / "report_curves.png" in files and (run / "report_curves.png").stat().st_size > 1000
    assert epoch_history(run)["val/recall@20"] == {0: 0.1, 1: 0.3, 2: 0.25, 3: 0.99}
    md = (run / "report.md").read_text()
    assert "chosen epoch: 1" in md and "validation recall@20: 0.3000" in md and "| ndcg@20 | 0.1500 |" in md
    assert "epochs logged: 3" in md  # the post-training re-validation is not an epoch of the curve


def test_sweep_report_ranks_configurations_by_validation(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", [0.1, 0.2], best=1, test=0.5, overrides=["model.lr=0.1"])
    make_run(sweep / "1", [0.1, 0.4], best=1, test=0.1, overrides=["model.lr=0.01"])
    (sweep / "2" / ".hydra").mkdir(parents=True)
    (sweep / "2" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model.lr=1.0"]))
    (sweep / "2" / "error.txt").write_text("error: boom\n")
    write_report(sweep)
    md = (sweep / "report.md").read_text()
    assert (sweep / "report_configs.png").is_file() and (sweep / "0" / "report_curves.png").is_file()
    assert md.index("`model.lr=0.01`") < md.index("`model.lr=0.1`")  # ranked by validation (0.4 > 0.2), not test
    assert "3 jobs, 2 finished" in md and "`model.lr=1.0`: error: boom" in md


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="no such run or sweep folder"):
        write_report(tmp_path / "missing")
