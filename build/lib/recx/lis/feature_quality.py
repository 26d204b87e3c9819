"""Feature quality before training: AlignRec's three classes of intermediate metrics, for any item features.

AlignRec (Liu et al., CIKM 2024) judges multimodal features *before* a full model is trained. The paper's exact
protocols were not retrievable (see the research notes); recx implements the three classes as follows, each a full
ranking with the shared scorer and metrics (training items masked, plus validation items when the run masks them):

* **zero-shot** — no training at all: ``s(u, i) = cos(mean_{j∈H_u} x̂_j, x̂_i)``, the user as the mean of the L2-normalised
  features of the items in their training history ``H_u`` (the AIS representation signal of :mod:`recx.lis.signals`);
* **item-CF** — item-based collaborative filtering on feature similarity: ``s(u, i) = Σ_{j∈H_u} sim_k(j, i)`` where
  ``sim_k`` keeps each history item's ``knn_k`` most cosine-similar items (weights = cosine);
* **masked** — robustness: zero-shot again with one modality's features removed for a ``mask_ratio`` share of the
  items (seeded), per modality; only for inputs that have several modalities.

All three are pure functions of the features and the training interactions, so they rank feature sets (raw,
AlignRec's, MOTOR's reconstructions, a user's ``.npy``) on equal terms and in seconds.
"""

from __future__ import annotations

import warnings

import torch

from recx.data.interactions import InteractionData, pairs_to_csr
from recx.lis.signals import History, RepresentationSignal, unit_rows
from recx.metrics.topk import TopKMetrics
from recx.scoring.topk import TorchTopK
from recx.topn.knn import topk_cosine


def ranking_metrics(data: InteractionData, score_fn, *, split: str = "test", ks=(10, 20),
                    mask_valid_at_test: bool = True, memory_budget_mb: float = 256) -> dict[str, float]:
    """Recall/NDCG@K of ``score_fn(users) -> [B, n_items]`` on ``split`` with the shared scorer and metrics."""
    held_out = data.split(split)
    masked = ("train",) if split == "valid" or not mask_valid_at_test else ("train", "valid")
    ranker = TorchTopK(max(ks), *data.seen_csr(masked), memory_budget_mb, n_items=data.n_items)
    metric = TopKMetrics(["recall", "ndcg"], list(ks), *pairs_to_csr(held_out, data.n_users, data.n_items),
                         n_items=data.n_items)
    for users, items, _ in ranker.rank(score_fn, torch.unique(held_out[:, 0])):
        metric.update(items, users)
    return {k: float(v) for k, v in metric.compute().items() if "@" in k}


class ItemCFScores:
    """``s(u, ·) = Σ_{j∈H_u} sim_k(j, ·)``: each history item votes for its ``k`` nearest items by feature cosine."""

    def __init__(self, history: History, vectors: torch.Tensor, knn_k: int = 10) -> None:
        neighbours, sims = topk_cosine(vectors.float(), knn_k, include_self=False)
        n = vectors.shape[0]
        rows = torch.arange(n).repeat_interleave(neighbours.shape[1])
        graph = torch.sparse_coo_tensor(torch.stack([rows, neighbours.reshape(-1)]), sims.reshape(-1).clamp_min(0),
                                        (n, n), check_invariants=True).coalesce()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
            self.graph = graph.to_sparse_csr()
        self.history = history

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        counts = self.history.rows(users)  # row-normalised history; the sum's scale does not change the ranking
        return torch.sparse.mm(counts, self.graph).to_dense()


def masked_vectors(features: dict[str, torch.Tensor], drop: str, mask_ratio: float, seed: int) -> torch.Tensor:
    """The fused features with modality ``drop`` zeroed for a seeded ``mask_ratio`` share of the items."""
    n = next(iter(features.values())).shape[0]
    hidden = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < mask_ratio
    parts = []
    for name, x in features.items():
        x = unit_rows(x) / len(features) ** 0.5
        parts.append(torch.where(hidden.unsqueeze(1), torch.zeros_like(x), x) if name == drop else x)
    return torch.cat(parts, dim=1)


def feature_quality(data: InteractionData, features: dict[str, torch.Tensor], *, ks=(10, 20), knn_k: int = 10,
                    mask_ratio: float = 0.5, seed: int = 0, split: str = "test", mask_valid_at_test: bool = True,
                    memory_budget_mb: float = 256) -> dict:
    """The three metric classes for one feature set given as modality → ``[n_items, d]`` (one entry = one vector)."""
    history = History(*data.seen_csr(("train",)), data.n_items)
    fused = torch.cat([unit_rows(x) / len(features) ** 0.5 for x in features.values()], dim=1)
    settings = dict(split=split, ks=ks, mask_valid_at_test=mask_valid_at_test, memory_budget_mb=memory_budget_mb)
    report = {
        "zero_shot": ranking_metrics(data, RepresentationSignal(history, fused), **settings),
        "item_cf": ranking_metrics(data, ItemCFScores(history, fused, knn_k), **settings),
    }
    if len(features) > 1:
        report["masked"] = {
            drop: ranking_metrics(data, RepresentationSignal(history, masked_vectors(features, drop, mask_ratio, seed)),
                                  **settings)
            for drop in features}
    report["protocol"] = {"split": split, "history": "train", "knn_k": knn_k, "mask_ratio": mask_ratio, "seed": seed,
                          "modalities": list(features), "dims": {m: int(x.shape[1]) for m, x in features.items()}}
    return report
