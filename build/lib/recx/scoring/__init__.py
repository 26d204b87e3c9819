"""Batched full-ranking top-K with seen-item masking: the one scorer every top-N evaluation goes through.

Two backends share one results contract (``(items [U,k], values [U,k])``, score descending then item id ascending,
``-1`` where a user has fewer than ``k`` rankable items):

* ``torch`` (:class:`recx.scoring.topk.TorchTopK`, the default): any model's ``score(users)``, CPU or GPU, exact
  masking;
* ``faiss`` (:class:`recx.scoring.faiss_backend.FaissTopK`): inner-product models only (``user_item_vectors()``);
  measured on a 2-core CPU it is not faster than torch, but it never builds the score matrix.

Nothing heavy is imported here: faiss is loaded only when the faiss backend is asked for.
"""

from __future__ import annotations

from typing import Any

from recx.errors import ConfigError

BACKENDS = ("torch", "faiss")


def make_ranker(backend: str, **kwargs: Any):
    """Build the ranker named ``backend`` ("torch" | "faiss") with ``kwargs`` (k, seen_indptr, seen_indices, ...)."""
    if backend == "torch":
        from recx.scoring.topk import TorchTopK

        return TorchTopK(**kwargs)
    if backend == "faiss":
        from recx.scoring.faiss_backend import FaissTopK

        return FaissTopK(**kwargs)
    raise ConfigError(f"unknown scorer backend {backend!r}", field="metric.scorer", fix=f"use one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "make_ranker"]
