"""Benchmark: recx's training epoch and evaluation pass against the bare floor of the same work, in one process.

For each model, on one dataset (default ml100k; any MMRec folder with ``--mmrec <folder>``):

* **train**: seconds per epoch of ``trainer.fit`` (recx's Trainer, validation off) against a *bare loop*: the same
  model's ``loss`` / ``backward`` / Adam step over the same batches from the same datamodule, no framework;
* **eval**: seconds of one full evaluation pass (every validation user: score all items, mask the training items,
  deterministic top-K, all metrics) three ways -- ``trainer.validate`` (what ``recx eval`` pays), the module's
  evaluation hooks without the Trainer (what a validation round inside ``fit`` pays), and the *bare kernel*
  ``score = net.score(users); score[seen] = -inf; torch.topk(score, K)`` with the seen pairs precomputed (no
  tie-breaking, no metrics).

Times are process CPU seconds (medians over repeats), which a concurrent job on a shared machine disturbs less than
wall time; ``--wall`` measures wall time instead. Threads: ``torch.set_num_threads(--threads)`` (default 1).

Usage::

    python scripts/bench_floor.py                       # ml100k, bpr and lightgcn
    python scripts/bench_floor.py --models bpr,lightgcn,vbpr,freedom --mmrec /data/mmsynth
    python scripts/bench_floor.py --overrides protocol=mmrec

This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def clock(wall: bool):
    return time.perf_counter if wall else time.process_time


def build(model: str, dataset_args: list[str], overrides: list[str], run_dir: Path):
    """Config, datamodule and module exactly as ``recx train`` builds them."""
    from omegaconf import open_dict

    from recx import cli, families

    cfg = cli.compose("train", [f"model={model}", *dataset_args, "callbacks.lis.enabled=false", "logger=none",
                                "progress=false", *overrides])
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    family = families.of(cfg)
    dm = family.datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    task = family.task(cfg, dm, families.Life(run_dir=run_dir, log=lambda m: None, train=None))
    return cfg, dm, task.module


def trainer_for(cfg, run_dir: Path, epochs: int, *, validate: bool, callbacks: list | None = None):
    """recx's own Trainer for the run (``validate=False``: no validation rounds)."""
    from recx.run import build_trainer

    trainer = build_trainer(cfg, run_dir, list(callbacks or []), max_epochs=epochs)
    if not validate:
        trainer.limit_val_batches = 0
    return trainer


def time_fit(cfg, dm, module, run_dir: Path, epochs: int, tick, callbacks: list | None = None) -> float:
    """Seconds per epoch of recx's Trainer without validation (first epoch dropped as warm-up); ``callbacks`` run
    before the stopwatch at each epoch start (scripts/bench_threads.py passes the thread governor)."""
    import lightning.pytorch as pl

    times: list[float] = []

    class Stopwatch(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t = tick()

        def on_train_epoch_end(self, trainer, pl_module):
            times.append(tick() - self.t)

    trainer = trainer_for(cfg, run_dir, epochs + 1, validate=False, callbacks=[*(callbacks or []), Stopwatch()])
    trainer.fit(module, datamodule=dm)
    return statistics.median(times[1:] or times)


def time_bare_train(module, dm, epochs: int, tick) -> float:
    """Seconds per epoch of the bare loop: same batches (the datamodule's own triplets), loss, backward, Adam."""
    import torch

    params = [p for p in module.net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=module.lr, weight_decay=module.weight_decay)
    module.net.train()
    times = []
    for epoch in range(epochs + 1):
        hook = getattr(module.net, "on_epoch_start", None)
        start = tick()
        if hook is not None:
            hook(epoch)
        for batch in dm_batches(dm, epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = module.net.loss(batch)
            loss.backward()
            optimizer.step()
        times.append(tick() - start)
    return statistics.median(times[1:])


def dm_batches(dm, epoch: int):
    triplets = dm.epoch_triplets(epoch)
    n = next(iter(triplets.values())).shape[0]
    for start in range(0, n, dm.batch_size):
        yield {k: v[start:start + dm.batch_size] for k, v in triplets.items()}


def time_eval(cfg, dm, module, run_dir: Path, repeats: int, tick) -> dict[str, float]:
    import torch

    trainer = trainer_for(cfg, run_dir, 1, validate=True)
    module.eval()
    validate = []
    for _ in range(repeats + 1):
        start = tick()
        trainer.validate(module, datamodule=dm, verbose=False)
        validate.append(tick() - start)

    # the module's hooks alone, as a validation round inside fit runs them (accuracy metrics only)
    hooks = []
    users = dm.eval_users("valid")
    chunk = dm.eval_chunk_size()
    state_fn = trainer.state.fn
    from lightning.pytorch.trainer.states import TrainerFn

    trainer.state.fn = TrainerFn.FITTING
    module.log = lambda *a, **kw: None  # outside a loop Lightning has nowhere to log the monitor to
    for _ in range(repeats + 1):
        start = tick()
        module._start("valid")
        for begin in range(0, users.numel(), chunk):
            module._step({"users": users[begin:begin + chunk]})
        module._finish("val")
        hooks.append(tick() - start)
    trainer.state.fn = state_fn
    del module.log

    seen_indptr, seen_indices = dm.seen_csr("valid")
    from recx.scoring.topk import seen_pairs

    rows, cols = seen_pairs(users, seen_indptr.long(), seen_indices.long())
    k = max(module.ks)
    bare = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = tick()
            scores = module.net.score(users)
            scores[rows, cols] = float("-inf")
            torch.topk(scores, k, dim=1)
            bare.append(tick() - start)
    med = statistics.median
    return {"validate": med(validate[1:]), "hooks": med(hooks[1:]), "bare": med(bare[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="bpr,lightgcn")
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--mmrec", help="an MMRec-layout folder (dataset=mmrec dataset.path=<folder>)")
    parser.add_argument("--overrides", nargs="*", default=[], help="extra config overrides, e.g. protocol=mmrec")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall seconds instead of process CPU seconds")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tick = clock(args.wall)
    dataset_args = ["dataset=mmrec", f"dataset.path={args.mmrec}"] if args.mmrec else [f"dataset={args.dataset}"]
    rows = []
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp)
            cfg, dm, module = build(model, dataset_args, args.overrides, run_dir)
            ev = time_eval(cfg, dm, module, run_dir, args.repeats, tick)
            bare_train = time_bare_train(module, dm, args.epochs, tick)
            cfg, dm, module = build(model, dataset_args, args.overrides, run_dir)
            fit = time_fit(cfg, dm, module, run_dir, args.epochs, tick)
            rows.append((model, fit, bare_train, ev))
            print(f"{model}: done", flush=True)
    unit = "wall s" if args.wall else "CPU s"
    print(f"\n{dataset_args} {args.overrides} threads={args.threads} ({unit}, medians)")
    print("| model | train s/epoch | bare loop | × | validate pass | hooks pass | bare kernel | validate × | hooks × |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, fit, bare_train, ev in rows:
        print(f"| {model} | {fit:.4f} | {bare_train:.4f} | {fit / bare_train:.2f} | {ev['validate']:.4f} | "
              f"{ev['hooks']:.4f} | {ev['bare']:.4f} | {ev['validate'] / ev['bare']:.2f} | "
              f"{ev['hooks'] / ev['bare']:.2f} |")


if __name__ == "__main__":
    main()
