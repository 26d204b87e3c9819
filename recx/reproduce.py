"""Reproduction suites: one short (or paper-scale) run per paper, each number checked against a recorded range.

A suite is the ``reproduce:`` node of an experiment config (``conf/experiment/reproduce_small.yaml``,
``reproduce_full.yaml``, ``reproduce_smoke.yaml``). ``recx sweep experiment=reproduce_small`` (or ``make reproduce``)
runs, for every paper and seed, its steps in order as separate ``recx train|eval`` processes — a crashed step is
recorded and the suite goes on — then writes ``report.json`` and ``report.md`` into the suite folder. A step may use
an earlier step's run folder (``{step:vqhbr}/checkpoints/best.ckpt``), which is how chained runs (DKT → SRC,
VQ-HBR → HeartLang → probe) pass checkpoints.

Every check names a step, a metric path in that step's ``metrics.json`` (``test.recall@20``), the expected range,
its justification (``basis``) and its ``kind``, which says what a pass proves:

- ``claim``: a paper's claim — a direction ("A beats B": a gap between two steps with ``low: 0``) or a published
  number ± its stated tolerance where the data matches. A claim recx does not reproduce keeps its row without a range
  (reported, never judged) and its basis says why.
- ``regression``: recx's own seeds (mean ± max(3 std, floor) of a recorded 3-seed run); it only catches a broken
  pipeline. Its half-width may be at most ±25 % of its mean (``REGRESSION_MAX_HALF_WIDTH``): a wider range is not a
  check, and the loader refuses it.
- ``report``: a number with nothing to compare it to (no published figure, no calibration yet): reported only. The suite exits 0 when every check passes and 1 when a number leaves its range, a metric is
missing or a step fails, so CI can schedule it. With several seeds the report also proposes ranges
(``calibration.yaml``: mean ± max(3 std, ``tolerance_floor``)), which is how the recorded ranges were made.

Library use: ``load_suite(node)`` + ``run_suite(suite, output_dir)``; no Lightning is imported here.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError

#: a later step's reference to an earlier step's run folder: ``{step:NAME}``
STEP_REFERENCE = re.compile(r"\{step:([A-Za-z0-9_\-]+)\}")
COMMANDS = ("train", "eval")
EXIT_OUT_OF_RANGE = 1
#: what a check tests: a paper's claim, recx's own seeds, or nothing (reported only)
KINDS = ("claim", "regression", "report")
#: a regression range wider than this fraction of its mean (on either side) cannot tell a broken pipeline apart
REGRESSION_MAX_HALF_WIDTH = 0.25


# ------------------------------------------------------------------------------------------------- the suite config
@dataclass(frozen=True)
class Step:
    """One ``recx <command> <overrides>`` process; its run folder is ``<suite>/runs/<paper>/<step>/seed<N>``."""

    name: str
    command: str
    overrides: tuple[str, ...]
    timeout_s: float | None = None


@dataclass(frozen=True)
class Check:
    """``low <= value <= high`` for the mean over seeds of ``value`` = ``metrics(step)[metric]``, or, with ``minus``
    = ``(step, metric)``, the gap between two steps' numbers (a paper's claim "X beats Y" is a range on the gap).
    Either bound may be open (None); ``basis`` says where the range comes from and ``kind`` (one of :data:`KINDS`)
    whether a pass supports a paper's claim or only recx's own past seeds."""

    step: str
    metric: str
    low: float | None
    high: float | None
    basis: str
    label: str = ""
    minus: tuple[str, str] | None = None
    kind: str = "regression"

    @property
    def has_range(self) -> bool:
        return self.low is not None or self.high is not None

    def holds(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    data: str
    steps: tuple[Step, ...]
    checks: tuple[Check, ...]
    published: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    papers: tuple[Paper, ...]
    seeds: tuple[int, ...] = (1,)
    tolerance_floor: float = 0.01


def load_suite(node: DictConfig | dict, *, only: list[str] | None = None, seeds: list[int] | None = None) -> Suite:
    """Validate a ``reproduce:`` node into a :class:`Suite`; every mistake is a ConfigError naming the field."""
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    papers_raw = raw.get("papers") or {}
    if not isinstance(papers_raw, dict) or not papers_raw:
        raise ConfigError("the suite lists no papers", field="reproduce.papers",
                          fix="add papers: {<key>: {steps: ..., checks: ...}} to the experiment file")
    only = list(only if only is not None else raw.get("only") or [])
    unknown = [k for k in only if k not in papers_raw]
    if unknown:
        raise ConfigError(f"unknown paper(s) {unknown} in reproduce.only", field="reproduce.only",
                          fix=f"choose from: {', '.join(papers_raw)}")
    papers = tuple(_paper(key, spec) for key, spec in papers_raw.items() if not only or key in only)
    seeds = list(seeds if seeds is not None else raw.get("seeds", [1]) or [])
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds}", field="reproduce.seeds",
                          fix="e.g. reproduce.seeds=[1,2,3]")
    return Suite(name=str(raw.get("suite", "suite")), papers=papers, seeds=tuple(seeds),
                 tolerance_floor=float(raw.get("tolerance_floor", 0.01)))


def _paper(key: str, spec: dict) -> Paper:
    where = f"reproduce.papers.{key}"
    steps_raw = spec.get("steps") or {}
    if not isinstance(steps_raw, dict) or not steps_raw:
        raise ConfigError(f"paper '{key}' has no steps", field=f"{where}.steps",
                          fix="steps: {<name>: {command: train, overrides: [model=..., dataset=...]}}")
    steps: list[Step] = []
    for name, s in steps_raw.items():
        command = (s or {}).get("command", "train")
        if command not in COMMANDS:
            raise ConfigError(f"unknown command '{command}'", field=f"{where}.steps.{name}.command",
                              fix=f"one of: {', '.join(COMMANDS)}")
        overrides = [str(o) for o in (s.get("overrides") or [])]
        for ref in (r for o in overrides for r in STEP_REFERENCE.findall(o)):
            if ref not in [p.name for p in steps]:
                raise ConfigError(f"step '{name}' refers to {{step:{ref}}}, which is not an earlier step of '{key}'",
                                  field=f"{where}.steps.{name}.overrides", fix="order the steps so it comes first")
        timeout = s.get("timeout_s")
        steps.append(Step(str(name), command, tuple(overrides), float(timeout) if timeout else None))
    checks: list[Check] = []
    for i, c in enumerate(spec.get("checks") or []):
        cw = f"{where}.checks[{i}]"
        if c.get("step") not in steps_raw:
            raise ConfigError(f"check names step '{c.get('step')}'", field=f"{cw}.step",
                              fix=f"one of the paper's steps: {', '.join(steps_raw)}")
        if not c.get("metric"):
            raise ConfigError("check has no metric", field=f"{cw}.metric", fix="e.g. metric: test.recall@20")
        low, high = c.get("low"), c.get("high")
        if low is not None and high is not None and float(low) > float(high):
            raise ConfigError(f"bad range [{low}, {high}]", field=cw, fix="low <= high (or leave one bound null)")
        minus = c.get("minus")
        if minus is not None and (not isinstance(minus, dict) or minus.get("step") not in steps_raw
                                  or not minus.get("metric")):
            raise ConfigError(f"minus must name one of the paper's steps and a metric, got {minus}",
                              field=f"{cw}.minus", fix="minus: {step: <step>, metric: test.ndcg@10}")
        if not str(c.get("basis") or "").strip():
            raise ConfigError("check has no basis (why this range)", field=f"{cw}.basis",
                              fix="e.g. 'mean ± 3 std of seeds 1-3 of this suite' or 'published 0.0992 ± 0.002'")
        kind = _kind(c, cw)
        checks.append(Check(str(c["step"]), str(c["metric"]), None if low is None else float(low),
                            None if high is None else float(high), str(c["basis"]).strip(), str(c.get("label", "")),
                            (str(minus["step"]), str(minus["metric"])) if minus else None, kind))
    if not checks:
        raise ConfigError(f"paper '{key}' checks nothing", field=f"{where}.checks",
                          fix="add at least one check: {step: ..., metric: ..., low: ..., high: ..., basis: ...}")
    return Paper(key=key, title=str(spec.get("title", key)), data=str(spec.get("data", "")), steps=tuple(steps),
                 checks=tuple(checks), published=dict(spec.get("published") or {}), notes=str(spec.get("notes", "")))


def _kind(c: dict, where: str) -> str:
    """A check's kind, and the rules that make each kind mean something: a regression range has both bounds and a
    half-width of at most ±25 % of its mean; a reported-only row has no range."""
    kind = c.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"check kind is {kind!r}", field=f"{where}.kind",
                          fix="kind: claim (a paper's direction or published number), regression (recx's own "
                              "seeds) or report (no range)")
    low, high = c.get("low"), c.get("high")
    if kind == "report" and (low is not None or high is not None):
        raise ConfigError(f"a reported-only check has the range [{low}, {high}]", field=f"{where}.kind",
                          fix="drop low/high, or say which kind of check the range is (claim or regression)")
    if kind == "regression":
        if low is None or high is None:
            raise ConfigError(f"a regression check needs both bounds, got [{low}, {high}]", field=where,
                              fix="low/high = mean ± max(3 std, floor) of the suite's seeds (calibration.yaml)")
        mid, half = (float(high) + float(low)) / 2, (float(high) - float(low)) / 2
        if half > REGRESSION_MAX_HALF_WIDTH * abs(mid) + 1e-9:
            raise ConfigError(f"the regression range [{low}, {high}] is ±{half:.4g} around {mid:.4g}, wider than "
                              f"±{REGRESSION_MAX_HALF_WIDTH:.0%} of its mean: it cannot catch a broken pipeline",
                              field=where, fix="add seeds, make the step larger, or drop the check")
    return str(kind)


# ------------------------------------------------------------------------------------------------------ one step
def step_argv(step: Step, *, seed: int, run_dir: Path, step_dirs: dict[str, Path], forwarded: list[str]) -> list[str]:
    """The ``recx`` arguments of one step: its overrides (earlier steps' folders filled in), the seed, the folder."""
    def fill(text: str) -> str:
        return STEP_REFERENCE.sub(lambda m: str(step_dirs[m.group(1)]), text)

    return [step.command, *(fill(o) for o in step.overrides), f"seed={seed}", *forwarded,
            f"hydra.run.dir={run_dir}"]


def run_step(argv: list[str], *, run_dir: Path, log_path: Path, timeout_s: float | None) -> dict[str, Any]:
    """Run ``python -m recx.cli <argv>``; the step succeeded when it exits 0 and leaves ``metrics.json``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    status, error = "ok", None
    with open(log_path, "w") as log:
        log.write("$ recx " + " ".join(argv) + "\n")
        log.flush()
        try:
            proc = subprocess.run([sys.executable, "-m", "recx.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc, status, error = None, "timeout", f"stopped after {timeout_s:.0f} s (timeout_s)"
    seconds = time.perf_counter() - started
    if status == "ok" and (rc != 0 or not (run_dir / "metrics.json").is_file()):
        status = "failed"
        error = _last_error_line(log_path) or f"exit code {rc}, no metrics.json"
    return {"status": status, "seconds": round(seconds, 1), "error": error, "run_dir": str(run_dir),
            "log": str(log_path)}


def _last_error_line(log_path: Path) -> str | None:
    """The most telling line of a failed step's log: recx's ``error:`` line, else the exception's last line."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for ln in lines:
        if ln.lower().startswith("error"):
            return ln
    return lines[-1] if lines else None


def metric_value(metrics: dict[str, Any], path: str) -> float | None:
    """``test.recall@20`` in a metrics dict; keys may hold dots themselves (``fractions.0.1.test_auroc``)."""
    node: Any = metrics
    rest = path
    while rest:
        if not isinstance(node, dict):
            return None
        match = max((k for k in node if rest == k or rest.startswith(k + ".")), key=len, default=None)
        if match is None:
            return None
        node, rest = node[match], rest[len(match) + 1:]
    try:
        return None if node is None or isinstance(node, (dict, list, bool)) else float(node)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------------ the suite
def run_suite(suite: Suite, output_dir: str | Path, *, forwarded: list[str] | None = None, resume: bool = False,
              log: Callable[[str], None] = print, runner: Callable[..., dict[str, Any]] = run_step) -> dict[str, Any]:
    """Run every paper × seed × step, check the numbers, write ``report.json`` + ``report.md``; return the report.

    With ``resume``, steps whose folder already holds ``metrics.json`` are not rerun (a suite killed half-way goes on
    where it stopped). The report is rewritten after every step, so a crash loses nothing finished.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    forwarded = list(forwarded or [])
    started = time.time()
    results: dict[str, dict[str, dict[int, dict[str, Any]]]] = {p.key: {} for p in suite.papers}
    total = sum(len(p.steps) for p in suite.papers) * len(suite.seeds)
    done = 0
    report: dict[str, Any] = {}
    try:
        for paper in suite.papers:
            for seed in suite.seeds:
                step_dirs: dict[str, Path] = {}
                failed_before: str | None = None
                for step in paper.steps:
                    done += 1
                    run_dir = out / "runs" / paper.key / step.name / f"seed{seed}"
                    step_dirs[step.name] = run_dir
                    argv = step_argv(step, seed=seed, run_dir=run_dir, step_dirs=step_dirs, forwarded=forwarded)
                    prefix = f"[{done}/{total}] {paper.key} / {step.name} (seed {seed})"
                    if failed_before is not None:
                        outcome = {"status": "skipped", "seconds": 0.0, "run_dir": str(run_dir),
                                   "error": f"needs step '{failed_before}', which did not finish"}
                    elif resume and (run_dir / "metrics.json").is_file():
                        outcome = {"status": "ok", "seconds": 0.0, "run_dir": str(run_dir), "reused": True,
                                   "error": None}
                    else:
                        log(f"{prefix} ...")
                        outcome = runner(argv, run_dir=run_dir, log_path=out / "logs" / f"{paper.key}-{step.name}"
                                         f"-seed{seed}.log", timeout_s=step.timeout_s)
                    outcome["argv"] = ["recx", *argv]
                    if outcome["status"] == "ok":
                        outcome["metrics"] = json.loads((run_dir / "metrics.json").read_text())
                    else:
                        failed_before = failed_before or step.name
                    results[paper.key].setdefault(step.name, {})[seed] = outcome
                    log(f"{prefix} {outcome['status']}" + (" (reused)" if outcome.get("reused") else
                                                           f" in {outcome['seconds']:.0f} s")
                        + (f": {outcome['error']}" if outcome.get("error") else ""))
                    report = build_report(suite, results, forwarded=forwarded, started=started, complete=False)
                    write_report(report, out)
    except KeyboardInterrupt:
        report = build_report(suite, results, forwarded=forwarded, started=started, complete=False)
        report["interrupted"] = True
        write_report(report, out)
        raise
    report = build_report(suite, results, forwarded=forwarded, started=started, complete=True)
    write_report(report, out)
    if len(suite.seeds) > 1:
        (out / "calibration.yaml").write_text(calibration_yaml(report, suite.tolerance_floor))
    return report


def summarize_check(check: Check, results: dict[str, dict[int, dict[str, Any]]], seeds: tuple[int, ...]
                    ) -> dict[str, Any]:
    """Values of one check over seeds (``results``: step -> seed -> outcome), their mean/std, and
    pass | fail | missing | unchecked."""
    def number(step: str, metric: str, seed: int) -> float | None:
        outcome = results.get(step, {}).get(seed) or {}
        return metric_value(outcome.get("metrics") or {}, metric) if outcome.get("status") == "ok" else None

    values: dict[int, float | None] = {}
    for seed in seeds:
        value = number(check.step, check.metric, seed)
        if check.minus is not None and value is not None:
            other = number(*check.minus, seed)
            value = None if other is None else value - other
        values[seed] = value
    present = [v for v in values.values() if v is not None]
    entry: dict[str, Any] = {"step": check.step, "metric": check.metric, "label": check.label or check.metric,
                             "minus": {"step": check.minus[0], "metric": check.minus[1]} if check.minus else None,
                             "values": {str(s): v for s, v in values.items()}, "low": check.low, "high": check.high,
                             "basis": check.basis, "kind": check.kind}
    if len(present) < len(seeds):
        entry.update(mean=None, std=None, status="missing")
        return entry
    mean = statistics.fmean(present)
    entry.update(mean=mean, std=statistics.stdev(present) if len(present) > 1 else 0.0)
    entry["status"] = "unchecked" if not check.has_range else "pass" if check.holds(mean) else "fail"
    return entry


def build_report(suite: Suite, results: dict, *, forwarded: list[str], started: float, complete: bool) -> dict:
    papers = []
    for paper in suite.papers:
        steps = []
        for step in paper.steps:
            per_seed = results[paper.key].get(step.name, {})
            steps.append({"name": step.name, "command": step.command,
                          "runs": {str(s): {k: v for k, v in o.items() if k != "metrics"}
                                   for s, o in per_seed.items()}})
        checks = [summarize_check(c, results[paper.key], suite.seeds) for c in paper.checks]
        ran = all(results[paper.key].get(s.name, {}).get(seed) for s in paper.steps for seed in suite.seeds)
        statuses = {c["status"] for c in checks}
        status = ("fail" if statuses & {"fail", "missing"} else "pass") if ran else "not run"
        papers.append({"key": paper.key, "title": paper.title, "data": paper.data, "status": status,
                       "checks": checks, "steps": steps, "published": paper.published, "notes": paper.notes})
    counts = {s: sum(c["status"] == s for p in papers for c in p["checks"])
              for s in ("pass", "fail", "missing", "unchecked")}
    by_kind = {k: {s: sum(c["status"] == s and c["kind"] == k for p in papers for c in p["checks"])
                   for s in ("pass", "fail", "missing", "unchecked")} for k in KINDS}
    return {
        "suite": suite.name,
        "complete": complete,
        "passed": complete and counts["fail"] == 0 and counts["missing"] == 0,
        "counts": counts,
        "counts_by_kind": by_kind,
        "seeds": list(suite.seeds),
        "forwarded_overrides": forwarded,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 1),
        "machine": machine(),
        "papers": papers,
    }


def machine() -> dict[str, Any]:
    """Where the numbers came from: host, CPU count, Python, torch, CUDA device, recx version and commit."""
    from recx import __version__

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "recx": __version__}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # noqa: BLE001 - informative only
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        info["commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


# ---------------------------------------------------------------------------------------------------------- output
def write_report(report: dict[str, Any], out: Path) -> None:
    from recx.data.interactions import atomic_write

    atomic_write(out / "report.json", lambda f: f.write(json.dumps(report, indent=2, default=str).encode()))
    atomic_write(out / "report.md", lambda f: f.write(report_markdown(report).encode()))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _range(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "–"
    if high is None:
        return f"≥ {_fmt(low)}"
    if low is None:
        return f"≤ {_fmt(high)}"
    return f"[{_fmt(low)}, {_fmt(high)}]"


def _value(check: dict[str, Any], multi_seed: bool) -> str:
    """A check's number as the tables show it: the mean, with ± std over several seeds."""
    return _fmt(check["mean"]) + (f" ± {_fmt(check['std'])}" if multi_seed and check["mean"] is not None else "")


def _verdict(report: dict[str, Any]) -> str:
    return ("PASSED" if report["passed"] else "FAILED") if report["complete"] else "INCOMPLETE"


def _published(pub: dict[str, Any]) -> str:
    if not pub:
        return "–"
    value = pub.get("value")
    if value is None:
        note = str(pub.get("note") or "")
        return "none" + (f" ({note})" if note and len(note) < 40 else " (see notes)" if note else "")
    text = f"{value}"
    if pub.get("metric"):
        text += f" {pub['metric']}"
    if pub.get("dataset"):
        text += f" on {pub['dataset']}"
    return text


def _kinds_line(report: dict[str, Any]) -> str:
    """'claims: 5 passed, 1 out of range; regressions: 12 passed; reported: 3' — what the verdict rests on."""
    by_kind = report.get("counts_by_kind") or {}
    names = {"claim": "claims", "regression": "regression checks", "report": "reported only"}
    parts = []
    for kind in KINDS:
        c = by_kind.get(kind) or {}
        total = sum(c.values())
        if not total:
            continue
        if kind == "report":
            parts.append(f"{names[kind]}: {total}")
            continue
        bits = [f"{c.get('pass', 0)} passed"] + [f"{c[s]} {w}" for s, w in (("fail", "out of range"),
                                                  ("missing", "missing"), ("unchecked", "not reproduced (no range)"))
                                                 if c.get(s)]
        parts.append(f"{names[kind]}: {', '.join(bits)}")
    return "; ".join(parts) + "." if parts else ""


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: one table row per check, then what each paper ran and any failures."""
    m = report["machine"]
    status = _verdict(report)
    counts = report["counts"]
    seeds = report["seeds"]
    lines = [
        f"# recx reproduction report — suite `{report['suite']}`: {status}",
        "",
        f"Generated by `recx sweep experiment=reproduce_{report['suite']}` on {report['started']} "
        f"({report['wall_time_s'] / 60:.1f} min); seeds {seeds}; "
        f"{counts['pass']} passed, {counts['fail']} out of range, {counts['missing']} missing, "
        f"{counts['unchecked']} without a range. "
        + _kinds_line(report),
        f"Machine: {m.get('platform')}, {m.get('cpus')} CPUs, torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads), GPU: {m.get('cuda') or 'none'}; recx {m.get('recx')} "
        f"commit {m.get('commit') or 'unknown'}."
        + (f" Overrides for every step: `{' '.join(report['forwarded_overrides'])}`."
           if report["forwarded_overrides"] else ""),
        "",
        "Kinds: **claim** = a paper's direction or published number (a pass supports the paper); **regression** = "
        "recx's own seeds (a pass only says the pipeline is not broken); **report** = reported, never judged.",
        "",
        "| paper | data | metric | kind | recx" + (" (mean ± std)" if len(seeds) > 1 else "") +
        " | expected range | result | published |",
        "|---|---|---|---|---:|---|---|---|",
    ]
    for p in report["papers"]:
        for i, c in enumerate(p["checks"]):
            lines.append(f"| {p['title'] if i == 0 else ''} | {p['data'] if i == 0 else ''} | {c['label']} | "
                         f"{c.get('kind', '')} | {_value(c, len(seeds) > 1)} | {_range(c['low'], c['high'])} | "
                         f"{c['status']} | {_published(p['published']) if i == 0 else ''} |")
    lines += ["", "## Per paper", ""]
    for p in report["papers"]:
        lines.append(f"### {p['title']} — {p['status']}")
        lines.append("")
        for s in p["steps"]:
            for seed, run in s["runs"].items():
                line = f"- `{' '.join(run.get('argv', []))}` — {run['status']}"
                line += " (reused)" if run.get("reused") else f", {run['seconds']:.0f} s"
                if run.get("error"):
                    line += f": {run['error']}"
                lines.append(line)
        for c in p["checks"]:
            lines.append(f"- {c['label']} ({c.get('kind', '')}): range basis — {c['basis']}")
        pub = p["published"]
        if pub:
            detail = pub.get("note") or ""
            source = pub.get("source") or ""
            lines.append(f"- published: {_published(pub)}" + (f"; {detail}" if detail and pub.get('value') is not None
                                                                else "") + (f" (source: {source})" if source else ""))
        if p["notes"]:
            lines.append(f"- note: {p['notes']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def calibration_yaml(report: dict[str, Any], floor: float) -> str:
    """Proposed regression ranges from a multi-seed run, to paste into the suite's checks.

    Half-width = max(3 std, min(floor, 25 % of |mean|)): the floor keeps seeds that happen to agree from giving a
    hair-trigger range, but never widens a range past what a regression check may be. Where 3 std alone exceeds 25 %
    of the mean the seeds are too noisy for a regression check, and the line is proposed commented out with the
    reason. Claim and report checks keep their own ranges: their seed values are listed as comments.
    """
    cap = REGRESSION_MAX_HALF_WIDTH
    lines = [f"# regression ranges proposed by a {len(report['seeds'])}-seed run (seeds {report['seeds']}) of suite "
             f"'{report['suite']}' on {report['started']}: mean ± max(3 std, min({floor}, {cap:.0%} of |mean|))"]
    for p in report["papers"]:
        lines.append(f"{p['key']}:")
        for c in p["checks"]:
            if c["mean"] is None:
                lines.append(f"  # {c['step']} {c['metric']}: missing")
                continue
            seeds = ", ".join(f"{v:.4f}" for v in c["values"].values())
            measured = f"seeds {', '.join(c['values'])} of this suite: {seeds} (mean {c['mean']:.4f}, std {c['std']:.4f})"
            if c.get("kind", "regression") != "regression":
                lines.append(f"  # {c.get('kind')} check {c['label']!r} keeps its range {_range(c['low'], c['high'])}; "
                             f"{measured}")
                continue
            spread = 3 * c["std"]
            allowed = cap * abs(c["mean"])
            half = max(spread, min(floor, allowed))
            rule = "3 std" if half == spread else (
                f"the floor {floor} (3 std = {spread:.4f})" if half == floor
                else f"{cap:.0%} of the mean (3 std = {spread:.4f})")
            minus = (f", minus: {{step: {c['minus']['step']}, metric: {c['minus']['metric']}}}"
                     if c.get("minus") else "")
            entry = (f"- {{step: {c['step']}, metric: {c['metric']}{minus}, kind: regression, "
                     f"low: {c['mean'] - half:.4f}, high: {c['mean'] + half:.4f}, "
                     f"basis: \"{measured}; range = mean ± {rule}\"}}")
            if spread > allowed + 1e-12:
                lines.append(f"  # too noisy for a regression check: 3 std = {spread:.4f} > {cap:.0%} of |mean| = "
                             f"{allowed:.4f}; add seeds, make the step larger, or drop it")
                lines.append("  # " + entry)
            else:
                lines.append("  " + entry)
    return "\n".join(lines) + "\n"


def suite_folder(template: str | Path, *, resume: bool) -> Path:
    """The suite's folder: ``outputs/reproduce/<date>``; a folder that already holds a report is never overwritten
    (a new ``<date>_<time>`` folder is used) unless the run resumes it."""
    path = Path(template)
    if resume or not path.exists() or not any(path.iterdir()):
        return path
    return path.with_name(f"{path.name}_{time.strftime('%H-%M-%S')}")


def print_report(report: dict[str, Any]) -> None:
    """The report's table on the terminal (rich), failures in red; the report's own text is printed verbatim."""
    from rich.markup import escape
    from rich.table import Table

    from recx.console import console

    multi = len(report["seeds"]) > 1
    table = Table(title=f"reproduction suite {escape(str(report['suite']))}: {_verdict(report).lower()}",
                  title_justify="left", caption=escape(_kinds_line(report)))
    for col in ("paper", "metric", "kind", "recx", "expected", "result", "published"):
        table.add_column(col, overflow="fold", justify="right" if col == "recx" else "left")
    colour = {"pass": "green", "fail": "red", "missing": "red", "unchecked": "yellow"}
    for p in report["papers"]:
        for i, c in enumerate(p["checks"]):
            table.add_row(escape(p["key"]) if i == 0 else "", escape(c["label"]), c.get("kind", ""),
                          escape(_value(c, multi)), escape(_range(c["low"], c["high"])),
                          f"[{colour[c['status']]}]{c['status']}[/]", escape(_published(p["published"])) if i == 0 else "")
    console().print(table)
