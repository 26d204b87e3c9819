"""Benchmark: full-ranking *evaluation* throughput (rank all items, mask seen items, top-K, Recall/NDCG@{10,20}).

Compares, on one synthetic problem (random float32 embeddings with a planted signal, ~20 seen and ~5 held-out items
per user, fixed seed):

1. ``recx-torch``   -- :class:`recx.scoring.topk.TorchTopK.rank_vectors` + :mod:`recx.metrics.topk` (all users;
   hit matrix from ``truth_keys``/``hits_from_keys`` + ``compute_topk_metrics``, the path ``TopKMetrics`` takes);
2. ``recx-faiss``   -- :class:`recx.scoring.faiss_backend.FaissTopK` + the same metrics (all users);
3. ``naive-loop``   -- one user at a time in Python (score, mask, ``topk``, metrics with sets), on a subset;
4. ``torchmetrics`` -- dense ``RetrievalRecall``/``RetrievalNormalizedDCG(top_k=20)`` over flat
   ``(preds, target, indexes)`` of every unseen item, on a subset small enough for memory.

Each method runs in a fresh ``spawn`` subprocess that builds the same data, warms up, then measures wall time. The peak
RSS increase covers warm-up and run, against the process's own baseline (the RSS after imports and data); it comes
from the kernel's high-water mark (``VmHWM``), reset at the baseline through ``/proc/self/clear_refs``; where that is
not possible it falls back to sampling ``VmRSS`` every millisecond. Subset methods report users/s measured on the
subset; their full-size times are extrapolations and are labelled so.

Usage: ``python scripts/bench_scoring.py`` (20k users x 50k items, d=64, a few minutes on 2 cores) or ``--quick``.
This is a benchmark, not a test; it is never imported by recx.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import resource
import threading
import time
from pathlib import Path

METHODS = ("recx-torch", "recx-faiss", "naive-loop", "torchmetrics")
METRICS, KS = ["recall", "ndcg"], [10, 20]


# ------------------------------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak RSS increase (MiB) over the RSS at ``start()``: kernel high-water mark if resettable, else sampling."""

    def start(self) -> None:
        self.base_kb = _status_kb("VmRSS") or 0
        self.mode = "VmHWM"
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: reset VmHWM to the current RSS
            if (_status_kb("VmHWM") or 0) > self.base_kb * 1.05 + 1024:
                raise OSError("high-water mark was not reset")
        except OSError:
            self.mode = "sampled"
            self._peak_kb, self._stop = self.base_kb, threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak_kb = max(self._peak_kb, _status_kb("VmRSS") or 0)
            time.sleep(0.001)

    def stop(self) -> float:
        if self.mode == "VmHWM":
            peak_kb = _status_kb("VmHWM") or 0
        else:
            self._stop.set()
            self._thread.join()
            peak_kb = self._peak_kb
        return max(0, peak_kb - self.base_kb) / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------------- data
def make_data(n_users: int, n_items: int, dim: int, seed: int, n_seen: int = 20, n_truth: int = 5):
    """Random embeddings where each user's vector leans towards its held-out items, so metrics are not all zero."""
    import torch

    from recx.data.interactions import pairs_to_csr

    g = torch.Generator().manual_seed(seed)
    item_vecs = torch.randn(n_items, dim, generator=g) / math.sqrt(dim)
    users = torch.arange(n_users)
    truth_items = torch.randint(0, n_items, (n_users, n_truth), generator=g)
    seen_items = torch.randint(0, n_items, (n_users, n_seen), generator=g)
    truth_indptr, truth_indices = pairs_to_csr(
        torch.stack([users.repeat_interleave(n_truth), truth_items.flatten()], 1), n_users, n_items)
    seen_pairs = torch.stack([users.repeat_interleave(n_seen), seen_items.flatten()], 1)
    # a held-out item is never also a seen item
    truth_keys = truth_indices + torch.repeat_interleave(users, truth_indptr.diff()) * n_items
    seen_keys = seen_pairs[:, 0] * n_items + seen_pairs[:, 1]
    seen_indptr, seen_indices = pairs_to_csr(seen_pairs[~torch.isin(seen_keys, truth_keys)], n_users, n_items)
    signal = item_vecs[truth_items].mean(1) * 2.0
    user_vecs = (signal + torch.randn(n_users, dim, generator=g) / math.sqrt(dim)).contiguous()
    return user_vecs, item_vecs.contiguous(), (seen_indptr, seen_indices), (truth_indptr, truth_indices)


