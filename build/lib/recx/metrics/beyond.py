"""Beyond-accuracy metrics of a recommender's output, computed from per-item recommendation counts.

All three read ``rec_counts`` (``[n_items]``, how many evaluated users got item ``i`` in their top-K list), which is
the only thing that must be summed across batches and processes; so the accumulator keeps that one vector and these
functions stay pure and cheap. They answer "how much of the catalogue does the model use, and how unevenly", which
accuracy metrics cannot see (a popularity recommender can have decent recall and use 1% of the items).
"""

from __future__ import annotations

import torch
from torch import Tensor


def item_coverage(rec_counts: Tensor, n_items: int) -> float:
    """Share of the ``n_items`` catalogue items that were recommended at least once (in ``[0, 1]``)."""
    if n_items <= 0:
        return 0.0
    return float((rec_counts > 0).sum().item()) / float(n_items)


def average_popularity(rec_counts: Tensor, item_popularity: Tensor) -> float:
    """Mean training popularity of the recommended items, each weighted by how often it was recommended.

    Equal to averaging the popularity over every (user, slot) of the top-K lists, i.e. RecBole's AveragePopularity
    when every list is full; ``-1`` (empty) slots are not recommendations and do not enter the mean. Returns 0 when
    nothing was recommended.
    """
    counts = rec_counts.to(torch.float64)
    total = counts.sum()
    if total.item() == 0:
        return 0.0
    pop = item_popularity.to(device=counts.device, dtype=torch.float64)
    return float(((counts * pop).sum() / total).item())


def gini(rec_counts: Tensor) -> float:
    """Gini index of the recommendation counts over ALL catalogue items (never-recommended items count as 0).

    With the counts sorted ascending, ``x_(1) <= ... <= x_(n)``::

        G = sum_i (2i - n - 1) * x_(i) / (n * sum_i x_i)

    which equals the mean absolute difference over all ordered pairs divided by twice the mean,
    ``sum_ij |x_i - x_j| / (2 n^2 mean(x))``. It is 0 when every item is recommended equally often and
    ``(n - 1) / n`` (-> 1) when a single item takes every recommendation. Items that are never recommended are kept on
    purpose: ignoring them would call a model that uses 10 items uniformly perfectly "equal". All-zero counts give 0.
    """
    x = torch.sort(rec_counts.reshape(-1).to(torch.float64)).values
    n = x.numel()
    total = x.sum()
    if n == 0 or total.item() == 0:
        return 0.0
    coef = 2.0 * torch.arange(1, n + 1, dtype=torch.float64, device=x.device) - n - 1
    return float(((coef * x).sum() / (n * total)).item())
