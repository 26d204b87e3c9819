"""Benchmark: LTR training throughput (slates/s) per model, and the Plackett-Luce loss against a naive loop.

1. Plackett-Luce negative log-likelihood (forward + backward) of ``--queries`` slates of ``--length`` documents:
   recx's one-pass reversed-logcumsumexp implementation vs. a naive Python implementation (one query at a time, one
   stage at a time, a logsumexp over the remaining documents per stage). Prints both times, the ratio and the largest
   difference between the two losses.
2. Training throughput of every LTR model on MSLR-shaped batches (136 features): label training on slates of
   ``--length`` documents (ListNet, ListMLE, LambdaRank, STARank) and click training on logged top-10 lists
   (IPS-ListNet, DLA, InfoRank): slates per second for forward + backward + Adam step.

Usage: ``python scripts/bench_ltr.py [--queries 256 --length 100 --batches 20]``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import time

import torch

from recx.ltr.losses import ideal_order, plackett_luce_nll


def naive_pl_nll(scores: torch.Tensor, order: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per query, per stage: ``logsumexp(remaining) − s_chosen``."""
    total = scores.new_zeros(())
    for q in range(scores.shape[0]):
        n = int(lengths[q])
        chosen = scores[q][order[q, :n]]
        for t in range(n):
            total = total + torch.logsumexp(chosen[t:], 0) - chosen[t]
    return total


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    out = None
    started = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - started) / repeat, out


def bench_pl(queries: int, length: int) -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(length // 2, length + 1, (queries,), generator=g)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    targets = torch.randint(0, 5, (queries, length), generator=g)
    order = ideal_order(targets, mask, g)
    base = torch.randn(queries, length, generator=g)

    def fast():
        s = base.clone().requires_grad_(True)
        loss = plackett_luce_nll(s, order, mask).sum()
        loss.backward()
        return loss.detach()

    def naive():
        s = base.clone().requires_grad_(True)
        loss = naive_pl_nll(s, order, lengths)
        loss.backward()
        return loss.detach()

    t_fast, l_fast = timed(fast, 20)
    t_naive, l_naive = timed(naive, 1)
    print(f"Plackett-Luce NLL, {queries} slates x up to {length} docs (forward + backward):")
    print(f"  recx (vectorised)  {t_fast * 1e3:9.2f} ms")
    print(f"  naive Python loop  {t_naive * 1e3:9.2f} ms   -> {t_naive / t_fast:,.0f}x faster; "
          f"|loss difference| {abs(float(l_fast) - float(l_naive)):.2e} (loss {float(l_fast):.1f})")


def model_zoo(n_features: int):
    from recx.ltr.models.inforank import InfoRank
    from recx.ltr.models.rankers import DLA, IPSListNet, LambdaRank, ListMLE, ListNet
    from recx.ltr.models.starank import STARank

    labels = {"listnet": ListNet, "listmle": ListMLE, "lambdarank": LambdaRank, "starank": STARank}
    clicks = {"ips_listnet": IPSListNet, "dla": DLA, "inforank": InfoRank}
    return ({k: v(n_features) for k, v in labels.items()}, {k: v(n_features) for k, v in clicks.items()})


def bench_models(batch: int, length: int, batches: int, n_features: int = 136) -> None:
    g = torch.Generator().manual_seed(1)
    label_models, click_models = model_zoo(n_features)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    label_batch = {"features": torch.randn(batch, length, n_features, generator=g),
                   "mask": torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1),
                   "targets": torch.randint(0, 5, (batch, length), generator=g).float()}
    click_batch = {"features": torch.randn(batch, 10, n_features, generator=g),
                   "mask": torch.ones(batch, 10, dtype=torch.bool),
                   "targets": (torch.rand(batch, 10, generator=g) < 0.2).float(),
                   "positions": torch.arange(10).expand(batch, 10).contiguous(),
                   "propensity": torch.linspace(1.0, 0.1, 10).expand(batch, 10).contiguous(),
                   "popularity": torch.rand(batch, 10, generator=g)}
    print(f"\nTraining throughput ({torch.get_num_threads()} threads; batches of {batch} slates, {n_features} "
          f"features; labels: up to {length} docs per slate, clicks: logged top-10):")
    for kind, models, data in (("labels", label_models, label_batch), ("clicks", click_models, click_batch)):
        for name, net in models.items():
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)

            def step():
                opt.zero_grad()
                net.loss(data).backward()
                opt.step()

            step()  # warm-up
            seconds, _ = timed(step, batches)
            print(f"  {name:12s} ({kind:6s})  {batch / seconds:10,.0f} slates/s   {seconds * 1e3:8.1f} ms/batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    bench_pl(args.queries, args.length)
    bench_models(args.batch, args.length, args.batches)


if __name__ == "__main__":
    main()
