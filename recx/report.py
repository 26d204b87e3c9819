"""``recx report <run or sweep folder>``: PNG plots and a short markdown summary beside them.

* A **run folder** (``metrics.json`` and/or Lightning's ``logs/metrics.csv``): ``report_curves.png`` — the validation
  monitor per epoch (x: epoch, y: the monitor, e.g. ``val/recall@20``) with the chosen (best) epoch marked by a
  dashed vertical line and its value annotated, and below it the mean training loss per epoch — plus ``report.md``
  (model, dataset, best epoch, validation/test monitor, the test metrics, the plot).
* A **sweep folder** (job sub-folders with ``.hydra/overrides.yaml``): ``report_configs.png`` — one horizontal bar per
  configuration (y: the overrides that vary, seeds pooled; x: the mean test monitor, error bar = std over seeds, a
  marker for the mean validation monitor that ranked it) — plus ``report.md`` (the ranked table, failed jobs) and
  each successful job's own run report.

Every ``recx sweep`` ends by writing the sweep report (``recx.sweep.SweepSummary``). Families without a per-epoch log
(MAGUS, ICL evaluation) get the markdown summary only. matplotlib runs headless (Agg); nothing here imports torch.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recx.errors import ConfigError


def is_sweep_folder(folder: Path) -> bool:
    return any((p / ".hydra" / "overrides.yaml").is_file() for p in folder.iterdir() if p.is_dir())


def write_report(folder: str | Path) -> list[Path]:
    """The report of a run or sweep folder; returns the files written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("no such run or sweep folder", path=folder,
                          fix="pass a folder printed by `recx train` (run folder) or `recx sweep` (sweep folder)")
    if is_sweep_folder(folder):
        return report_sweep(folder)
    if not (folder / "metrics.json").is_file() and not (folder / "logs" / "metrics.csv").is_file():
        raise ConfigError("not a run folder: no metrics.json and no logs/metrics.csv", path=folder,
                          fix="pass a finished run's folder (outputs/<run name>/<timestamp>) or a sweep folder")
    return report_run(folder)


# ------------------------------------------------------------------------------------------------------- one run
def epoch_history(run_dir: Path) -> dict[str, dict[int, float]]:
    """``column -> {epoch: value}`` from Lightning's CSV log (rows are sparse: one logged group per row)."""
    path = run_dir / "logs" / "metrics.csv"
    history: dict[str, dict[int, float]] = {}
    if not path.is_file():
        return history
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(float(row.get("epoch") or "nan"))
            except ValueError:
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                try:
                    history.setdefault(key, {})[epoch] = float(value)
                except ValueError:
                    continue
    return history


