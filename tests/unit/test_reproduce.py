"""The reproduction machinery without training anything: a fake runner writes each step's metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recx import reproduce
from recx.errors import ConfigError

SUITE = {
    "suite": "unit",
    "seeds": [1],
    "papers": {
        "alpha": {
            "title": "Alpha",
            "data": "toy",
            "steps": {
                "base": {"command": "train", "overrides": ["model=bpr"]},
                "after": {"command": "eval", "overrides": ["ckpt={step:base}/checkpoints/best.ckpt"]},
            },
            "checks": [
                {"step": "base", "metric": "test.recall@20", "low": 0.4, "high": 0.6, "basis": "3-seed run",
                 "kind": "regression"},
                {"step": "after", "metric": "fractions.0.1.test_auroc", "low": 0.7, "high": 0.9, "basis": "b",
                 "kind": "claim"},
            ],
            "published": {"value": 0.5, "metric": "Recall@20", "dataset": "Baby"},
        },
        "beta": {
            "title": "Beta",
            "steps": {"only": {"overrides": ["model=lightgcn"]}},
            "checks": [{"step": "only", "metric": "test.ndcg@10", "low": 0.1, "high": 0.2, "basis": "published",
                        "kind": "claim"}],
        },
    },
}


class FakeRunner:
    """Writes the metrics the test chooses (per step name and seed) and records every argv it was given."""

    def __init__(self, values: dict[str, dict], fail: set[str] = frozenset()) -> None:
        self.values, self.fail, self.calls = values, set(fail), []

    def __call__(self, argv, *, run_dir: Path, log_path: Path, timeout_s):
        self.calls.append(argv)
        step = run_dir.parent.name
        if step in self.fail:
            return {"status": "failed", "seconds": 0.1, "error": "error: boom", "run_dir": str(run_dir)}
        run_dir.mkdir(parents=True, exist_ok=True)
        seed = int(run_dir.name.removeprefix("seed"))
        value = self.values[step]
        (run_dir / "metrics.json").write_text(json.dumps(value(seed) if callable(value) else value))
        return {"status": "ok", "seconds": 0.1, "error": None, "run_dir": str(run_dir)}


def good_values():
    return {"base": {"test": {"recall@20": 0.5}}, "after": {"fractions": {"0.1": {"test_auroc": 0.8}, "1": {}}},
            "only": {"test": {"ndcg@10": 0.15}}}


def test_all_in_range_passes_and_writes_both_reports(tmp_path):
    runner = FakeRunner(good_values())
    report = reproduce.run_suite(reproduce.load_suite(SUITE), tmp_path, runner=runner, log=lambda s: None)
    assert report["passed"] and report["counts"] == {"pass": 3, "fail": 0, "missing": 0, "unchecked": 0}
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["papers"][0]["checks"][1]["mean"] == pytest.approx(0.8)
    md = (tmp_path / "report.md").read_text()
    assert "PASSED" in md and "| Alpha | toy | test.recall@20 | regression | 0.5000 | [0.4000, 0.6000] | pass | 0.5 Recall@20 on Baby |" in md
    assert "claims: 2 passed; regression checks: 1 passed." in md
    # the chained step got the first step's folder, and every step its seed and own folder
    base_dir = tmp_path / "runs" / "alpha" / "base" / "seed1"
    assert f"ckpt={base_dir}/checkpoints/best.ckpt" in runner.calls[1]
    assert runner.calls[0][-2:] == ["seed=1", f"hydra.run.dir={base_dir}"]


def test_a_number_out_of_range_fails_the_suite(tmp_path):
    values = good_values()
    values["only"] = {"test": {"ndcg@10": 0.25}}
    report = reproduce.run_suite(reproduce.load_suite(SUITE), tmp_path, runner=FakeRunner(values), log=lambda s: None)
    assert not report["passed"]
    beta = report["papers"][1]
    assert beta["status"] == "fail" and beta["checks"][0]["status"] == "fail"
    assert report["papers"][0]["status"] == "pass"
    assert "FAILED" in (tmp_path / "report.md").read_text()


def test_a_failed_step_skips_its_dependants_and_marks_the_numbers_missing(tmp_path):
    runner = FakeRunner(good_values(), fail={"base"})
    report = reproduce.run_suite(reproduce.load_suite(SUITE), tmp_path, runner=runner, log=lambda s: None)
    alpha = report["papers"][0]
    assert [c["status"] for c in alpha["checks"]] == ["missing", "missing"]
    runs = {s["name"]: s["runs"]["1"] for s in alpha["steps"]}
    assert runs["base"]["status"] == "failed" and runs["after"]["status"] == "skipped"
    assert len(runner.calls) == 2  # base (failed) and beta's step; the dependant never ran
    assert not report["passed"] and report["papers"][1]["status"] == "pass"


def test_resume_reuses_finished_steps(tmp_path):
    suite = reproduce.load_suite(SUITE)
    reproduce.run_suite(suite, tmp_path, runner=FakeRunner(good_values()), log=lambda s: None)
    again = FakeRunner(good_values())
    report = reproduce.run_suite(suite, tmp_path, runner=again, resume=True, log=lambda s: None)
    assert again.calls == [] and report["passed"]
    assert report["papers"][0]["steps"][0]["runs"]["1"]["reused"]


def test_several_seeds_give_mean_std_and_proposed_ranges(tmp_path):
    values = good_values()
    values["base"] = lambda seed: {"test": {"recall@20": 0.46 + 0.02 * seed}}  # 0.48, 0.50, 0.52
    suite = reproduce.load_suite(SUITE, seeds=[1, 2, 3])
    report = reproduce.run_suite(suite, tmp_path, runner=FakeRunner(values), log=lambda s: None)
    check = report["papers"][0]["checks"][0]
    assert check["mean"] == pytest.approx(0.5) and check["std"] == pytest.approx(0.02)
    assert check["values"] == {"1": pytest.approx(0.48), "2": pytest.approx(0.5), "3": pytest.approx(0.52)}
    text = (tmp_path / "calibration.yaml").read_text()
    [first] = yaml.safe_load(text)["alpha"]  # the claim check is not re-ranged: listed as a comment
    assert (first["low"], first["high"], first["kind"]) == (pytest.approx(0.44), pytest.approx(0.56), "regression")
    assert "# claim check 'fractions.0.1.test_auroc' keeps its range [0.7000, 0.9000]" in text


def test_calibration_floors_at_a_quarter_of_the_mean_and_comments_out_noisy_checks(tmp_path):
    spec = json.loads(json.dumps(SUITE))
    spec["papers"]["beta"]["checks"][0]["kind"] = "regression"
    spec["papers"]["beta"]["checks"][0].update(low=0.14, high=0.16)
    values = good_values()
    values["base"] = lambda seed: {"test": {"recall@20": 0.02}}  # std 0: floor min(0.01, 25 % of 0.02) = 0.005
    values["only"] = lambda seed: {"test": {"ndcg@10": 0.1 * seed}}  # 0.1, 0.2, 0.3: 3 std = 0.3 > 25 % of 0.2
    report = reproduce.run_suite(reproduce.load_suite(spec, seeds=[1, 2, 3]), tmp_path, runner=FakeRunner(values),
                                 log=lambda s: None)
    text = (tmp_path / "calibration.yaml").read_text()
    proposed = yaml.safe_load(text)
    [first] = proposed["alpha"]
    assert (first["low"], first["high"]) == (pytest.approx(0.015), pytest.approx(0.025))
    assert proposed["beta"] is None and "too noisy for a regression check" in text
    assert report["counts_by_kind"]["regression"]["fail"] == 2  # 0.02 outside [0.4, 0.6]; 0.2 outside [0.14, 0.16]


def test_only_selects_papers(tmp_path):
    runner = FakeRunner(good_values())
    report = reproduce.run_suite(reproduce.load_suite(SUITE, only=["beta"]), tmp_path, runner=runner,
                                 log=lambda s: None)
    assert [p["key"] for p in report["papers"]] == ["beta"] and len(runner.calls) == 1


@pytest.mark.parametrize("path, expected", [
    ("test.recall@20", 0.5), ("fractions.0.1.test_auroc", 0.8), ("test.item_only/success@5", 0.3),
    ("test.missing", None), ("fractions.1", None), ("status", None),
])
def test_metric_paths_allow_dots_inside_keys(path, expected):
    metrics = {"test": {"recall@20": 0.5, "item_only/success@5": 0.3}, "fractions": {"0.1": {"test_auroc": 0.8},
                                                                                      "1": {}}, "status": "completed"}
    assert reproduce.metric_value(metrics, path) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("mutate, field", [
    (lambda s: s["papers"]["alpha"]["checks"][0].update(step="nope"), "reproduce.papers.alpha.checks[0].step"),
    (lambda s: s["papers"]["alpha"]["checks"][0].update(low=0.9), "reproduce.papers.alpha.checks[0]"),
    (lambda s: s["papers"]["alpha"]["checks"][0].update(basis=""), "reproduce.papers.alpha.checks[0].basis"),
    (lambda s: s["papers"]["alpha"]["checks"][0].update(minus={"step": "nope", "metric": "m"}),
     "reproduce.papers.alpha.checks[0].minus"),
    (lambda s: s["papers"]["alpha"]["steps"]["base"].update(command="fit"), "reproduce.papers.alpha.steps.base.command"),
    (lambda s: s["papers"]["alpha"]["steps"]["base"].update(overrides=["x={step:after}"]),
     "reproduce.papers.alpha.steps.base.overrides"),
    (lambda s: s.update(seeds=[]), "reproduce.seeds"),
    (lambda s: s["papers"]["alpha"]["checks"][0].pop("kind"), "reproduce.papers.alpha.checks[0].kind"),
    (lambda s: s["papers"]["alpha"]["checks"][0].update(kind="hope"), "reproduce.papers.alpha.checks[0].kind"),
    # a regression range of ±0.2 around 0.5 (40 %) cannot catch a broken pipeline; one-sided is no range at all
    (lambda s: s["papers"]["alpha"]["checks"][0].update(low=0.3, high=0.7), "reproduce.papers.alpha.checks[0]"),
    (lambda s: s["papers"]["alpha"]["checks"][0].update(high=None), "reproduce.papers.alpha.checks[0]"),
    (lambda s: s["papers"]["alpha"]["checks"][1].update(kind="report"), "reproduce.papers.alpha.checks[1].kind"),
    (lambda s: s.update(only=["gamma"]), "reproduce.only"),
])
def test_bad_suites_name_the_field(mutate, field):
    spec = json.loads(json.dumps(SUITE))
    mutate(spec)
    with pytest.raises(ConfigError) as err:
        reproduce.load_suite(spec)
    assert err.value.field == field


def test_a_suite_folder_with_a_report_is_never_overwritten(tmp_path):
    target = tmp_path / "2026-11-27"
    assert reproduce.suite_folder(target, resume=False) == target
    target.mkdir()
    (target / "report.json").write_text("{}")
    fresh = reproduce.suite_folder(target, resume=False)
    assert fresh != target and fresh.name.startswith("2026-11-27_")
    assert reproduce.suite_folder(target, resume=True) == target


@pytest.mark.parametrize("name", ["reproduce_small", "reproduce_full", "reproduce_smoke"])
def test_every_shipped_suite_loads_and_every_step_composes(name):
    """Each step's overrides must compose against conf/ (typos fail here, not an hour into a suite)."""
    from recx.cli import compose, entry_point

    suite = reproduce.load_suite(compose("train", [f"experiment={name}"]).reproduce)
    for paper in suite.papers:
        for check in paper.checks:
            assert check.basis and check.basis != "TBD", f"{paper.key}: {check.metric} has no recorded basis"
        for step in paper.steps:
            argv = reproduce.step_argv(step, seed=1, run_dir=Path("/tmp/x"), forwarded=[],
                                       step_dirs={s.name: Path("/tmp/prev") for s in paper.steps})
            config_name, _, overrides = entry_point(argv[0], [a for a in argv[1:] if not a.startswith("hydra.")])
            assert compose(config_name, overrides) is not None, (paper.key, step.name)


