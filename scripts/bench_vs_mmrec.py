"""MMRec vs recx (``protocol=mmrec``) on one MMRec-layout folder: metrics side by side, speed and ratios.

    python scripts/bench_vs_mmrec.py --mmrec /path/to/MMRec --data /path/to/folder \\
        [--models BPR LightGCN VBPR FREEDOM] [--seeds 1 2] [--mmrec-python /path/to/MMRec/venv/bin/python] \\
        [--record tests/parity --generator-seed 0]
    python scripts/bench_vs_mmrec.py --from-record tests/parity --data /path/to/folder --models SLMRec \
        [--recx-set model.score_with=last_batch] [--record tests/parity]

One process at a time (never both at once, so neither slows the other): for each model, MMRec through
scripts/mmrec_driver.py under MMRec's own interpreter (all seeds in one process, as MMRec's main.py loops its seeds),
then ``recx train ... protocol=mmrec`` once per seed. Both run with the settings in :data:`SETTINGS` (MMRec's grids
collapsed to the value recx's protocol uses). Prints, per model: test Recall@20 / NDCG@20 (mean over seeds), train
seconds per epoch, seconds per evaluation pass, wall seconds per seed (process start to exit), and recx's speed-up
(MMRec time / recx time). ``--record DIR`` also writes DIR/mmrec_<model>.json, the parity record that
tests/parity/test_mmrec_parity.py reads (it then needs ``--generator-seed``, the seed the folder was made with by
scripts/make_mmrec_data.py, with its default size).

recx's times come from its metrics.json history: per epoch, the epoch's seconds less its validation round's
(``val_seconds``), and the median validation round as one evaluation pass; MMRec's from timing its own
``_train_epoch`` and ``evaluate`` (scripts/mmrec_driver.py). ``--epochs N`` makes both run exactly N epochs: a speed
comparison in minutes (the metrics then are not converged).

``--from-record DIR`` runs recx only, against MMRec's runs kept in DIR/mmrec_<model>.json (their seeds unless
``--seeds`` is given; no MMRec checkout needed): what to use after a change on recx's side. ``--recx-set k=v`` adds
overrides to recx's runs (e.g. trying a key before ``protocol=mmrec`` sets it); with ``--record`` the record keeps
MMRec's runs and gets recx's new ``recx_measured`` / ``recx_mean`` (and ``recx_overrides`` when any were given).
It also prints each metric's difference of means with the parity test's tolerance (max(0.005, 3 SE)).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: MMRec model -> (recx model, MMRec --set values matching what recx's protocol=mmrec runs)
SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "BPR": ("bpr", {"reg_weight": "1e-4"}),
    "LightGCN": ("lightgcn", {"n_layers": "3", "reg_weight": "1e-4"}),
    "VBPR": ("vbpr", {"reg_weight": "1e-4"}),
    "FREEDOM": ("freedom", {"dropout": "0.8", "reg_weight": "1e-3"}),
    "LATTICE": ("lattice", {"reg_weight": "1e-5", "learning_rate": "1e-3"}),
    "MMGCN": ("mmgcn", {"reg_weight": "1e-3", "learning_rate": "1e-3"}),
    "GRCN": ("grcn", {"reg_weight": "1e-4", "learning_rate": "1e-3"}),
    "DualGNN": ("dualgnn", {"reg_weight": "0.1", "learning_rate": "1e-3"}),
    "SLMRec": ("slmrec", {"learning_rate": "1e-3", "ssl_temp": "0.2", "ssl_alpha": "0.1"}),
    "BM3": ("bm3", {"n_layers": "1", "reg_weight": "0.1", "dropout": "0.5"}),
    "DRAGON": ("dragon", {"reg_weight": "1e-3", "learning_rate": "1e-3"}),
}


def run_mmrec(args, model: str, out: Path) -> dict:
    settings = {**SETTINGS[model][1], **({"epochs": str(args.epochs)} if args.epochs else {})}
    sets = [x for k, v in settings.items() for x in ("--set", f"{k}={v}")]
    command = [str(args.mmrec_python), str(REPO / "scripts" / "mmrec_driver.py"), "--mmrec", str(args.mmrec),
               "--data", str(args.data), "--model", model, "--seeds", *map(str, args.seeds), "--out", str(out), *sets]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads(out.read_text())
    record["wall_s_per_seed"] = round((time.perf_counter() - started) / len(args.seeds), 2)
    record["command"] = " ".join(["<mmrec venv>/bin/python", "scripts/mmrec_driver.py", "--mmrec <MMRec checkout>",
                                  "--data <folder>", "--model", model, "--seeds", *map(str, args.seeds),
                                  *[f"--set {k}={v}" for k, v in settings.items()]])
    return record


def run_recx(args, model: str, work: Path) -> dict:
    name = SETTINGS[model][0]
    runs = []
    for seed in args.seeds:
        run_dir = work / f"recx-{name}-{seed}"
        command = [sys.executable, "-m", "recx.cli", "train", f"model={name}", "dataset=mmrec",
                   f"dataset.path={args.data}", "protocol=mmrec", f"seed={seed}", f"paths.run_dir={run_dir}",
                   "progress=false", "logger=none", "callbacks.lis.enabled=false",
                   *([f"trainer.max_epochs={args.epochs}"] if args.epochs else []), *args.recx_set]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - started
        m = json.loads((run_dir / "metrics.json").read_text())
        epochs = max(int(m["epochs_trained"]), 1)
        history = m.get("history") or []
        if history and all("val_seconds" in row for row in history):
            # per epoch: the whole epoch and its validation round, as MMRec's driver times _train_epoch and evaluate
            train_s = statistics.mean(row["seconds"] - row["val_seconds"] for row in history)
            eval_pass = statistics.median(row["val_seconds"] for row in history)
        else:  # older metrics.json: one pass = half the final validate + test
            eval_pass = m["eval_time_s"] / 2.0
            train_s = max(m["train_time_s"] - epochs * eval_pass, 0.0) / epochs
        runs.append({"seed": seed, "test": {k: m["test"][k] for k in ("recall@20", "ndcg@20")},
                     "best_epoch": m["best_epoch"], "epochs": epochs, "train_s_per_epoch": round(train_s, 4),
                     "eval_s_per_pass": round(eval_pass, 4), "wall_s": round(wall, 2),
                     "startup_s": m.get("startup_s")})
    return {"model": name, "runs": runs}


def standard_error(ours: list[float], theirs: list[float]) -> float:
    """Standard error of the difference of the two means (0 when a side has one value)."""
    if min(len(ours), len(theirs)) < 2:
        return 0.0
    return (statistics.variance(ours) / len(ours) + statistics.variance(theirs) / len(theirs)) ** 0.5


def tolerance(ours: list[float], theirs: list[float]) -> float:
    """What tests/parity/test_mmrec_parity.py accepts for |mean(ours) - mean(theirs)|: ±0.005, widened to three
    standard errors when the seeds are noisier than that."""
    return max(0.005, 3.0 * standard_error(ours, theirs))


def mean(runs: list[dict], key: str, sub: str | None = None) -> float:
    return statistics.mean(r[sub][key] if sub else r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmrec", type=Path, default=None, help="MMRec checkout (holds src/)")
    parser.add_argument("--from-record", type=Path, default=None,
                        help="read MMRec's runs from DIR/mmrec_<model>.json instead of running MMRec")
    parser.add_argument("--recx-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for recx's runs (repeatable)")
    parser.add_argument("--data", type=Path, required=True, help="MMRec-layout folder")
    parser.add_argument("--models", nargs="+", default=["BPR", "LightGCN", "VBPR", "FREEDOM"], choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 1 2, or the record's seeds")
    parser.add_argument("--mmrec-python", type=Path, default=None, help="default: <mmrec>/venv/bin/python")
    parser.add_argument("--work", type=Path, default=Path("outputs/bench_vs_mmrec"))
    parser.add_argument("--record", type=Path, default=None, help="write <dir>/mmrec_<model>.json parity records")
    parser.add_argument("--generator-seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None,
                        help="a speed comparison: both run exactly this many epochs (metrics then mean little)")
    args = parser.parse_args()
    if (args.mmrec is None) == (args.from_record is None):
        parser.error("give --mmrec (run MMRec) or --from-record (use its recorded runs), not both")
    args.data = args.data.resolve()
    if args.mmrec is not None:
        args.mmrec = args.mmrec.resolve()
        args.mmrec_python = args.mmrec_python or args.mmrec / "venv" / "bin" / "python"
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    seeds = args.seeds
    for model in args.models:
        if args.from_record is not None:
            theirs = json.loads((args.from_record / f"mmrec_{SETTINGS[model][0]}.json").read_text())
            args.seeds = seeds or theirs["seeds"]
        else:
            args.seeds = seeds or [1, 2]
            theirs = run_mmrec(args, model, args.work / f"mmrec-{model}.json")
        ours = run_recx(args, model, args.work)
        rows.append((model, theirs, ours))
        if args.record is not None and args.from_record is not None:
            update_record(args, model, ours)
        elif args.record is not None:
            write_record(args, model, theirs, ours)
    header = ("| model | MMRec R@20 | recx R@20 | MMRec N@20 | recx N@20 | MMRec train s/ep | recx train s/ep | ×"
              " | MMRec eval s | recx eval s | × | MMRec wall s | recx wall s | × |")
    print(header)
    print("|---" + "|---:" * 13 + "|")
    for model, theirs, ours in rows:
        t, o = theirs["runs"], ours["runs"]
        tr = (mean(t, "train_s_per_epoch"), mean(o, "train_s_per_epoch"))
        ev = (mean(t, "eval_s_per_pass"), mean(o, "eval_s_per_pass"))
        wall = (theirs.get("wall_s_per_seed"), mean(o, "wall_s"))  # a record may not hold MMRec's wall time
        print(f"| {model} | {mean(t, 'recall@20', 'test'):.4f} | {mean(o, 'recall@20', 'test'):.4f} "
              f"| {mean(t, 'ndcg@20', 'test'):.4f} | {mean(o, 'ndcg@20', 'test'):.4f} "
              + "".join(f"| {a:.3f} | {b:.3f} | {a / max(b, 1e-9):.1f} " if a is not None else f"| – | {b:.3f} | – "
                        for a, b in (tr, ev, wall)) + "|")
    for model, theirs, ours in rows:
        for key in ("recall@20", "ndcg@20"):
            a = [r["test"][key] for r in theirs["runs"]]
            b = [r["test"][key] for r in ours["runs"]]
            gap, tol = statistics.mean(b) - statistics.mean(a), tolerance(b, a)
            print(f"{model} {key}: recx - MMRec = {gap:+.4f} over {len(b)}/{len(a)} seeds, "
                  f"SE {standard_error(b, a):.4f}, "
                  f"tolerance {tol:.4f}: {'ok' if abs(gap) <= tol else 'OUTSIDE'}")
    starts = [r["startup_s"] for _, _, ours in rows for r in ours["runs"] if r.get("startup_s") is not None]
    if starts:
        print(f"recx start-up (process start to the first training step): median {statistics.median(starts):.2f} s "
              f"over {len(starts)} runs")


def write_record(args, model: str, theirs: dict, ours: dict) -> None:
    """tests/parity/mmrec_<model>.json: MMRec's runs (the data the parity test checks against) + what recx measured."""
    if args.generator_seed is None:
        raise SystemExit("--record needs --generator-seed (the seed of scripts/make_mmrec_data.py)")
    record = {
        **{k: theirs[k] for k in ("model", "mmrec_commit", "settings", "seeds", "runs", "test_mean", "python",
                                  "torch")},
        "command": theirs["command"],
        "generator": {"script": "scripts/make_mmrec_data.py", "seed": args.generator_seed, "name": args.data.name,
                      "users": 600, "items": 401},
        "recx_model": SETTINGS[model][0],
        "recx_measured": ours["runs"],
    }
    args.record.mkdir(parents=True, exist_ok=True)
    (args.record / f"mmrec_{SETTINGS[model][0]}.json").write_text(json.dumps(record, indent=1) + "\n")


def update_record(args, model: str, ours: dict) -> None:
    """Replace recx's side of DIR/mmrec_<model>.json (MMRec's runs stay as they were recorded)."""
    path = args.record / f"mmrec_{SETTINGS[model][0]}.json"
    record = json.loads(path.read_text())
    record["recx_measured"] = ours["runs"]
    record["recx_mean"] = {key: round(mean(ours["runs"], key, "test"), 6) for key in ("recall@20", "ndcg@20")}
    if args.recx_set:
        record["recx_overrides"] = list(args.recx_set)
    path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
