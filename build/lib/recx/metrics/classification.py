"""Binary classification metrics as pure tensor functions (knowledge tracing, probes)."""

from __future__ import annotations

import torch


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC-AUC by the Mann-Whitney rank statistic, ties given their average rank (sklearn's ``roc_auc_score``).

    NaN when only one class is present.
    """
    scores, labels = scores.flatten().double(), labels.flatten().bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = scores.argsort()
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.double)
    # average ranks over ties: group equal scores
    unique, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts + 1
    average = (first + (counts - 1) / 2.0).double()
    ranks[order] = average[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_accuracy(probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> float:
    return float(((probs.flatten() >= threshold) == labels.flatten().bool()).double().mean())


def macro_auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean of the per-class ROC-AUCs ``[N, C]`` (sklearn's ``roc_auc_score(average="macro")``); classes with a
    single value in ``labels`` have no AUC and are left out (PTB-XL at 1 % of labels can have such columns)."""
    values = [binary_auc(probs[:, c], labels[:, c]) for c in range(labels.shape[1])]
    defined = [v for v in values if v == v]
    return float(sum(defined) / len(defined)) if defined else float("nan")