def test_gap_checks_compare_two_steps_and_accept_one_sided_ranges(tmp_path):
    spec = json.loads(json.dumps(SUITE))
    spec["papers"]["alpha"]["checks"] = [
        # the paper's claim "base beats after's metric": gap >= 0, no upper bound
        {"step": "base", "metric": "test.recall@20", "minus": {"step": "after", "metric": "test.recall@20"},
         "low": 0.0, "basis": "claim", "kind": "claim"},
        {"step": "base", "metric": "test.recall@20", "high": 0.45, "basis": "at most", "kind": "claim"},
    ]
    values = good_values()
    values["after"] = lambda seed: {"test": {"recall@20": 0.35 + 0.05 * seed}}  # gaps 0.1, 0.05, 0.0
    report = reproduce.run_suite(reproduce.load_suite(spec, seeds=[1, 2, 3], only=["alpha"]), tmp_path,
                                 runner=FakeRunner(values), log=lambda s: None)
    gap, at_most = report["papers"][0]["checks"]
    assert gap["values"] == {"1": pytest.approx(0.1), "2": pytest.approx(0.05), "3": pytest.approx(0.0, abs=1e-12)}
    assert gap["mean"] == pytest.approx(0.05) and gap["status"] == "pass"
    assert at_most["status"] == "fail"  # 0.5 > 0.45
    md = (tmp_path / "report.md").read_text()
    assert "| ≥ 0.0000 | pass |" in md and "| ≤ 0.4500 | fail |" in md
    assert "# claim check 'test.recall@20' keeps its range ≥ 0.0000" in (tmp_path / "calibration.yaml").read_text()


