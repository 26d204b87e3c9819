"""The learning-to-rank model protocol and the blocks the rankers share.

A model is a plain ``nn.Module`` built as ``Model(n_features=F, **hyperparameters)`` and implements:

* ``score(batch) -> Tensor [B, L]``: one score per document of each padded slate, higher = ranked higher (padded
  entries are ignored by the caller);
* ``loss(batch) -> Tensor``: the training loss of one batch.

A batch is a dict of tensors: ``features [B, L, F]`` float, ``mask [B, L]`` bool (True = real document), and

* training on labels (no click model): ``targets [B, L]`` = graded labels;
* training on clicks (``click_model=pbm|ubm|...``): ``targets [B, L]`` = simulated 0/1 clicks, the slate is the
  logged list in display order, ``positions [B, L]`` its display ranks (0 = top), ``propensity [B, L]`` the click
  model's examination probability at that rank (for IPS), ``popularity [B, L]`` when the dataset names one;
* evaluation: ``labels [B, L]`` (true relevance); models never read labels in training;
* optional context ``history [B, H, F]`` + ``history_mask [B, H]`` (STARank's browsing history).

``learns_from = "labels" | "clicks" | "either"`` says what a model can be trained on; the datamodule refuses a
mismatch before training starts.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: model-config keys that configure the LTR LightningModule rather than the model's constructor
MODULE_KEYS = ("lr", "weight_decay", "grad_clip")
META_KEYS = ("name", "family")


class LTRModel(nn.Module):
    learns_from = "either"

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class DocumentMLP(nn.Module):
    """Per-document feed-forward tower ``F → hidden[0] → ... → out`` (ReLU, dropout); ``out=1`` gives a score."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), out: int = 1, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out))
        self.net = nn.Sequential(*layers)
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.squeeze(-1) if self.out == 1 else y


class SlateAttention(nn.Module):
    """Self-attention over the documents of a slate (no positional encoding: a set encoder), padded docs masked.

    Lets each document's representation depend on the others in the list — the "latent correlations" InfoRank's
    encoder models and the candidate-set reading STARank needs.
    """

    def __init__(self, dim: int, heads: int = 2, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x if self.encoder is None else self.encoder(x, src_key_padding_mask=~mask)
