"""AlignRec stage 1, inter-content alignment (ICA): unified multimodal item features from the item features alone.

The paper pre-trains a BEiT-3 multimodal encoder on item images and texts (weights and recipe not public; the
released code downloads its output). recx reconstructs the *objective* on pre-extracted features: one encoder per
modality (``Linear → GELU → Linear`` to ``dim``) trained with a symmetric in-batch InfoNCE that pulls together the
modalities of the same item and pushes apart those of different items (CLIP-style); the unified feature is the mean
of the L2-normalised modality embeddings. No interaction is read, so the features are the same for every split and
are cached next to the prepared data (``alignrec_ica_<settings hash>.pt``): stage 2 and every later run reuse them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData, atomic_write
from recx.errors import ConfigError


class ModalityEncoder(nn.Module):
    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLIP's loss: row i of ``a`` and of ``b`` are the same item; both directions, unit vectors in."""
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def pretrain_ica(features: dict[str, torch.Tensor], dim: int = 128, epochs: int = 50, lr: float = 1e-3,
                 batch_size: int = 512, temperature: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Train the modality encoders with pairwise symmetric InfoNCE; return unified features ``[n, dim]`` + a report."""
    if len(features) < 2:
        raise ConfigError(f"inter-content alignment needs at least two modalities, got {list(features)}",
                          field="dataset.modalities", fix="load two modalities, or run model.stage=train")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoders = nn.ModuleList(ModalityEncoder(x.shape[1], dim) for x in features.values())
    xs = [F.normalize(x.float(), dim=-1) for x in features.values()]
    optimiser = torch.optim.Adam(encoders.parameters(), lr=lr)
    n = xs[0].shape[0]
    history = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        total, batches = 0.0, 0
        for begin in range(0, n, batch_size):
            rows = order[begin:begin + batch_size]
            if rows.numel() < 2:
                continue
            z = [enc(x.index_select(0, rows)) for enc, x in zip(encoders, xs)]
            loss = sum(symmetric_info_nce(z[a], z[b], temperature)
                       for a in range(len(z)) for b in range(a + 1, len(z)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, batches = total + float(loss.detach()), batches + 1
        history.append(total / max(1, batches))
    with torch.no_grad():
        unified = torch.stack([enc(x) for enc, x in zip(encoders, xs)]).mean(0)
    return unified, {"loss_first_epoch": history[0] if history else None,
                     "loss_last_epoch": history[-1] if history else None, "epochs": epochs, "dim": dim,
                     "modalities": list(features)}


def cached_ica_features(data: InteractionData, features: dict[str, torch.Tensor], **settings) -> tuple[torch.Tensor, dict]:
    """:func:`pretrain_ica`, computed once per (dataset, modalities, settings) and cached with the prepared data."""
    key = hashlib.sha256(json.dumps({"modalities": {m: list(x.shape) for m, x in features.items()}, **settings},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = Path(data.cache_dir) / f"alignrec_ica_{key}.pt" if getattr(data, "cache_dir", None) else None
    if path is not None and path.is_file():
        try:
            payload = torch.load(path, weights_only=True)
            return payload["features"], {**payload["report"], "cached": str(path)}
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    unified, report = pretrain_ica(features, **settings)
    if path is not None:
        atomic_write(path, lambda f: torch.save({"features": unified, "report": report}, f))
        report = {**report, "cached": str(path)}
    return unified, report
