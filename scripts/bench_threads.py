"""Benchmark: a BPR training epoch on ml100k, idle and next to a concurrent CPU job, by thread setting.

Measures wall seconds per epoch (median of ``--epochs`` after one warm-up) of recx's Trainer (validation off) with
``hardware.num_threads`` = all cores, 1, and ``auto`` (recx.threads), first on an idle machine, then while a second
process keeps ``--busy`` cores busy (a one-thread float32 matmul loop per core). Prints each time against the idle
``auto`` epoch: the target (issue 19) is no worse than ~2x under load, where all-core threads go to 10x and more.

Usage: ``RECX_DATA_MIRROR=../shared/data python scripts/bench_threads.py [--epochs 3] [--busy 1]``. Run it on an
otherwise idle machine; it is a benchmark, not a test. ``OMP_NUM_THREADS`` must not be set (it would pin every case).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def burn(stop) -> None:
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def epoch_seconds(setting, epochs: int) -> tuple[float, int]:
    """Wall seconds per epoch of BPR on ml100k with ``hardware.num_threads=setting``, and the threads at the end."""
    import torch

    import bench_floor
    from recx.threads import apply_threads, governor

    with tempfile.TemporaryDirectory() as tmp:
        cfg, dm, module = bench_floor.build("bpr", ["dataset=ml100k"], [], Path(tmp))
        apply_threads(setting)
        gov = governor(setting)
        seconds = bench_floor.time_fit(cfg, dm, module, Path(tmp), epochs, time.perf_counter,
                                       callbacks=[gov] if gov is not None else [])
        return seconds, torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="cores the concurrent job keeps busy")
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        sys.exit("unset OMP_NUM_THREADS: it pins every setting to its value")
    from recx.threads import usable_cores

    cores = len(usable_cores())
    settings = [cores, 1, "auto"]
    rows = []
    for load in (0, args.busy):
        stop = mp.Event()
        burners = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(load)]
        for p in burners:
            p.start()
        time.sleep(1.0 if load else 0.0)
        try:
            for setting in settings:
                seconds, used = epoch_seconds(setting, args.epochs)
                rows.append((load, setting, used, seconds))
                print(f"busy={load} num_threads={setting}: {seconds:.3f} s/epoch ({used} threads at the end)",
                      flush=True)
        finally:
            stop.set()
            for p in burners:
                p.join()
    idle_auto = next(s for load, setting, _, s in rows if load == 0 and setting == "auto")
    print(f"\nBPR on ml100k, {cores} cores, wall s/epoch (median of {args.epochs}); × = against idle auto")
    print("| other job | hardware.num_threads | threads used | s/epoch | × |")
    print("|---|---|---:|---:|---:|")
    for load, setting, used, seconds in rows:
        print(f"| {'none' if load == 0 else f'{load} busy core(s)'} | {setting} | {used} | {seconds:.3f} | "
              f"{seconds / idle_auto:.1f} |")


if __name__ == "__main__":
    main()