def subset(n_users: int, size: int):
    """An evenly spaced, deterministic subset of user ids."""
    import torch

    size = max(1, min(size, n_users))
    return torch.linspace(0, n_users - 1, size).round().long().unique()


# ------------------------------------------------------------------------------------------------ methods
def run_recx(args, data, backend: str, users):
    """Rank with a recx backend and compute Recall/NDCG@{10,20} per user from the hit matrix.

    The held-out keys are built once (``truth_keys``) and probed per chunk (``hits_from_keys``), as
    ``TopKMetrics`` does; ``hit_matrix`` rebuilds them on every call, which would dominate at 45 chunks.
    """
    import torch

    from recx.metrics.topk import compute_topk_metrics, hits_from_keys, truth_keys
    from recx.scoring import make_ranker

    user_vecs, item_vecs, (seen_indptr, seen_indices), (truth_indptr, truth_indices) = data
    ranker = make_ranker(backend, k=args.k, seen_indptr=seen_indptr, seen_indices=seen_indices,
                         memory_budget_mb=args.memory_budget_mb)
    keys = truth_keys(truth_indptr, truth_indices, args.items)
    per_user = {f"{m}@{k}": [] for m in METRICS for k in KS}
    for users_chunk, items, _ in ranker.rank_vectors(user_vecs, item_vecs, users):
        hits = hits_from_keys(items, users_chunk, keys, args.items)
        n_pos = truth_indptr[users_chunk + 1] - truth_indptr[users_chunk]
        for key, value in compute_topk_metrics(hits, n_pos, METRICS, KS).items():
            per_user[key].append(value)
    return {key: torch.cat(values) for key, values in per_user.items()}


def run_naive(args, data, users):
    """The textbook loop: one user at a time, Python sets for hits."""
    import torch

    user_vecs, item_vecs, (seen_indptr, seen_indices), (truth_indptr, truth_indices) = data
    discounts = [1.0 / math.log2(r + 2) for r in range(max(KS))]
    per_user = {f"{m}@{k}": [] for m in METRICS for k in KS}
    for u in users.tolist():
        scores = item_vecs @ user_vecs[u]
        scores[seen_indices[seen_indptr[u]:seen_indptr[u + 1]]] = float("-inf")
        ranked = torch.topk(scores, args.k).indices.tolist()
        truth = set(truth_indices[truth_indptr[u]:truth_indptr[u + 1]].tolist())
        for k in KS:
            hit_ranks = [r for r, item in enumerate(ranked[:k]) if item in truth]
            per_user[f"recall@{k}"].append(len(hit_ranks) / max(1, len(truth)))
            idcg = sum(discounts[: min(len(truth), k)])
            per_user[f"ndcg@{k}"].append(sum(discounts[r] for r in hit_ranks) / idcg if idcg else 0.0)
    return {key: torch.tensor(values) for key, values in per_user.items()}


