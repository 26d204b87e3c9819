"""STARank (Jin et al., CIKM 2023, arXiv 2308.02860): set-to-arrangement ranking with a Plackett-Luce pointer decoder.

The candidate set is read as a set (self-attention, no positional encoding) in the context of the user's browsing
history, and a pointer decoder emits a permutation one position at a time:

* document embeddings ``e_j = MLP(x_j)``; history context ``c = mean_h MLP(x_h)`` over the history (a learned vector
  when there is none — e.g. search queries without logs);
* candidate encoding ``E = SelfAttention(e + W_c c)``; decoder state ``(h_0, c_0)`` from ``c``;
* step ``t``: ``h_t = LSTMCell(E[π_{t−1}], h_{t−1})``, pointer logits ``u_tj = vᵀ tanh(W_1 E_j + W_2 h_t)`` over the
  documents not placed yet; ``P(π_t = j) = softmax_j(u_t)``.

Training maximises the stage-wise Plackett-Luce likelihood of the target-sorted permutation ``π*`` (targets: labels,
or clicks) with **teacher forcing**: stage ``t`` conditions on ``π*_{1..t−1}`` and removes exactly those documents,
so the loss is the exact likelihood ``−Σ_t log P(π*_t | π*_{<t})``. The public code instead removes the model's own
greedy picks (no teacher forcing), which is not the likelihood of ``π*``; and its pointer has no ``tanh``.
Decoding covers the first ``decode_steps`` positions (the metrics' cut-off); the remaining documents follow by the
last step's pointer logits. Inference: ``decode="greedy"`` (argmax per step) or ``"sample"`` (draws from ``P``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from recx.ltr.losses import NEG_INF, ideal_order
from recx.ltr.models.base import DocumentMLP, LTRModel, SlateAttention

PLACED = 1e6  # score of a decoded position, far above any pointer logit


#: ``decode`` values: greedy (argmax pointer at every step) or sample (sample the pointer)
DECODES = ("greedy", "sample")


class STARank(LTRModel):
    def __init__(self, n_features: int, dim: int = 64, hidden: Sequence[int] = (128,), dropout: float = 0.1,
                 heads: int = 2, attention_layers: int = 1, decode_steps: int = 10, decode: str = "greedy") -> None:
        super().__init__()
        if decode not in DECODES:
            from recx.errors import ConfigError

            raise ConfigError(f"unknown decode '{decode}'", field="model.decode", fix="use greedy or sample")
        self.embed = DocumentMLP(n_features, hidden, dim, dropout)
        self.no_history = nn.Parameter(torch.zeros(dim))
        self.context = nn.Linear(dim, dim)
        self.encoder = SlateAttention(dim, heads, attention_layers, dropout)
        self.init_h, self.init_c = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.cell = nn.LSTMCell(dim, dim)
        self.w_doc, self.w_state = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
        self.v = nn.Linear(dim, 1, bias=False)
        self.decode_steps, self.decode = decode_steps, decode

    # ------------------------------------------------------------------------------------------------ encoding
    def history_context(self, batch: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
        history = batch.get("history")
        if history is None:
            return self.no_history.expand(batch_size, -1)
        hmask = batch["history_mask"].unsqueeze(-1).float()
        pooled = (self.embed(history) * hmask).sum(1) / hmask.sum(1).clamp_min(1.0)
        has = hmask.sum(1) > 0
        return torch.where(has, pooled, self.no_history.expand(batch_size, -1))

    def encode(self, batch: dict[str, torch.Tensor]):
        mask = batch["mask"]
        e = self.embed(batch["features"])
        ctx = self.history_context(batch, e.shape[0])
        encoded = self.encoder(e + self.context(ctx).unsqueeze(1), mask)
        state = (torch.tanh(self.init_h(ctx)), torch.tanh(self.init_c(ctx)))
        return encoded, self.w_doc(encoded), state

    def pointer_logits(self, keys: torch.Tensor, h: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        u = self.v(torch.tanh(keys + self.w_state(h).unsqueeze(1))).squeeze(-1)
        return u.masked_fill(~available, NEG_INF)

    # ---------------------------------------------------------------------------------------------- training
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced Plackett-Luce NLL of the target permutation (first ``decode_steps`` stages), per query."""
        mask = batch["mask"]
        order = ideal_order(batch["targets"], mask)
        encoded, keys, (h, c) = self.encode(batch)
        available = mask.clone()
        rows = torch.arange(mask.shape[0], device=mask.device)
        previous = encoded.new_zeros(encoded.shape[0], encoded.shape[2])
        total = encoded.new_zeros(encoded.shape[0])
        for t in range(min(self.decode_steps, mask.shape[1])):
            h, c = self.cell(previous, (h, c))
            logits = self.pointer_logits(keys, h, available)
            target = order[:, t]
            real = available[rows, target]  # queries shorter than t have nothing left to place
            nll = torch.logsumexp(logits, -1) - logits[rows, target]
            total = total + nll * real
            available = available.clone()
            available[rows, target] = False
            previous = encoded[rows, target]
        return total.mean()

    # --------------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def score(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Scores whose descending order is the decoded permutation: the document placed at step ``t`` scores
        ``PLACED − t``; the documents after the decoded prefix keep the last step's pointer logits (bounded by
        ``‖v‖₁`` ≪ ``PLACED``); padded documents score ``-inf``."""
        mask = batch["mask"]
        encoded, keys, (h, c) = self.encode(batch)
        available = mask.clone()
        rows = torch.arange(mask.shape[0], device=mask.device)
        previous = encoded.new_zeros(encoded.shape[0], encoded.shape[2])
        scores = torch.full(mask.shape, float("-inf"), device=mask.device)
        logits = self.pointer_logits(keys, h, available)
        for t in range(min(self.decode_steps, mask.shape[1])):
            h, c = self.cell(previous, (h, c))
            logits = self.pointer_logits(keys, h, available)
            if self.decode == "sample":
                probs = torch.softmax(logits, -1) * available
                probs = torch.where(probs.sum(-1, keepdim=True) > 0, probs, torch.ones_like(probs))
                pick = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            else:
                pick = logits.argmax(-1)
            real = available[rows, pick]  # a query with no document left picks nothing
            scores[rows[real], pick[real]] = PLACED - t
            available = available.clone()
            available[rows, pick] = False
            previous = encoded[rows, pick]
        rest = available & mask
        return torch.where(rest, logits, scores)

    def arrange(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """The permutation per query ``[B, L]``, best first, padded documents last."""
        return self.score(batch, generator).argsort(dim=-1, descending=True, stable=True)