def run_settings(run_dir: Path) -> dict[str, Any]:
    """Model, dataset and monitor of a run, from its saved config (empty strings where absent)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        cfg_path = run_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(cfg_path) if cfg_path.is_file() else OmegaConf.create({})
    return {"model": str(OmegaConf.select(cfg, "model.name", default="")),
            "dataset": str(OmegaConf.select(cfg, "dataset.name", default="")),
            "monitor": str(OmegaConf.select(cfg, "metric.monitor", default="") or "")}


def report_run(run_dir: Path) -> list[Path]:
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    settings = run_settings(run_dir)
    monitor = settings["monitor"]
    history = epoch_history(run_dir)
    best = metrics.get("best_epoch")
    written: list[Path] = []
    model = metrics.get("model") or settings["model"]  # metrics.json's label says more (plug-in, reconstruction)
    curve = history.get(f"val/{monitor}") or {}
    loss = history.get("train/loss") or {}
    if loss:  # the re-validation of the best checkpoint after training is logged one epoch past the last: not a curve point
        curve = {e: v for e, v in curve.items() if e <= max(loss)}
    if curve or loss:
        written.append(_plot_run(run_dir / "report_curves.png", curve, loss, monitor, best,
                                 title=f"{model} on {settings['dataset']}"))
    lines = [f"# Run report: {model or run_dir.name}" + (f" on {settings['dataset']}"
                                                         if settings['dataset'] else ""), "",
             f"Folder: `{run_dir}`", ""]
    if metrics.get("reconstruction"):
        lines += [f"Reconstruction: {metrics['reconstruction']}", ""]
    valid, test = metrics.get("valid") or {}, metrics.get("test") or {}
    if best is not None:
        lines.append(f"- chosen epoch: {best} (by validation {monitor})")
    if monitor and monitor in valid:
        lines.append(f"- validation {monitor}: {_num(valid[monitor])}")
    if monitor and monitor in test:
        lines.append(f"- test {monitor}: {_num(test[monitor])}")
    if curve:
        lines.append(f"- epochs logged: {len(curve)}")
    if written:
        lines += ["", f"![validation {monitor} per epoch]({written[0].name})"]
    shown = {k: v for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if shown:
        lines += ["", "| test metric | value |", "|---|---:|"]
        lines += [f"| {k} | {_num(v)} |" for k, v in sorted(shown.items())[:40]]
    if not curve and not loss:
        lines += ["", "No per-epoch log in this run (logs/metrics.csv): summary only."]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return [*written, out]


def _plot_run(path: Path, curve: dict[int, float], loss: dict[int, float], monitor: str, best: int | None,
              title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if curve and loss else 1
    fig, axes = plt.subplots(rows, 1, figsize=(6.4, 2.6 * rows + 0.6), sharex=True, squeeze=False)
    ax_iter = iter(axes[:, 0])
    if curve:
        ax = next(ax_iter)
        epochs = sorted(curve)
        ax.plot(epochs, [curve[e] for e in epochs], marker="o", markersize=3, label=f"val/{monitor}")
        if best is not None and best in curve:
            ax.axvline(best, color="tab:red", linestyle="--", linewidth=1)
            ax.annotate(f"chosen: epoch {best}\n{curve[best]:.4f}", (best, curve[best]), textcoords="offset points",
                        xytext=(6, -24), fontsize=8, color="tab:red")
        ax.set_ylabel(f"val/{monitor}")
        ax.grid(alpha=0.3)
    if loss:
        ax = next(ax_iter)
        epochs = sorted(loss)
        ax.plot(epochs, [loss[e] for e in epochs], color="tab:gray", marker=".", label="train/loss")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------- a sweep
def report_sweep(sweep_dir: Path) -> list[Path]:
    from recx import sweep

    jobs = [p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    monitor = next((m for m in (run_settings(j)["monitor"] for j in jobs) if m), "recall@20")
    rows = sweep.collect_runs(sweep_dir, monitor)
    groups = sweep.aggregate_seeds(rows, monitor) or sweep.single_runs_as_groups(rows)
    written: list[Path] = []
    for r in rows:
        if r["status"] == "ok":
            try:
                written += report_run(Path(r["run_dir"]))
            except (OSError, ValueError):  # a half-written job folder must not stop the sweep report
                continue
    if groups:
        written.append(_plot_sweep(sweep_dir / "report_configs.png", groups, monitor))
    lines = [f"# Sweep report: {sweep_dir.name}", "", f"Folder: `{sweep_dir}`; {len(rows)} jobs, "
             f"{sum(r['status'] == 'ok' for r in rows)} finished; configurations ranked by mean validation {monitor} "
             "(test shown, never used for ranking).", ""]
    if groups:
        lines += [f"![test {monitor} per configuration](report_configs.png)", "",
                  f"| # | configuration | runs | valid {monitor} | test {monitor} |", "|---:|---|---:|---:|---:|"]
        for rank, g in enumerate(groups, 1):
            lines.append(f"| {rank} | `{g['params']}` | {g['n']} | {_mean_std(g, 'valid', monitor)} | "
                         f"{_mean_std(g, 'test', monitor)} |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed jobs:", ""] + [f"- `{r['params']}`: {r.get('error', '')} (`{r['run_dir']}`)"
                                             for r in failed]
    out = sweep_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return [*written, out]


def _plot_sweep(path: Path, groups: list[dict[str, Any]], monitor: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = groups[:30]
    labels = [_short(g["params"]) for g in shown]
    test = [g.get(f"test/{monitor}", math.nan) for g in shown]
    err = [g.get(f"test/{monitor}:std", 0.0) for g in shown]
    valid = [g.get(f"valid/{monitor}", math.nan) for g in shown]
    y = list(range(len(shown)))[::-1]  # best (rank 1) at the top
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(shown) + 1.8))
    ax.barh(y, test, xerr=err, color="tab:blue", alpha=0.75, capsize=3, label=f"test {monitor} (± std over seeds)")
    ax.scatter(valid, y, color="black", marker="|", s=120, zorder=3, label=f"valid {monitor} (ranks)")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(monitor)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.6 / (len(shown) + 2)), ncol=2,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _mean_std(group: dict[str, Any], split: str, monitor: str) -> str:
    mean = group.get(f"{split}/{monitor}")
    if mean is None:
        return "–"
    std = group.get(f"{split}/{monitor}:std", 0.0)
    return f"{mean:.4f}" + (f" ± {std:.4f}" if group["n"] > 1 else "")
