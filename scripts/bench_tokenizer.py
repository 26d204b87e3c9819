"""Benchmark: MOTOR's tokenizer (product quantisation) on 50,000 items × 4,096-d features (the size of Amazon image
features at Sports/Clothing scale), torch k-means vs faiss, with the relative distortion each reaches.

Features are synthetic but structured (a 64-d latent factor model pushed to 4,096 dims, plus noise), float32, seed 0.
Prints wall time, items/s and distortion per method in one run, with ratios against the faiss reference.
Usage: ``python scripts/bench_tokenizer.py [--items 50000 --dim 4096 --subspaces 4 --centroids 256 --iters 20]``.
This is a benchmark, not a test; it is never imported by recx.
"""

from __future__ import annotations

import argparse
import time

import torch

from recx.topn.motor import motor_item_parameters
from recx.topn.tokenizer import fit_quantizer


def make_features(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 64, generator=g)
    mixing = torch.randn(64, d, generator=g) / 8.0
    return torch.relu(latent @ mixing) + 0.1 * torch.rand(n, d, generator=g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--subspaces", type=int, default=4)
    parser.add_argument("--centroids", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = make_features(args.items, args.dim, 0)
    print(f"{args.items} items x {args.dim}-d float32 ({x.numel() * 4 / 2**20:.0f} MiB), {args.subspaces} sub-spaces "
          f"x {args.centroids} centroids, {args.iters} k-means iterations, torch {torch.__version__}, "
          f"{args.threads} threads")
    rows = []
    for name, kwargs in (("torch k-means (recx default)", {"backend": "torch"}),
                         ("faiss ProductQuantizer", {"backend": "faiss"})):
        started = time.perf_counter()
        q = fit_quantizer(x, args.subspaces, args.centroids, kmeans_iters=args.iters, seed=0, **kwargs)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        q.encode(x)
        encode = time.perf_counter() - started
        rows.append((name, fit, encode, q.distortion))
    reference = rows[-1][1]
    print(f"\n{'method':<30} {'fit s':>8} {'encode s':>9} {'items/s (fit)':>14} {'vs faiss':>9} {'distortion':>11}")
    for name, fit, encode, distortion in rows:
        print(f"{name:<30} {fit:>8.1f} {encode:>9.2f} {args.items / fit:>14,.0f} {reference / fit:>8.2f}x "
              f"{distortion:>11.4f}")
    print("\ndistortion = Σ‖x − x̂‖² / Σ‖x − mean‖² (0 lossless, 1 = the mean vector); 'vs faiss' > 1 means faster.")
    print_parameter_table()


#: catalogue sizes: ml100k, Amazon Baby / Sports / Clothing (MMRec 5-core), this benchmark, a large catalogue
CATALOGUES = (("ml100k", 1_682), ("Amazon Baby", 7_050), ("Amazon Sports", 18_357), ("Amazon Clothing", 23_033),
              ("this benchmark", 50_000), ("1M items", 1_000_000))


def print_parameter_table(dim: int = 64) -> None:
    """Item-side parameters, ID table vs MOTOR (2 modalities × 4 sub-spaces × K ≤ 256, d = 64, 2 cross layers)."""
    print(f"\nitem-side parameters at d={dim}: ID table (n_items·d) vs MOTOR tokens + Token Cross Network")
    print(f"{'catalogue':<16} {'items':>10} {'ID table':>12} {'MOTOR':>10} {'ID / MOTOR':>11}")
    for name, n in CATALOGUES:
        ids, motor = n * dim, motor_item_parameters(n, dim=dim)
        print(f"{name:<16} {n:>10,} {ids:>12,} {motor:>10,} {ids / motor:>10.1f}x")


if __name__ == "__main__":
    main()
