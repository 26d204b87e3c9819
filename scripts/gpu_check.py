"""GPU check: prove ``hardware=gpu``, ``hardware=bf16`` and ``hardware=ddp`` end to end, in one run of a few minutes.

On a machine with CUDA (``bash scripts/gpu_check.sh`` sets up and calls this):

1. **one model per family, GPU vs CPU** — the same short run (same seed, generated data) with ``hardware=gpu`` and
   ``hardware=cpu``; both must finish and their test metrics agree within ``--tolerance`` (training on two devices
   drifts apart a little: CUDA kernels and CUDA dropout differ from the CPU's);
2. **re-scoring is device-independent** — the GPU checkpoints of the Lightning families (top-N, LTR) re-scored on the
   CPU with ``recx eval`` give the GPU run's test numbers (to 1e-4);
3. **bf16** — LightGCN with ``hardware=bf16`` trains and lands within ``--tolerance`` of fp32; HeartLang masked
   pretraining (tiny, on a GPU-trained VQ-HBR) with ``hardware=bf16`` lands within 2 % of its fp32 masked loss;
4. **full-ranking scoring speed** — ``TorchTopK`` over 20k users × 50k items (d = 64, ~20 seen items per user masked),
   GPU vs CPU wall time and the overlap of their top-20 lists;
5. **DDP** — two processes (two GPUs when there are two; with one GPU, two gloo processes on the CPU, which is the same
   DDP code path) and one process re-scoring the DDP checkpoint: identical test metrics — for top-N, LTR, HeartLang
   pretraining and the DKT simulator (every family that Lightning fits on batches of data).

Writes ``gpu_check.json`` and ``gpu_check.md`` (the table for the README, with the card's name) into ``--out`` and
exits 1 when a check fails. Generated data only (no download), except FEEDER's LM check, which needs Rotten Tomatoes
through ``RECX_DATA_MIRROR`` and is skipped without it. This is a script, never imported by recx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from recx.reproduce import metric_value, run_step

GPU, CPU, BF16 = ["hardware=gpu"], ["hardware=cpu"], ["hardware=bf16"]

#: family -> (recx arguments of one short run, the metric compared, whether `recx eval ckpt=` can re-score it)
FAMILIES = {
    "topn": (["train", "model=lightgcn", "dataset=synthetic_mm", "trainer.max_epochs=5",
              "callbacks.lis.enabled=false"], "test.recall@20", True),
    "ltr": (["train", "model=listnet", "dataset=synthetic_ltr", "trainer.max_epochs=5"], "test.ndcg@10", True),
    "interactive": (["train", "model=magus", "model/base=bpr", "dataset=synthetic_mm"], "test.success@5", False),
    "pathrec": (["train", "model=dkt", "dataset=synthetic_kt", "model.epochs=3"], "test.auc", True),
    "ecg": (["eval", "model=heartlang_probe", "dataset=synthetic_ecg", "label_fraction=1.0"], "test.auroc@1", False),
    "icl": (["eval", "model=icl", "lm=tiny", "dataset=rt_polarity", "selector=similarity", "shots=2",
             "model.test_size=50", "model.encoder=tfidf"], "test.accuracy", False),
}


def recx(args: list[str], run_dir: Path, log: Path) -> tuple[dict | None, float, str]:
    """One ``python -m recx.cli`` run into ``run_dir`` (the reproduction suites' runner): (metrics.json or None,
    seconds, the error line of a failed run)."""
    outcome = run_step([*args, f"hydra.run.dir={run_dir}"], run_dir=run_dir, log_path=log, timeout_s=None)
    ok = outcome["status"] == "ok"
    return (json.loads((run_dir / "metrics.json").read_text()) if ok else None), outcome["seconds"], \
        outcome["error"] or ""


def scoring_timing(users: int, items: int, dim: int, repeats: int = 3, device: str = "cuda") -> dict:
    """TorchTopK over all users on the CPU and ``device``: best-of-``repeats`` seconds and the top-20 overlap."""
    import torch

    from recx.data.interactions import pairs_to_csr
    from recx.scoring.topk import TorchTopK

    g = torch.Generator().manual_seed(0)
    user_vecs, item_vecs = torch.randn(users, dim, generator=g), torch.randn(items, dim, generator=g)
    seen = torch.stack([torch.arange(users).repeat_interleave(20),
                        torch.randint(0, items, (users * 20,), generator=g)], 1)
    indptr, indices = pairs_to_csr(seen, users, items)
    out = {"users": users, "items": items, "dim": dim}
    lists = {}
    for name, where in (("cpu", "cpu"), ("cuda", device)):
        ranker = TorchTopK(k=20, seen_indptr=indptr, seen_indices=indices, memory_budget_mb=1024, device=where)
        uv, iv = user_vecs.to(where), item_vecs.to(where)
        best = float("inf")
        for _ in range(repeats + 1):  # the first is a warm-up
            if where == "cuda":
                torch.cuda.synchronize()
            tic = time.perf_counter()
            items_top, _ = ranker.rank_all_vectors(uv, iv, torch.arange(users))
            if where == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - tic)
        out[f"{name}_seconds"] = round(best, 4)
        lists[name] = items_top.cpu()
    same = (lists["cpu"].sort(1).values == lists["cuda"].sort(1).values).float().mean().item()
    out["top20_agreement"] = round(same, 5)
    out["speedup"] = round(out["cpu_seconds"] / max(out["cuda_seconds"], 1e-9), 1)
    return out


#: HeartLang masked pretraining (tiny); the quantizer's checkpoint is appended once trained
HEARTLANG = ["train", "model=heartlang", "dataset=synthetic_ecg", "model.epochs=3"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=f"outputs/gpu_check/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    p.add_argument("--tolerance", type=float, default=0.05, help="GPU vs CPU training: largest metric gap")
    p.add_argument("--quick", action="store_true", help="smaller scoring problem (seconds)")
    p.add_argument("--dry-run-on-cpu", action="store_true",
                   help="no GPU: run every step with the CPU standing in for the GPU (checks this script itself)")
    args = p.parse_args(argv)
    global GPU, BF16
    if args.dry_run_on_cpu:
        GPU, BF16 = CPU, CPU

    import torch

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RECX_DATA_DIR", str(out / "data"))  # inherited by every recx process
    os.environ["WANDB_MODE"] = "disabled"
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)" if args.dry_run_on_cpu \
        else None
    report: dict = {"card": card, "gpus": torch.cuda.device_count(), "torch": torch.__version__, "checks": []}
    if card is None:
        print("no CUDA device: this check needs a GPU (hardware=gpu would be refused)", file=sys.stderr)
        return 2

    def check(name: str, passed: bool | None, detail: str, **extra) -> None:
        status = "skipped" if passed is None else "pass" if passed else "FAIL"
        report["checks"].append({"check": name, "status": status, "detail": detail, **extra})
        print(f"{status:>7}  {name}: {detail}", flush=True)

    for family, (base, metric, rescore) in FAMILIES.items():
        if family == "icl" and not os.environ.get("RECX_DATA_MIRROR"):
            check(f"{family} GPU vs CPU", None, "Rotten Tomatoes needs RECX_DATA_MIRROR")
            continue
        results = {}
        for device, hw in (("cpu", CPU), ("gpu", GPU)):
            metrics, seconds, tail = recx([*base, *hw, "seed=1"], out / family / device,
                                          out / f"{family}-{device}.log")
            results[device] = (metrics, seconds, tail)
        (m_cpu, s_cpu, t_cpu), (m_gpu, s_gpu, t_gpu) = results["cpu"], results["gpu"]
        a, b = metric_value(m_cpu, metric), metric_value(m_gpu, metric)
        if a is None or b is None:
            check(f"{family} GPU vs CPU", False, f"a run failed: cpu '{t_cpu}' / gpu '{t_gpu}'")
            continue
        check(f"{family} GPU vs CPU", abs(a - b) <= args.tolerance,
              f"{metric} cpu {a:.4f} ({s_cpu:.0f} s) vs gpu {b:.4f} ({s_gpu:.0f} s)",
              metric=metric, cpu=a, gpu=b, cpu_seconds=round(s_cpu, 1), gpu_seconds=round(s_gpu, 1))
        if rescore:
            ckpt = out / family / "gpu" / "checkpoints" / "best.ckpt"
            m_eval, _, tail = recx(["eval", f"ckpt={ckpt}", *CPU], out / family / "gpu-rescored-on-cpu",
                                   out / f"{family}-rescore.log")
            c = metric_value(m_eval, metric)
            check(f"{family} GPU checkpoint re-scored on CPU", c is not None and abs(c - b) <= 1e-4,
                  f"{metric} gpu run {b:.6f} vs cpu re-score {c if c is None else f'{c:.6f}'}")

    base, metric, _ = FAMILIES["topn"]
    m_bf16, seconds, tail = recx([*base, *BF16, "seed=1"], out / "topn" / "bf16", out / "topn-bf16.log")
    fp32 = next((c["gpu"] for c in report["checks"] if c["check"] == "topn GPU vs CPU" and "gpu" in c), None)
    v = metric_value(m_bf16, metric)
    check("topn bf16 vs fp32 (GPU)", v is not None and fp32 is not None and abs(v - fp32) <= args.tolerance,
          f"{metric} bf16 {v:.4f} vs fp32 {fp32:.4f} ({seconds:.0f} s)" if v is not None and fp32 is not None
          else f"failed: {tail}")

    # HeartLang pretraining: the quantizer once (GPU), then fp32 vs bf16 pretraining on it
    vq_dir = out / "ecg" / "vqhbr"
    m_vq, _, tail = recx(["train", "model=vqhbr", "dataset=synthetic_ecg", "model.epochs=3", *GPU, "seed=1"], vq_dir,
                         out / "vqhbr.log")
    tokenizer = f"tokenizer.ckpt={vq_dir / 'checkpoints' / 'best.ckpt'}"
    HEARTLANG.append(tokenizer)
    if m_vq is None:
        check("heartlang bf16 vs fp32 (GPU)", False, f"VQ-HBR failed: {tail}")
    else:
        runs = {name: recx([*HEARTLANG, *hw, "seed=1"], out / "ecg" / f"heartlang-{name}", out / f"heartlang-{name}.log")
                for name, hw in (("fp32", GPU), ("bf16", BF16))}
        a, b = (metric_value(runs[n][0], "test.masked_loss") for n in ("fp32", "bf16"))
        check("heartlang bf16 vs fp32 (GPU)", a is not None and b is not None and abs(a - b) <= 0.02 * abs(a),
              f"test.masked_loss fp32 {a:.4f} ({runs['fp32'][1]:.0f} s) vs bf16 {b:.4f} ({runs['bf16'][1]:.0f} s)"
              if a is not None and b is not None else f"failed: {runs['fp32'][2]} / {runs['bf16'][2]}")

    timing = scoring_timing(*((4_000, 10_000, 64) if args.quick else (20_000, 50_000, 64)),
                            device="cpu" if args.dry_run_on_cpu else "cuda")
    report["scoring"] = timing
    check("full-ranking scoring GPU vs CPU", timing["top20_agreement"] >= 0.999,
          f"{timing['users']:,} users × {timing['items']:,} items: cpu {timing['cpu_seconds']} s, "
          f"gpu {timing['cuda_seconds']} s ({timing['speedup']}×), top-20 agreement {timing['top20_agreement']}")

    two_gpus = torch.cuda.device_count() >= 2 and not args.dry_run_on_cpu
    ddp = ["hardware=ddp", "hardware.devices=2"] + ([] if two_gpus else ["hardware.accelerator=cpu",
                                                                          "hardware.num_threads=1"])
    where = "2 GPUs" if two_gpus else "2 CPU processes (gloo; one GPU visible)"
    ddp_runs = {"topn": FAMILIES["topn"][:2], "ltr": FAMILIES["ltr"][:2], "pathrec": FAMILIES["pathrec"][:2],
                "heartlang": (HEARTLANG, "test.masked_loss")}
    for family, (base, metric) in ddp_runs.items():
        m_ddp, seconds, tail = recx([*base, *ddp, "seed=1"], out / family / "ddp", out / f"{family}-ddp.log")
        if m_ddp is None:
            check(f"{family} DDP ({where})", False, f"failed: {tail}")
            continue
        ckpt = out / family / "ddp" / "checkpoints" / "best.ckpt"
        m_one, _, tail = recx(["eval", f"ckpt={ckpt}", *(GPU if two_gpus else CPU)], out / family / "ddp-one",
                              out / f"{family}-ddp-one.log")
        exact = {k: v for k, v in m_ddp["test"].items() if k != "clicks_ubm@10"}  # Monte Carlo per process
        same = m_one is not None and all(abs(v - m_one["test"].get(k, float("nan"))) <= 1e-6 for k, v in exact.items())
        check(f"{family} DDP ({where}) vs one process", same,
              f"{metric} ddp {metric_value(m_ddp, metric):.6f} vs one process "
              f"{f'{metric_value(m_one, metric):.6f}' if m_one else 'failed'} ({m_ddp.get('processes')} processes, "
              f"{seconds:.0f} s)")

    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    report["passed"] = not failed
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    lines = [f"GPU check on {card} ({report['gpus']} visible), torch {report['torch']}: "
             f"{'all passed' if not failed else f'{len(failed)} failed'}", "",
             "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {c['check']} | {c['status']} | {c['detail']} |" for c in report["checks"]]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
