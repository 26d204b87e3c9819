"""Scoring items that did not exist at training time (ID-free models such as MOTOR).

An ID-based model has no row for an item it never saw; an ID-free model derives the item's vector from its
features. :func:`score_new_items` ranks a set of new items for every user with the shared scorer and, when held-out
``(user, new item)`` pairs are given, judges the ranking with the shared metrics against the catalogue of new items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recx.data.interactions import pairs_to_csr
from recx.errors import DataError
from recx.metrics.topk import TopKMetrics
from recx.scoring.topk import TorchTopK


def load_new_items(path: str | Path, modalities: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Read an ``.npz`` with one ``[n_new, d]`` array per modality and optional ``users``/``items`` held-out pairs."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the new-items file ({exc})", path=path,
                        fix="give an .npz with one [n_new_items, d] array per modality (np.savez)") from exc
    missing = [m for m in modalities if m not in archive.files]
    if missing:
        raise DataError(f"new-items file lacks modality {missing}", path=path,
                        fix=f"it must hold arrays named {modalities} (and optionally 'users', 'items')")
    features = {m: torch.from_numpy(np.asarray(archive[m], dtype=np.float32)) for m in modalities}
    sizes = {m: f.shape[0] for m, f in features.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"modalities disagree on the number of new items: {sizes}", path=path)
    for name, f in features.items():
        if not bool(torch.isfinite(f).all()):
            raise DataError(f"new-item features '{name}' contain NaN/inf", path=path, field=name)
    pairs = None
    if "users" in archive.files and "items" in archive.files:
        pairs = torch.stack([torch.from_numpy(archive["users"].astype(np.int64)),
                             torch.from_numpy(archive["items"].astype(np.int64))], 1)
    return features, pairs


@torch.no_grad()
def score_new_items(net, features: dict[str, torch.Tensor], n_users: int, k: int = 20,
                    pairs: torch.Tensor | None = None, metrics=("recall", "ndcg", "hit_rate"),
                    ks=(10, 20)) -> dict:
    """Top-``k`` new items per user, plus metrics over the new-item catalogue when ``pairs`` are given.

    ``pairs`` are ``(user, new item index)`` interactions that happened after training; ``random@K`` in the result is
    what a random ranking scores in expectation (``K / n_new``) for recall and hit rate's lower bound.
    """
    net.eval()
    user_vecs, _ = net.user_item_vectors()
    item_vecs = net.new_item_vectors(features).to(user_vecs.device)
    n_new = item_vecs.shape[0]
    k = min(k, n_new)
    ranker = TorchTopK(min(n_new, max(k, *ks)))
    users = torch.arange(n_users, device=user_vecs.device) if pairs is None else torch.unique(pairs[:, 0])
    items, values = ranker.rank_all_vectors(user_vecs, item_vecs, users)
    out = {"users": users.cpu(), "top_items": items[:, :k].cpu(), "top_scores": values[:, :k].cpu(),
           "n_new_items": n_new}
    if pairs is not None:
        if int(pairs[:, 1].max()) >= n_new or int(pairs[:, 0].max()) >= n_users:
            raise DataError("held-out pairs refer to users or new items that do not exist", field="users/items")
        indptr, indices = pairs_to_csr(pairs, n_users, n_new)
        valid_ks = [kk for kk in ks if kk <= items.shape[1]]
        metric = TopKMetrics(metrics=list(metrics), ks=valid_ks, truth_indptr=indptr, truth_indices=indices,
                             n_items=n_new)
        metric.update(items.cpu(), users.cpu())
        out["metrics"] = {name: float(v) for name, v in metric.compute().items()}
        out["metrics"].update({f"random_recall@{kk}": kk / n_new for kk in valid_ks})
    return out
