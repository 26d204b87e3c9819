"""Benchmark: the LIS callback's cost, as a share of training, and its vectorised signals against a per-user loop.

1. Trains ``--model`` on ``--dataset`` with ``recx``'s defaults (the LIS callback on: representations ``model`` +
   every dataset modality, preferences train/valid/test) and prints training time, the callback's wall time and its
   share of training time.
2. Computes the same history signals (one representation, one preference graph) for every user twice: recx's
   sparse-product implementation and a naive per-user Python loop, and prints the speed ratio and the largest
   difference between the two.

Usage: ``python scripts/bench_lis.py [--dataset ml100k --model lightgcn --epochs 100]`` (needs the dataset, e.g.
``RECX_DATA_MIRROR=../shared/data``; ml100k's text modality needs the ``text`` extra). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def train_with_lis(dataset: str, model: str, epochs: int, run_dir: Path) -> dict:
    from hydra import compose, initialize_config_dir

    from recx.run import train

    with initialize_config_dir(config_dir=str(REPO / "recx" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", f"dataset={dataset}", f"trainer.max_epochs={epochs}",
                                          "logger=none", "progress=false", f"paths.run_dir={run_dir}"])
    return train(cfg)


def naive_signals(data, vectors: torch.Tensor, graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: for each user, average the candidate's similarity to each history item, one user at a time."""
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    dense = graph.to_dense()
    rep = torch.zeros(data.n_users, data.n_items)
    pref = torch.zeros(data.n_users, data.n_items)
    train = data.train
    for u in range(data.n_users):
        items = train[train[:, 0] == u, 1].unique()
        if items.numel() == 0:
            continue
        rep[u] = (unit[items] @ unit.T).mean(0)
        pref[u] = dense[items].mean(0)
    return rep, pref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()

    from recx.lis.preference import normalise_graph, period_coengagement
    from recx.lis.signals import History, PreferenceSignal, RepresentationSignal

    run_dir = Path(tempfile.mkdtemp(prefix="bench-lis-"))
    results = train_with_lis(args.dataset, args.model, args.epochs, run_dir)
    lis = results["lis"]
    n_signals = len(lis.get("representations", {})) + len(lis.get("preferences", {}))
    print(f"\n{args.model} on {args.dataset}: {results['epochs_trained'] + 1} epochs, training {results['train_time_s']:.1f} s; "
          f"LIS callback ({n_signals} signals + the base) {lis['wall_time_s']:.2f} s = "
          f"{100 * lis['share_of_training_time']:.1f} % of training time, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from recx.data.prepare import prepare

    with initialize_config_dir(config_dir=str(REPO / "recx" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset={args.dataset}"])
    modality = list(cfg.dataset.modalities)[0]
    data = prepare(instantiate(cfg.dataset.source), instantiate(cfg.dataset.split), Path(cfg.paths.data_dir),
                   modalities=(modality,))
    vectors = data.item_features[modality]
    graph = normalise_graph(period_coengagement(data, "test"))

    started = time.perf_counter()
    history = History(*data.seen_csr(("train",)), data.n_items)
    users = torch.arange(data.n_users)
    rep = RepresentationSignal(history, vectors)(users)
    pref = PreferenceSignal(history, graph)(users)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    rep_ref, pref_ref = naive_signals(data, vectors, graph)
    naive = time.perf_counter() - started
    diff = max(float((rep - rep_ref).abs().max()), float((pref - pref_ref).abs().max()))
    print(f"\nhistory signals for all {data.n_users} users x {data.n_items} items ({modality} representation + "
          f"test-period co-engagement):")
    print(f"{'method':<34} {'seconds':>8} {'recx is … x faster':>19}")
    print(f"{'recx (sparse products, batched)':<34} {ours:>8.3f} {1.0:>19.1f}")
    print(f"{'naive per-user loop':<34} {naive:>8.3f} {naive / ours:>19.1f}")
    print(f"largest difference between the two: {diff:.2e}")


if __name__ == "__main__":
    main()
