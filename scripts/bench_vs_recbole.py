"""RecBole 1.2.1 vs recx on ml100k, same split and settings: metrics side by side, speed and ratios (issue 19).

    python scripts/bench_vs_recbole.py --recbole-python /path/to/recbole-venv/bin/python \\
        [--models bpr lightgcn] [--epochs 50] [--seeds 1 2 3] [--eval-passes 5] [--work outputs/bench_vs_recbole]

1. recx prepares ml100k as ``recx train dataset=ml100k`` does (per-user temporal 80/10/10 split) and writes its
   train/valid/test interactions as RecBole atomic files (``<work>/recx_ml100k/recx_ml100k.{train,valid,test}.inter``,
   recx's own user/item indices as tokens). RecBole reads them through ``benchmark_filename``, so both frameworks see
   the same interactions; the script checks that both report the same counts (interactions per split, users
   evaluated per split) before comparing anything.
2. Per seed and model, one process at a time (never both at once): RecBole through ``scripts/recbole_driver.py``
   under RecBole's interpreter, then recx in this process through its library API (the top-N family's datamodule,
   network and LightningModule, the run life's ``build_trainer``), so recx's times exclude interpreter start-up and
   imports; both frameworks' start-up (imports) is measured separately and printed on its own line.

Settings, both sides (:data:`SETTINGS`): embedding 64, batch 2048, Adam lr 1e-3, no weight decay, one uniform
negative per positive from the items the user did not train on, a fixed number of epochs with no validation during
training and no checkpoint writing, then validation + test of the last epoch's weights (Recall/NDCG@{10,20}, full
ranking over all items, train items masked for validation, train + valid items masked for test), then
``--eval-passes`` timed test passes. BPR: no regulariser (RecBole's BPR has none). LightGCN: 3 layers, EmbLoss
(unsquared norms / batch) with weight 1e-4 (RecBole's form; recx ``model.reg_form=emb``). RecBole's full-sort batch
gets recx's scorer budget (see recbole_driver.py).

Reported per model: metrics (mean over seeds), train s/epoch (median epoch: time between consecutive epoch ends, the
first from the start of fit), eval s per full test pass (median of the timed passes), wall s (data loading + model +
training + one validation and one test pass, after imports), each the median over seeds, and recx's speed-up
(RecBole time / recx time). The train and eval figures are also reported as CPU seconds of the process
(``time.process_time``; train: fit CPU / epochs), which other load on a shared machine disturbs far less than wall
time. ``recx floor`` is recx's bare work without the Lightning loop: for evaluation the scorer + metrics on the same
weights, for training the triplets + loss + backward + Adam step per batch on a fresh network (CPU s, a few epochs).
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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

#: recx model -> (RecBole model, recx overrides, RecBole --set values): the same model on both sides
SETTINGS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "bpr": ("BPR", ["model.reg_weight=0.0"], {}),
    "lightgcn": ("LightGCN", ["model.n_layers=3", "model.reg_weight=1e-4", "model.reg_form=emb"],
                 {"n_layers": "3", "reg_weight": "1e-4", "require_pow": "false"}),
}
#: recx overrides shared by every model (RecBole's side is in recbole_driver.py)
COMMON = ["dataset=ml100k", "model.embedding_dim=64", "model.lr=1e-3", "model.weight_decay=0.0",
          "dataset.datamodule.batch_size=2048", "metric.metrics=[recall,ndcg]", "metric.ks=[10,20]",
          "metric.cold_threshold=null", "callbacks.lis.enabled=false", "callbacks.early_stopping.enabled=false",
          "logger=none", "progress=false"]
SPLITS = ("train", "valid", "test")
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


# ------------------------------------------------------------------------------------------- the shared split
def write_atomic_split(splits: dict[str, torch.Tensor], folder: Path, name: str) -> dict[str, Path]:
    """Write ``{"train"|"valid"|"test": [n, 2] (user, item) pairs}`` as RecBole atomic files for its
    ``benchmark_filename`` option: ``<folder>/<name>/<name>.<split>.inter``, header ``user_id:token item_id:token``,
    tab-separated, the indices as tokens, rows in the given order. Returns the file of each split."""
    if set(splits) != set(SPLITS):
        raise ValueError(f"need exactly the splits {list(SPLITS)}, got {sorted(splits)}")
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        pairs = torch.as_tensor(splits[split])
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.is_floating_point:
            raise ValueError(f"split '{split}' must be an integer [n, 2] (user, item) tensor, got "
                             f"{tuple(pairs.shape)} {pairs.dtype}")
        if pairs.numel() and int(pairs.min()) < 0:
            raise ValueError(f"split '{split}' holds a negative index")
        paths[split] = out / f"{name}.{split}.inter"
        np.savetxt(paths[split], pairs.numpy(), fmt="%d", delimiter="\t", header="user_id:token\titem_id:token",
                   comments="")
    return paths


def split_counts(splits: dict[str, torch.Tensor]) -> dict:
    """What both frameworks must agree on: interactions per split and users evaluated on valid/test."""
    return {"interactions": {s: int(splits[s].shape[0]) for s in SPLITS},
            "eval_users": {s: int(torch.unique(splits[s][:, 0]).numel()) for s in ("valid", "test")}}


# ------------------------------------------------------------------------------------------------------- recx
def recx_config(model: str, epochs: int, seed: int, run_dir: Path):
    from omegaconf import OmegaConf

    from recx.cli import compose

    cfg = compose("train", [f"model={model}", *COMMON, *SETTINGS[model][1], f"seed={seed}",
                            f"trainer.max_epochs={epochs}", f"paths.run_dir={run_dir}"])
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.enable_checkpointing = False  # no checkpoint files (RecBole: saved=False)
    # and no validation while training (RecBole: eval_step=0)
    return cfg, OmegaConf.merge(cfg, {"trainer": {"limit_val_batches": 0}})


def run_recx(model: str, epochs: int, seed: int, passes: int, run_dir: Path) -> dict:
    import lightning.pytorch as pl

    from recx.metrics.topk import TopKMetrics
    from recx.run import build_trainer
    from recx.runtools import quiet_lightning
    from recx.scoring import make_ranker
    from recx.topn.family import build_datamodule, build_module, build_net

    quiet_lightning()
    cfg, fit_cfg = recx_config(model, epochs, seed, run_dir)
    started = time.perf_counter()
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    module = build_module(cfg, build_net(cfg.model, dm.data))

    class EpochEnds(pl.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.ends.append(time.perf_counter())

    ends = EpochEnds()
    trainer = build_trainer(fit_cfg, run_dir, [ends], max_epochs=epochs)
    fit_started, fit_cpu = time.perf_counter(), time.process_time()
    trainer.fit(module, datamodule=dm)
    fit_s, fit_cpu = time.perf_counter() - fit_started, time.process_time() - fit_cpu
    epoch_s = [b - a for a, b in zip([fit_started, *ends.ends[:-1]], ends.ends)]

    evaluator = build_trainer(cfg, run_dir, [])
    evaluator.validate(module, datamodule=dm, verbose=False)
    evaluator.test(module, datamodule=dm, verbose=False)
    valid, test = dict(module.results["valid"]), dict(module.results["test"])
    evaluated = time.perf_counter()
    timed, timed_cpu = [], []
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        evaluator.test(module, datamodule=dm, verbose=False)
        timed.append(time.perf_counter() - t)
        timed_cpu.append(time.process_time() - c)

    # recx's bare evaluation kernel on the same weights: ranker + metrics, no Lightning loop
    net = module.net
    floor, floor_cpu = [], []
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        net.eval()  # clears what the model derived for scoring (LightGCN's propagation), as a new epoch's weights do
        with torch.inference_mode():
            ranker = make_ranker("torch", k=max(module.ks), seen_indptr=dm.seen_csr("test")[0],
                                 seen_indices=dm.seen_csr("test")[1], memory_budget_mb=module.memory_budget_mb)
            metric = TopKMetrics(metrics=module.metric_names, ks=module.ks, truth_indptr=dm.truth_csr("test")[0],
                                 truth_indices=dm.truth_csr("test")[1], n_items=dm.data.n_items,
                                 item_popularity=dm.data.item_popularity())
            for users in dm.eval_users("test").split(dm.eval_chunk_size()):
                items, _ = ranker.rank_all(net.score, users)
                metric.update(items, users)
            bare = {k: float(v) for k, v in metric.compute().items()}
        floor.append(time.perf_counter() - t)
        floor_cpu.append(time.process_time() - c)
    if abs(bare["ndcg@20"] - test["ndcg@20"]) > 1e-6:
        raise SystemExit(f"recx's bare kernel disagrees with its test pass: {bare['ndcg@20']} vs {test['ndcg@20']}")
    splits = {s: dm.data.split(s) for s in SPLITS}
    return {
        "framework": "recx", "model": model, "seed": seed, "epochs": len(ends.ends),
        "data": {"users": dm.data.n_users, "items": dm.data.n_items, **split_counts(splits)},
        "valid": {k: valid[k] for k in METRICS}, "test": {k: test[k] for k in METRICS},
        "train_s_per_epoch": round(statistics.median(epoch_s), 4), "fit_s_per_epoch": round(fit_s / epochs, 4),
        "fit_cpu_s_per_epoch": round(fit_cpu / epochs, 4),
        "eval_cpu_s_per_pass": round(statistics.median(timed_cpu), 4),
        "eval_s_per_pass": round(statistics.median(timed), 4), "eval_passes_s": [round(x, 4) for x in timed],
        "floor_s_per_pass": round(statistics.median(floor), 4),
        "floor_cpu_s_per_pass": round(statistics.median(floor_cpu), 4),
        "train_floor_cpu_s_per_epoch": train_floor(cfg, dm, min(epochs, 5)),
        "wall_s": round(evaluated - started, 2), "threads": torch.get_num_threads(),
    }


def train_floor(cfg, dm, epochs: int) -> float:
    """CPU s/epoch of recx's bare training work on a fresh network: the epoch's triplets (the datamodule's seeded
    permutation + negatives) and, per batch of the same size, the model's loss, backward and the Adam step; no
    Lightning loop. The median over ``epochs`` epochs."""
    from recx.topn.family import build_net

    net = build_net(cfg.model, dm.data).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=float(cfg.model.lr), weight_decay=float(cfg.model.weight_decay))
    times = []
    for epoch in range(epochs):
        c = time.process_time()
        triplets = dm.epoch_triplets(epoch)
        for batch in zip(*(triplets[k].split(dm.batch_size) for k in triplets)):
            loss = net.loss(dict(zip(triplets, batch)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.process_time() - c)
    return round(statistics.median(times), 4)


def recx_startup() -> tuple[float, float]:
    """Seconds (wall, CPU) a fresh interpreter spends importing what a recx top-N run imports (run life, family,
    Lightning)."""
    code = ("import time; t, c = time.perf_counter(), time.process_time(); import recx.run, recx.cli, "
            "recx.topn.family, recx.topn.module, lightning.pytorch; "
            "print(time.perf_counter() - t, time.process_time() - c)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    wall, cpu = map(float, out.stdout.strip().splitlines()[-1].split())
    return wall, cpu


# ---------------------------------------------------------------------------------------------------- RecBole
def run_recbole(args, model: str, seed: int, data: Path) -> dict:
    name, _, sets = SETTINGS[model]
    out = args.work / f"recbole-{model}-{seed}.json"
    command = [str(args.recbole_python), str(REPO / "scripts" / "recbole_driver.py"), "--data", str(data),
               "--model", name, "--epochs", str(args.epochs), "--seed", str(seed),
               "--eval-passes", str(args.eval_passes), "--work", str(args.work / "recbole"), "--out", str(out),
               *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"RecBole driver failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    record = json.loads(out.read_text())
    record["process_s"] = round(time.perf_counter() - started, 2)
    return record


# ------------------------------------------------------------------------------------------------------ report
def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def mean_metric(runs: list[dict], split: str, key: str) -> float:
    return statistics.mean(r[split][key] for r in runs)


def check_same_data(recx_run: dict, recbole_run: dict) -> None:
    ours, theirs = recx_run["data"], recbole_run["data"]
    for key in ("interactions", "eval_users"):
        if ours[key] != theirs[key]:
            raise SystemExit(f"the two frameworks do not see the same split: {key} recx {ours[key]} vs RecBole "
                             f"{theirs[key]}")


def report(rows: list[tuple[str, list[dict], list[dict]]], startup: dict) -> str:
    lines = ["| model | split | metric | RecBole | recx | difference |", "|---|---|---|---:|---:|---:|"]
    for model, theirs, ours in rows:
        for split in ("valid", "test"):
            for key in METRICS:
                a, b = mean_metric(theirs, split, key), mean_metric(ours, split, key)
                lines.append(f"| {model} | {split} | {key} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    lines += ["", "| model | RecBole train s/epoch | recx train s/epoch | × | RecBole eval s/pass "
              "| recx eval s/pass | × "
              "| recx floor s/pass | RecBole wall s | recx wall s | × |", "|---" + "|---:" * 10 + "|"]
    for model, theirs, ours in rows:
        cells = []
        for key in ("train_s_per_epoch", "eval_s_per_pass"):
            a, b = med(theirs, key), med(ours, key)
            cells.append(f"{a:.4f} | {b:.4f} | {a / max(b, 1e-9):.2f}")
        a, b = med(theirs, "wall_s"), med(ours, "wall_s")
        lines.append(f"| {model} | {cells[0]} | {cells[1]} | {med(ours, 'floor_s_per_pass'):.4f} "
                     f"| {a:.1f} | {b:.1f} | {a / max(b, 1e-9):.2f} |")
    lines += ["", "CPU seconds of the process (time.process_time), the same medians:", "",
              "| model | RecBole train CPU s/epoch | recx train CPU s/epoch | × | RecBole eval CPU s/pass "
              "| recx eval CPU s/pass | × | recx floor: train CPU s/epoch | recx floor: eval CPU s/pass |",
              "|---" + "|---:" * 8 + "|"]
    for model, theirs, ours in rows:
        cells = []
        for key in ("fit_cpu_s_per_epoch", "eval_cpu_s_per_pass"):
            a, b = med(theirs, key), med(ours, key)
            cells.append(f"{a:.4f} | {b:.4f} | {a / max(b, 1e-9):.2f}")
        lines.append(f"| {model} | {cells[0]} | {cells[1]} | {med(ours, 'train_floor_cpu_s_per_epoch'):.4f} "
                     f"| {med(ours, 'floor_cpu_s_per_pass'):.4f} |")
    lines.append("")
    for model, theirs, _ in rows:
        if all(r.get("eval_cached_s_per_pass") is not None for r in theirs):
            lines.append(f"RecBole {model} re-evaluating the same weights with its propagation cache kept: "
                         f"{med(theirs, 'eval_cached_s_per_pass'):.4f} s/pass")
    lines.append(f"start-up (imports, fresh interpreter): RecBole {startup['recbole']:.2f} s "
                 f"({startup['recbole_cpu']:.2f} CPU s), recx {startup['recx']:.2f} s "
                 f"({startup['recx_cpu']:.2f} CPU s)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole-python", type=Path, required=True, help="python of a venv with recbole==1.2.1")
    parser.add_argument("--models", nargs="+", default=["bpr", "lightgcn"], choices=list(SETTINGS))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--eval-passes", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("outputs/bench_vs_recbole"))
    args = parser.parse_args()
    if args.epochs < 1 or args.eval_passes < 1:
        raise SystemExit("--epochs and --eval-passes must be at least 1")
    if not args.recbole_python.is_file():
        raise SystemExit(f"--recbole-python {args.recbole_python} does not exist (see docs/benchmarks.md for the venv)")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    from recx.cli import compose
    from recx.topn.family import build_datamodule

    dm = build_datamodule(compose("train", [f"model={args.models[0]}", *COMMON]))
    dm.prepare_data()
    dm.setup("fit")
    splits = {s: dm.data.split(s) for s in SPLITS}
    data = write_atomic_split(splits, args.work, "recx_ml100k")["train"].parent
    print(f"split written to {data}: {json.dumps(split_counts(splits))}", flush=True)

    startup = dict(zip(("recx", "recx_cpu"), recx_startup()))
    results: dict[str, tuple[list[dict], list[dict]]] = {m: ([], []) for m in args.models}
    for seed in args.seeds:
        for model in args.models:
            theirs = run_recbole(args, model, seed, data)
            ours = run_recx(model, args.epochs, seed, args.eval_passes, args.work / f"recx-{model}-{seed}")
            check_same_data(ours, theirs)
            startup["recbole"], startup["recbole_cpu"] = theirs["import_s"], theirs["import_cpu_s"]
            results[model][0].append(theirs)
            results[model][1].append(ours)
            print(json.dumps({"seed": seed, "model": model, **{
                f"{who}_{k}": r[k] for who, r in (("recbole", theirs), ("recx", ours))
                for k in ("train_s_per_epoch", "eval_s_per_pass", "wall_s")}}), flush=True)
    rows = [(m, *results[m]) for m in args.models]
    (args.work / "summary.json").write_text(json.dumps({
        "command": " ".join(["python scripts/bench_vs_recbole.py", "--recbole-python <venv>/bin/python", "--models",
                             *args.models, "--epochs", str(args.epochs), "--seeds", *map(str, args.seeds),
                             "--eval-passes", str(args.eval_passes)]),
        "startup_s": startup, "runs": {m: {"recbole": t, "recx": o} for m, t, o in rows}}, indent=2) + "\n")
    print(report(rows, startup))


if __name__ == "__main__":
    main()