def run_torchmetrics(args, data, users):
    """Dense retrieval metrics over every unseen (user, item) pair of the subset: the generic-library route."""
    import torch
    from torchmetrics.retrieval import RetrievalNormalizedDCG, RetrievalRecall

    user_vecs, item_vecs, (seen_indptr, seen_indices), (truth_indptr, truth_indices) = data
    scores = user_vecs[users] @ item_vecs.T
    rows = torch.arange(users.numel())

    shape = scores.shape

    def dense(indptr, indices):
        counts = indptr[users + 1] - indptr[users]
        flat = torch.cat([indices[indptr[u]:indptr[u + 1]] for u in users.tolist()])
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[rows.repeat_interleave(counts), flat] = True
        return mask

    keep = ~dense(seen_indptr, seen_indices)
    target = dense(truth_indptr, truth_indices)
    indexes = rows.unsqueeze(1).expand_as(scores)
    preds, target, indexes = scores[keep], target[keep], indexes[keep]
    del scores, keep
    out = {}
    for name, metric in (("recall@20", RetrievalRecall(top_k=20)), ("ndcg@20", RetrievalNormalizedDCG(top_k=20))):
        metric.update(preds, target, indexes=indexes)
        out[name] = metric.compute().reshape(1)  # torchmetrics returns the mean only
    return out


# ------------------------------------------------------------------------------------------------- child
def child(method: str, args: argparse.Namespace, queue) -> None:
    """One method in a fresh process: imports, data, warm-up, then the measured run; results go to ``queue``."""
    try:
        import torch

        torch.set_num_threads(args.threads)
        if method == "recx-faiss":
            import faiss

            faiss.omp_set_num_threads(args.threads)
        if method == "torchmetrics":
            import torchmetrics.retrieval  # noqa: F401 - import cost is not evaluation cost
        import recx.metrics.topk  # noqa: F401
        import recx.scoring.topk  # noqa: F401

        data = make_data(args.users, args.items, args.dim, args.seed)
        users = {"naive-loop": subset(args.users, args.naive_users),
                 "torchmetrics": subset(args.users, args.torchmetrics_users)}.get(method, torch.arange(args.users))
        run = {"recx-torch": lambda u: run_recx(args, data, "torch", u),
               "recx-faiss": lambda u: run_recx(args, data, "faiss", u),
               "naive-loop": lambda u: run_naive(args, data, u),
               "torchmetrics": lambda u: run_torchmetrics(args, data, u)}[method]
        peak = PeakRSS()
        peak.start()  # before the warm-up, so memory the warm-up leaves cached in the allocator still counts
        run(users[: min(32, users.numel())])  # warm-up: thread pools, lazy imports (a new ranker is built below)
        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        per_user = run(users)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        peak_mb = peak.stop()
        # numpy, not tensors: torch would share tensor storage through file descriptors that die with this process
        queue.put({"method": method, "users": users.numpy(), "seconds": seconds, "cpu": cpu, "load": load,
                   "peak_mb": peak_mb,
                   "peak_mode": peak.mode, "per_user": {key: v.double().numpy() for key, v in per_user.items()}})
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent instead of hanging it
        import traceback

        queue.put({"method": method, "error": f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc()}"})


def run_in_subprocess(method: str, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(method, args, queue))
    proc.start()
    result = queue.get()  # before join(): a full pipe would otherwise deadlock the child
    proc.join()
    if "error" in result:
        raise SystemExit(f"{method} failed:\n{result['error']}")
    return result


# -------------------------------------------------------------------------------------------------- report
def machine_info(threads: int) -> str:
    import faiss
    import torch

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"machine: {model}; cpu_count={os.cpu_count()} (usable {usable}); python {platform.python_version()}; "
            f"torch {torch.__version__} (threads {threads}); faiss {faiss.__version__}")


