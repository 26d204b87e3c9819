"""A user's own top-N model, outside the recx package: item-item cosine kNN over the training interactions.

It implements recx's top-N protocol (``recx.topn.models.base``): built as ``Model(data, **hyperparameters)``, with
``loss(batch)`` (None: nothing to train) and ``score(users) -> [B, n_items]``; the shared scorer masks seen items and
computes every metric. recx finds this module because the config folder holding it is on RECX_CONFIG_PATH (or passed
with --config-dir): each such folder is put on sys.path.
"""

from __future__ import annotations

import torch

from recx.topn.models.base import TopNModel


class ItemKNN(TopNModel):
    def __init__(self, data, k: int = 50, shrink: float = 10.0) -> None:
        super().__init__(data.n_users, data.n_items)
        history = torch.zeros(data.n_users, data.n_items)
        history[data.train[:, 0], data.train[:, 1]] = 1.0  # data.train: [n, 2] (user, item) pairs
        counts = history.sum(0)
        sim = (history.T @ history) / (counts.sqrt()[:, None] * counts.sqrt()[None, :] + shrink)
        sim.fill_diagonal_(0.0)
        top = sim.topk(min(k, data.n_items - 1), dim=1)
        self.register_buffer("history", history)
        self.register_buffer("sim", torch.zeros_like(sim).scatter_(1, top.indices, top.values))
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the optimiser something to hold

    def loss(self, batch):
        return None

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.history.index_select(0, users) @ self.sim
