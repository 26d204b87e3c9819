"""LIS — the Leakage Impact Score (arXiv 2508.04963), with AIS for item representations, reconstructed.

:func:`leakage_report` is the one entry point: the post-training callback (:mod:`recx.callbacks.lis`) and the
standalone command (``recx eval lis``) both call it, so for the same inputs they give the same numbers. The definition
is in :mod:`recx.lis.evaluator`; preference data in :mod:`recx.lis.preference`; representations in
:mod:`recx.lis.representation`; the per-(user, item) signals in :mod:`recx.lis.signals`.

This package serves the top-N family (it scores users × items and reuses the family's negative sampler).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from recx.data.interactions import InteractionData
from recx.errors import RecxError


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def leakage_report(data: InteractionData, base: Callable[[torch.Tensor], torch.Tensor], *, net=None,
                   representations: Iterable[str] | str = ("model", "features"),
                   preferences: Iterable[str] | str = ("train", "valid", "test"),
                   modalities: Iterable[str] = (), load_feature: Callable[[str], torch.Tensor] | None = None,
                   negatives: int = 100, seed: int = 0, ks=(10, 20), mask_valid_at_test: bool = True,
                   memory_budget_mb: float = 256, max_positives: int = 100_000, device=None,
                   strict: bool = True) -> dict:
    """Resolve the specs, run :class:`~recx.lis.evaluator.LeakageEvaluator`, and return its results.

    ``base`` is the recommender's ``score(users) -> [B, n_items]``; ``net`` (optional) provides the ``model``
    representation. With ``strict=False`` a spec that cannot be resolved (a model without item vectors, a modality
    that cannot be built) is reported under ``skipped`` instead of failing: the callback must never lose a finished
    training run over one unavailable representation.
    """
    from recx.lis.evaluator import LeakageEvaluator
    from recx.lis.preference import preference_name, resolve_preference
    from recx.lis.representation import expand_representations, representation_name, resolve_representation

    skipped: dict[str, str] = {}
    reports: dict[str, dict] = {}
    vectors: dict[str, torch.Tensor] = {}
    for spec in expand_representations(_as_list(representations), list(modalities)):
        name = representation_name(spec)
        try:
            vectors[name], reports[name] = resolve_representation(spec, data, net=net, load_feature=load_feature)
        except RecxError as exc:
            if strict:
                raise
            skipped[name] = exc.render()
    graphs: dict[str, torch.Tensor] = {}
    for spec in _as_list(preferences):
        name = preference_name(spec)
        try:
            graphs[name], reports[name] = resolve_preference(spec, data, seed=seed)
        except RecxError as exc:
            if strict:
                raise
            skipped[name] = exc.render()
    evaluator = LeakageEvaluator(data, negatives=negatives, ks=ks, seed=seed, mask_valid_at_test=mask_valid_at_test,
                                 memory_budget_mb=memory_budget_mb, max_positives=max_positives, device=device)
    results = evaluator.evaluate(base, vectors, graphs, reports=reports)
    if skipped:
        results["skipped"] = skipped
    return results


def popularity_scores(data: InteractionData, device=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The base recommender when no checkpoint is given: training popularity for every user."""
    popularity = data.item_popularity().float().to(device)

    def score(users: torch.Tensor) -> torch.Tensor:
        return popularity.unsqueeze(0).expand(users.numel(), -1).clone()  # scorers mask in place

    return score


__all__ = ["leakage_report", "popularity_scores"]
