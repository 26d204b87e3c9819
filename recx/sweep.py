"""``recx sweep``: after a Hydra multirun, one table of all runs sorted by the validation metric.

Registered as a Hydra callback (``recx/conf/hydra/default.yaml``), so it works with any launcher (basic, joblib,
submitit, ray):
it reads what each job left in its folder (``metrics.json`` or ``error.txt``) rather than in-process return values.
Failed runs are listed, last, with their error, and the table is also written as ``summary.csv`` in the sweep folder.
Selection is by the validation monitor only; test metrics are shown but never sorted on. The sweep then writes its
plots and ``report.md`` (``recx.report``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def collect_runs(sweep_dir: Path, monitor: str) -> list[dict[str, Any]]:
    """One row per job folder: its overrides, status, validation/test metrics (or the first line of its error)."""
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()),
                      key=lambda p: (len(p.name), p.name)):
        overrides = [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]
        row: dict[str, Any] = {"job": job.name, "overrides": overrides, "run_dir": str(job)}
        metrics_file, error_file = job / "metrics.json", job / "error.txt"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            row["status"] = "ok"
            row["valid"] = metrics.get("valid", {})
            row["test"] = metrics.get("test", {})
            row["best_epoch"] = metrics.get("best_epoch")
            row["n_item_parameters"] = metrics.get("n_item_parameters")
        else:
            row["status"] = "failed"
            text = error_file.read_text().strip() if error_file.is_file() else "no metrics.json (killed?)"
            row["error"] = text.splitlines()[-1] if "Traceback" in text else text.splitlines()[0]
        rows.append(row)
    varying = _varying_overrides([r["overrides"] for r in rows])
    for row in rows:
        row["params"] = " ".join(o for o in row["overrides"] if o in varying) or "(base)"
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["valid"].get(monitor, float("-inf")))
    return ok + [r for r in rows if r["status"] != "ok"]


def _varying_overrides(all_overrides: list[list[str]]) -> set[str]:
    if not all_overrides:
        return set()
    common = set(all_overrides[0]).intersection(*map(set, all_overrides[1:]))
    return {o for ovs in all_overrides for o in ovs if o not in common}


def write_summary(rows: list[dict[str, Any]], path: Path, monitor: str) -> None:
    metric_names = sorted({k for r in rows for k in r.get("valid", {}) if "@" in k})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "job", "params", "status", "best_epoch"]
                        + [f"valid/{m}" for m in metric_names] + [f"test/{m}" for m in metric_names]
                        + ["error", "run_dir"])
        for rank, r in enumerate(rows, 1):
            writer.writerow([rank if r["status"] == "ok" else "", r["job"], r["params"], r["status"],
                             r.get("best_epoch", "")]
                            + [r.get("valid", {}).get(m, "") for m in metric_names]
                            + [r.get("test", {}).get(m, "") for m in metric_names]
                            + [r.get("error", ""), r["run_dir"]])


def print_summary(rows: list[dict[str, Any]], monitor: str, title: str) -> None:
    """The ranked table (params fold rather than truncate), then one line per failed run with its error."""
    from rich.markup import escape
    from rich.table import Table

    from recx.console import console

    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("params", overflow="fold", ratio=3)
    table.add_column("valid", justify="right", no_wrap=True)
    table.add_column("test", justify="right", no_wrap=True)
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for rank, r in enumerate(rows, 1):
        if r["status"] == "ok":
            table.add_row(str(rank), escape(r["params"]), f"{r['valid'].get(monitor, float('nan')):.4f}",
                          f"{r['test'].get(monitor, float('nan')):.4f}", str(r.get("best_epoch", "")), "ok")
        else:
            table.add_row("-", escape(r["params"]), "", "", "", "failed")
    out = console()
    out.print(table)
    for r in rows:
        if r["status"] != "ok":
            out.print(f"failed: {r['params']}: {r['error']}  ({r['run_dir']})", markup=False)


def aggregate_seeds(rows: list[dict[str, Any]], monitor: str) -> list[dict[str, Any]]:
    """Group successful runs that differ only in ``seed=``: mean and sample std of every metric, n runs.

    Sorted by the mean validation monitor. Returns ``[]`` when no seed override varies.
    """
    import statistics

    ok = [r for r in rows if r["status"] == "ok"]
    if not any(p.startswith("seed=") for r in ok for p in r["params"].split()):
        return []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in ok:
        key = " ".join(p for p in r["params"].split() if not p.startswith("seed=")) or "(base)"
        groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = {"params": key, "n": len(members)}
        entry["n_item_parameters"] = members[0].get("n_item_parameters")
        for split in ("valid", "test"):
            names = sorted(set.intersection(*(set(m[split]) for m in members)))
            for name in names:
                values = [float(m[split][name]) for m in members]
                entry[f"{split}/{name}"] = statistics.fmean(values)
                entry[f"{split}/{name}:std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(entry)
    return sorted(out, key=lambda e: -e.get(f"valid/{monitor}", float("-inf")))


def single_runs_as_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Successful runs in the shape of :func:`aggregate_seeds` groups (n = 1, std 0), for sweeps without seeds."""
    return [{"params": r["params"], "n": 1, "n_item_parameters": r.get("n_item_parameters"),
             **{f"{s}/{k}": v for s in ("valid", "test") for k, v in r[s].items()},
             **{f"{s}/{k}:std": 0.0 for s in ("valid", "test") for k in r[s]}}
            for r in rows if r["status"] == "ok"]


