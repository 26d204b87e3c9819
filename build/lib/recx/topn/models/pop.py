"""Pop: recommend the items with the most training interactions, to everyone.

The non-personalised baseline every top-N claim is measured against. Nothing to train (``loss`` is ``None``).
"""

from __future__ import annotations

import torch

from recx.data.interactions import InteractionData
from recx.topn.models.base import TopNModel


class Pop(TopNModel):
    def __init__(self, data: InteractionData) -> None:
        super().__init__(data.n_users, data.n_items)
        self.register_buffer("popularity", data.item_popularity().float())

    def loss(self, batch):
        return None

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity.unsqueeze(0).expand(users.shape[0], -1).clone()

    def item_representations(self) -> torch.Tensor:
        # a count is not a representation: as a 1-d vector every item has the same direction (cosine 1 everywhere)
        raise NotImplementedError("Pop learns no item representations")
