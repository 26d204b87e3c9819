"""The logging ranker: which documents a simulated user was shown, and in which order.

Unbiased-LTR experiments (ULTRA's protocol) show users the top ``cutoff`` documents of a *production ranker* trained
on a small labelled fraction of the training queries (ULTRA: SVMrank on 1%), and simulate clicks on those lists.
Here the production ranker is a ridge regression of the labels on the features of ``fraction`` of the training
queries (at least ``min_queries``), chosen with a seeded generator — a weak but better-than-random ranker, so the
clicks carry both relevance and position bias. ``policy="random"`` shows a random order instead (no ranking bias);
``policy="feature"`` ranks by one feature (1-based ``feature``, e.g. BM25 as a production ranker) — with a feature
unrelated to relevance, clicks reward whatever that feature measures, the hardest case for a naive click learner.
"""

from __future__ import annotations

import torch

from recx.errors import ConfigError
from recx.ltr.data import query_index

POLICIES = ("ridge", "random", "feature")


def fit_ridge(features: torch.Tensor, labels: torch.Tensor, l2: float = 1.0) -> torch.Tensor:
    """``w = (XᵀX + l2·I)⁻¹ Xᵀy`` with a bias column; returns ``[F + 1]``."""
    x = torch.cat([features.double(), torch.ones(features.shape[0], 1, dtype=torch.double)], 1)
    gram = x.T @ x + l2 * torch.eye(x.shape[1], dtype=torch.double)
    return torch.linalg.solve(gram, x.T @ labels.double()).float()


def logged_lists(features: torch.Tensor, labels: torch.Tensor, offsets: torch.Tensor, cutoff: int = 10,
                 policy: str = "ridge", fraction: float = 0.01, min_queries: int = 2, l2: float = 1.0,
                 seed: int = 0, feature: int | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The shown lists of every query: ``(rows [Q, cutoff] document rows in display order, mask [Q, cutoff], info)``.

    Vectorised: logging scores for all documents at once, padded to ``[Q, max_len]`` (scores only, not features),
    one ``topk`` per query.
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown logging policy '{policy}'", field="dataset.datamodule.logging_policy",
                          fix=f"use one of {list(POLICIES)}")
    generator = torch.Generator().manual_seed(seed)
    n_queries = offsets.numel() - 1
    qi = query_index(offsets)
    info: dict = {"policy": policy, "cutoff": cutoff}
    if policy == "ridge":
        n_fit = min(n_queries, max(min_queries, round(fraction * n_queries)))
        chosen = torch.randperm(n_queries, generator=generator)[:n_fit]
        in_fit = torch.zeros(n_queries, dtype=torch.bool)
        in_fit[chosen] = True
        rows = in_fit[qi]
        w = fit_ridge(features[rows], labels[rows].float(), l2)
        scores = features @ w[:-1] + w[-1]
        info.update({"fit_queries": n_fit, "fit_fraction": fraction, "l2": l2})
    elif policy == "feature":
        if feature is None or not 1 <= feature <= features.shape[1]:
            raise ConfigError(f"logging policy 'feature' needs a feature index in 1..{features.shape[1]}, got {feature}",
                              field="dataset.datamodule.logging_feature", fix="set logging_feature=<1-based index>")
        scores = features[:, feature - 1].clone()
        info["feature"] = feature
    else:
        scores = torch.rand(features.shape[0], generator=generator)
    lengths = offsets[1:] - offsets[:-1]
    width = int(lengths.max())
    position = torch.arange(width)
    valid = position.unsqueeze(0) < lengths.unsqueeze(1)
    row_index = (offsets[:-1].unsqueeze(1) + position.unsqueeze(0)).clamp_max(features.shape[0] - 1)
    padded = scores[row_index].masked_fill(~valid, float("-inf"))
    k = min(cutoff, width)
    top = padded.topk(k, dim=1)
    rows = row_index.gather(1, top.indices)
    mask = torch.isfinite(top.values)
    return rows, mask, info
