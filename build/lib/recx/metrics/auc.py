"""AUC with sampled negatives: the industrial ranking metric LIS and AIS are stated in.

Each held-out positive ``(u, i)`` is compared with ``N`` negatives sampled for the same user; the pair AUC is the share
of negatives scored strictly below the positive, ties counting one half. The reported AUC is the mean over positives
(every held-out interaction weighs the same), which equals the pairwise ROC-AUC of the pooled ``(positive, negative)``
comparisons. Pure tensor functions; the sampling itself is the caller's (and is stated in its results).
"""

from __future__ import annotations

import torch


def pair_auc(positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per-positive AUC ``[P]`` from scores ``positive [P]`` and ``negatives [P, N]`` (ties count 1/2)."""
    if negatives.dim() != 2 or positive.shape[0] != negatives.shape[0]:
        raise ValueError(f"expected positive [P] and negatives [P, N], got {tuple(positive.shape)} and "
                         f"{tuple(negatives.shape)}")
    pos = positive.unsqueeze(1)
    wins = (pos > negatives).float() + 0.5 * (pos == negatives).float()
    return wins.mean(1)


def sampled_auc(positive: torch.Tensor, negatives: torch.Tensor) -> float:
    """Mean of :func:`pair_auc` over positives (NaN when there are none)."""
    if positive.numel() == 0:
        return float("nan")
    return float(pair_auc(positive, negatives).mean())