def compare_table(groups: list[dict[str, Any]], key: str, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Pivot seed-aggregated groups on one override ``key``: one row per remaining setting, the values side by side.

    E.g. ``key = model.item_representation`` puts ID and MOTOR next to each other for every backbone.
    """
    values: list[str] = []
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for g in groups:
        parts = g["params"].split()
        chosen = next((p.split("=", 1)[1] for p in parts if p.startswith(key + "=")), None)
        if chosen is None:
            continue
        rest = " ".join(p for p in parts if not p.startswith(key + "=")) or "(base)"
        values += [chosen] if chosen not in values else []
        rows.setdefault(rest, {})[chosen] = g
    header = ["setting"] + [f"{v}: {m}" for v in values for m in metrics] + [f"{v}: item params" for v in values]
    table = []
    for rest, by_value in rows.items():
        cells = [rest]
        for v in values:
            for m in metrics:
                g = by_value.get(v)
                cells.append("" if g is None or f"test/{m}" not in g
                             else f"{g[f'test/{m}']:.4f} ± {g[f'test/{m}:std']:.4f}")
        for v in values:
            n = (by_value.get(v) or {}).get("n_item_parameters")
            cells.append(f"{n:,}" if n is not None else "")
        table.append(cells)
    return header, table


def write_aggregate(groups: list[dict[str, Any]], path: Path) -> None:
    columns = ["params", "n"] + sorted({k for g in groups for k in g if "/" in k})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for g in groups:
            writer.writerow({k: g.get(k, "") for k in columns})


#: the metric shown beside the monitor in the seed table: the first one the runs report (top-N, then LTR)
SECOND_METRICS = ("ndcg@20", "err@10")


def print_aggregate(groups: list[dict[str, Any]], monitor: str, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from recx.console import console

    present = {k.split("/", 1)[1] for g in groups for k in g if k.startswith("test/") and not k.endswith(":std")}
    second = next((m for m in SECOND_METRICS if m in present and m != monitor), None)
    shown = [monitor] + ([second] if second else [])
    table = Table(title=title, title_justify="left")
    table.add_column("params", overflow="fold", ratio=3)
    table.add_column("n", justify="right")
    for m in shown:
        table.add_column(f"valid {m}", justify="right", no_wrap=True)
        table.add_column(f"test {m}", justify="right", no_wrap=True)
    for g in groups:
        cells = []
        for m in shown:
            for split in ("valid", "test"):
                mean, std = g.get(f"{split}/{m}"), g.get(f"{split}/{m}:std", 0.0)
                cells.append("" if mean is None else f"{mean:.4f} ± {std:.4f}")
        table.add_row(escape(g["params"]), str(g["n"]), *cells)
    console().print(table)


class SweepSummary(Callback):
    """Hydra callback: summarise every job of the multirun when it ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir() or config.get("task") != "train":
            return
        summarize(sweep_dir, config.metric.monitor, compare=config.get("sweep_compare"))
        try:
            from recx.report import report_sweep

            report_sweep(sweep_dir)
        except Exception as exc:  # noqa: BLE001 - plots are a convenience: never fail a finished sweep over them
            from recx.console import console

            console(stderr=True).print(f"sweep report not written: {exc}", markup=False)


def summarize(sweep_dir: str | Path, monitor: str = "recall@20", compare: str | None = None) -> list[dict[str, Any]]:
    """(Re)build ``summary.csv`` (+ ``summary_by_config.csv``) of a sweep folder and print the tables."""
    sweep_dir = Path(sweep_dir)
    rows = collect_runs(sweep_dir, monitor)
    write_summary(rows, sweep_dir / "summary.csv", monitor)
    print_summary(rows, monitor, title=f"sweep {sweep_dir}: {monitor}, sorted by valid")
    groups = aggregate_seeds(rows, monitor)
    if groups:
        write_aggregate(groups, sweep_dir / "summary_by_config.csv")
        print_aggregate(groups, monitor, title="mean ± std over seeds, sorted by mean valid")
    if compare:
        from rich.markup import escape
        from rich.table import Table

        from recx.console import console

        header, table_rows = compare_table(groups or single_runs_as_groups(rows), compare,
                                           [monitor, "ndcg@20", "cold/recall@20"])
        with open(sweep_dir / "comparison.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *table_rows])
        table = Table(title=f"test metrics by {compare} (mean ± std over seeds)", title_justify="left")
        for col in header:
            table.add_column(col, overflow="fold")
        for r in table_rows:
            table.add_row(*(escape(str(cell)) for cell in r))
        console().print(table)
    return rows


if __name__ == "__main__":  # python -m recx.sweep <sweep folder> [monitor]
    import sys

    summarize(sys.argv[1], *sys.argv[2:4])
