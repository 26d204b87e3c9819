"""Benchmark: the QRS tokenizer's throughput (records/s), against a naive per-beat Python loop in the same run.

Generates ``--records`` 12-lead, 10-s ECGs at 500 Hz (PTB-XL's records500 shape), then times:

1. preprocessing (resample to 100 Hz + band-pass, vectorised over all records and leads);
2. recx's tokenizer (R-peak detection per record + one vectorised gather of all beats and leads);
3. a naive tokenizer: the same detection, then one Python-level slice per beat and lead (the public code's loop),
   and checks that both give identical tokens.

4. (``--detectors``, needs the mirror's MIT-BIH record 208) the two beat detectors on the real record, cut into
   30 windows of 10 s at 100 Hz as the tokenizer sees them (band-passed 0.67-40 Hz): wfdb's XQRS (the official
   detector, recx's default) and recx's Pan-Tompkins-style detector — beats found, agreement (share of each one's
   beats within 50 ms of the other's) and speed (records/s, ratio).

Usage: ``python scripts/bench_ecg.py [--records 1000] [--detectors]``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recx.ecg.qrs import MAX_LEN, TOKEN_LEN, find_r_peaks, preprocess, tokenize_records, windows_of
from recx.ecg.synthetic import generate_ecgs


def naive_tokenize(signal: np.ndarray, fs: int = 100) -> np.ndarray:
    r = find_r_peaks(signal[0], fs)  # the default detector (XQRS), as recx
    length = signal.shape[1]
    tokens = []
    for c in range(signal.shape[0]):
        for i, peak in enumerate(r):
            start = (r[i - 1] + peak) // 2 if i > 0 else max(peak - 48, 0)
            end = (peak + r[i + 1]) // 2 if i < len(r) - 1 else min(peak + 48, length)
            if end - start > TOKEN_LEN:
                start = max(peak - 48, 0)
                end = min(start + TOKEN_LEN, length)
            seg = np.zeros(TOKEN_LEN, np.float32)
            off = max(48 - (peak - start), 0)
            n = min(end - start, TOKEN_LEN - off)
            seg[off:off + n] = signal[c, start:start + n]
            tokens.append(seg)
    out = np.zeros((MAX_LEN, TOKEN_LEN), np.float32)
    if tokens:
        stacked = np.stack(tokens)[:MAX_LEN]
        out[:len(stacked)] = stacked
    return out


def matched(a: np.ndarray, b: np.ndarray, tolerance: int) -> int:
    """How many of ``a``'s beats have one of ``b``'s within ``tolerance`` samples."""
    if not len(a) or not len(b):
        return 0
    return int((np.abs(a[:, None] - b[None, :]).min(1) <= tolerance).sum())


def bench_detectors(repeats: int = 5) -> None:
    import os
    from pathlib import Path

    path = Path(os.environ.get("RECX_DATA_MIRROR", "")) / "ecg" / "mitdb-208-mlii-360hz.dat"
    if not path.is_file():
        print(f"detectors: {path} not found (set RECX_DATA_MIRROR); skipped")
        return
    with np.load(path) as z:
        ecg = (z["ecg"].astype(np.float32) - 1024) / 200
    windows = windows_of(preprocess(ecg[None], 360), 100)[:, 0]
    found, seconds = {}, {}
    for name in ("xqrs", "pan_tompkins"):
        find_r_peaks(windows[0], 100, name)  # imports, warm-up
        tic = time.perf_counter()
        for _ in range(repeats):
            found[name] = [find_r_peaks(w, 100, name) for w in windows]
        seconds[name] = (time.perf_counter() - tic) / repeats
    n = {k: sum(map(len, v)) for k, v in found.items()}
    ours_in = sum(matched(o, q, 5) for o, q in zip(found["pan_tompkins"], found["xqrs"]))
    xqrs_in = sum(matched(q, o, 5) for o, q in zip(found["pan_tompkins"], found["xqrs"]))
    print(f"MIT-BIH 208, {len(windows)} windows of 10 s at 100 Hz:")
    for name in ("xqrs", "pan_tompkins"):
        print(f"  {name:13s} {n[name]:4d} beats  {len(windows) / seconds[name]:8,.0f} records/s")
    print(f"  agreement within 50 ms: {ours_in / max(n['pan_tompkins'], 1):.1%} of recx's beats, "
          f"{xqrs_in / max(n['xqrs'], 1):.1%} of XQRS's; speed ratio recx/XQRS "
          f"{seconds['xqrs'] / seconds['pan_tompkins']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--detectors", action="store_true", help="also compare the beat detectors on MIT-BIH 208")
    args = parser.parse_args()
    if args.detectors:
        bench_detectors()
    signals, _, _, _ = generate_ecgs(args.records, fs=500.0, seed=0)
    tic = time.perf_counter()
    x = preprocess(signals, 500)
    t_pre = time.perf_counter() - tic
    tic = time.perf_counter()
    out = tokenize_records(x, progress=False)
    t_tok = time.perf_counter() - tic
    tic = time.perf_counter()
    naive = np.stack([naive_tokenize(x[i]) for i in range(len(x))])
    t_naive = time.perf_counter() - tic
    same = np.array_equal(naive, out["tokens"])
    print(f"{args.records} records, 12 leads x 10 s at 500 Hz ({out['beats'].mean():.1f} beats per record):")
    print(f"  preprocess (resample 500->100 Hz + band-pass)  {t_pre:7.2f} s   {args.records / t_pre:9,.0f} records/s")
    print(f"  recx tokenizer (detect + vectorised cut)       {t_tok:7.2f} s   {args.records / t_tok:9,.0f} records/s")
    print(f"  naive per-beat loop (same detection)           {t_naive:7.2f} s   {args.records / t_naive:9,.0f} "
          f"records/s  -> recx {t_naive / t_tok:.1f}x; identical tokens: {same}")
    print(f"  end to end (preprocess + tokenize)             {args.records / (t_pre + t_tok):9,.0f} records/s")


if __name__ == "__main__":
    main()