def report(args, results: dict[str, dict]) -> None:
    base = results.get("recx-torch")
    base_rate = base["users"].size / base["seconds"] if base else None
    header = (f"{'method':<13} {'users':>7} {'time s':>7} {'cpu s':>6} {'load':>5} {'users/s':>8} {'recx-torch x':>12} "
              f"{'full-size s':>11} {'peak MB':>7} {'recall@20':>9} {'ndcg@20':>7} {'max|d ndcg@20|':>14}")
    print(header)
    print("-" * len(header))
    notes = []
    for method in METHODS:
        r = results.get(method)
        if r is None:
            continue
        n = r["users"].size
        rate = n / r["seconds"]
        ratio = f"{base_rate / rate:.2f}" if base_rate else "-"
        full = args.users / rate
        full_txt = f"{full:.1f}" + ("*" if n < args.users else "")
        recall = float(r["per_user"]["recall@20"].mean())
        ndcg = float(r["per_user"]["ndcg@20"].mean())
        if base is None or method == "recx-torch":
            diff = "-"
        elif r["per_user"]["ndcg@20"].size == n:  # per-user values: compare user by user
            diff = f"{float(abs(r['per_user']['ndcg@20'] - base['per_user']['ndcg@20'][r['users']]).max()):.1e}"
        else:  # a mean only (torchmetrics): compare with recx's mean over the same users
            diff = f"{abs(ndcg - float(base['per_user']['ndcg@20'][r['users']].mean())):.1e} (mean)"
        print(f"{method:<13} {n:>7} {r['seconds']:>7.2f} {r['cpu']:>6.2f} {r['load']:>5.2f} {rate:>8.0f} {ratio:>12} "
              f"{full_txt:>11} {r['peak_mb']:>7.0f} {recall:>9.4f} {ndcg:>7.4f} {diff:>14}")
        if r["peak_mode"] != "VmHWM":
            notes.append(f"{method}: peak memory sampled every 1 ms (VmHWM reset unavailable)")
    print()
    print("users/s: users evaluated per second of wall time (ranking + masking + metrics); 'recx-torch x' = how many "
          "times faster recx-torch is than the row's method.")
    print("cpu s: the child's user+sys CPU time during the timed run; load: 1-min load average when it started. Other "
          "busy processes on these cores slow small-op methods (the loop, torchmetrics) far more than chunked ones.")
    print("* full-size s for subset methods is extrapolated from the subset rate (not measured). torchmetrics "
          "computes recall@20 and ndcg@20 only; recx, faiss and the loop compute recall/ndcg@{10,20}.")
    print("peak MB: peak RSS increase over the child's baseline (after imports and data) during warm-up + timed "
          "run. max|d ndcg@20|: largest per-user difference from recx-torch on the same users.")
    for note in notes:
        print(note)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=20, help="length of the ranked lists (>= 20)")
    p.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: torch's default)")
    p.add_argument("--memory-budget-mb", type=float, default=256, help="recx chunk budget for [users x items] scores")
    p.add_argument("--naive-users", type=int, default=1_000, help="subset size for the Python loop")
    p.add_argument("--torchmetrics-users", type=int, default=300,
                   help="subset size for dense torchmetrics (~0.03 s/user at 50k items on 2 idle cores, "
                        "~0.3 s/user when other processes compete; peak ~1.3 GB at 300)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run (seconds)")
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.items, args.dim = 2_000, 5_000, 32
        args.naive_users, args.torchmetrics_users = 200, 100
    if args.k < max(KS):
        p.error(f"--k must be at least {max(KS)} (metrics are computed at {KS})")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    if args.threads is None:
        args.threads = torch.get_num_threads()
    from recx.scoring.topk import chunk_size_for

    print(machine_info(args.threads))
    load = os.getloadavg()[0]
    print(f"1-min load average before the run: {load:.2f}" + ("  (other processes are busy: numbers are noisy)"
                                                               if load > 0.3 else ""))
    print(f"problem: {args.users} users x {args.items} items, d={args.dim}, k={args.k}, ~20 seen + ~5 held-out "
          f"items per user, seed {args.seed}; recx memory budget {args.memory_budget_mb:g} MB "
          f"({chunk_size_for(args.items, args.memory_budget_mb)} users per chunk)", flush=True)
    results = {}
    for method in args.methods:
        t0 = time.perf_counter()
        results[method] = run_in_subprocess(method, args)
        print(f"  {method}: {time.perf_counter() - t0:.1f} s for the whole process (imports, data, warm-up, run)",
              flush=True)
    print()
    report(args, results)


if __name__ == "__main__":
    main()