def test_a_regression_gap_is_calibrated_with_its_minus(tmp_path):
    spec = json.loads(json.dumps(SUITE))
    spec["papers"]["alpha"]["checks"] = [
        {"step": "base", "metric": "test.recall@20", "minus": {"step": "after", "metric": "test.recall@20"},
         "low": 0.09, "high": 0.11, "basis": "seeds", "kind": "regression"}]
    values = good_values()
    values["after"] = {"test": {"recall@20": 0.4}}
    reproduce.run_suite(reproduce.load_suite(spec, seeds=[1, 2], only=["alpha"]), tmp_path,
                        runner=FakeRunner(values), log=lambda s: None)
    [proposed] = yaml.safe_load((tmp_path / "calibration.yaml").read_text())["alpha"]
    assert proposed["minus"] == {"step": "after", "metric": "test.recall@20"}
    assert (proposed["low"], proposed["high"]) == (pytest.approx(0.09), pytest.approx(0.11))


def test_a_gap_against_a_failed_step_is_missing(tmp_path):
    spec = json.loads(json.dumps(SUITE))
    spec["papers"]["beta"]["steps"]["other"] = {"overrides": ["model=bpr"]}
    spec["papers"]["beta"]["checks"] = [{"step": "only", "metric": "test.ndcg@10", "low": 0.0, "basis": "claim",
                                         "kind": "claim", "minus": {"step": "other", "metric": "test.ndcg@10"}}]
    report = reproduce.run_suite(reproduce.load_suite(spec, only=["beta"]), tmp_path,
                                 runner=FakeRunner(good_values(), fail={"other"}), log=lambda s: None)
    assert report["papers"][0]["checks"][0]["status"] == "missing" and not report["passed"]
