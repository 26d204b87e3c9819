"""Examination propensities for inverse-propensity scoring, by a randomisation experiment.

ULTRA's IPW reads propensities from a "randomized" estimator: show the logged lists in random order, so relevance is
independent of rank, and the click-through rate at rank ``k`` relative to rank 0 estimates ``e_k / e_0``. The same
works for any click simulator (PBM, UBM, cascade): for PBM it recovers the examination vector, for UBM and cascade the
position-marginal examination — which is what a position-only propensity can know.
"""

from __future__ import annotations

import torch


def randomized_propensity(click_model, labels: torch.Tensor, mask: torch.Tensor, generator: torch.Generator,
                          rounds: int = 20, popularity: torch.Tensor | None = None) -> torch.Tensor:
    """``[K]`` relative examination per rank (1.0 at rank 0) from ``rounds`` randomly shuffled impressions per list."""
    totals = torch.zeros(labels.shape[1])
    shown = torch.zeros(labels.shape[1])
    for _ in range(rounds):
        noise = torch.rand(labels.shape, generator=generator).masked_fill(~mask, 2.0)
        order = noise.argsort(dim=1)  # real documents first, in random order
        lab, msk = labels.gather(1, order), mask.gather(1, order)
        pop = popularity.gather(1, order) if popularity is not None else None
        clicks = click_model.sample(lab, msk, generator, popularity=pop)
        totals += (clicks * msk).sum(0)
        shown += msk.sum(0)
    ctr = totals / shown.clamp_min(1)
    return (ctr / ctr[0].clamp_min(1e-9)).clamp_min(1e-3)
