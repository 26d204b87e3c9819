"""LightGCN (He et al., SIGIR 2020): linear propagation on the user–item graph, no transforms, no non-linearity.

E^(k+1) = Â E^(k) with Â = D^-1/2 A D^-1/2 (no self loops); final embedding = mean of E^(0..L) (α_k = 1/(L+1)).
score = ⟨e_u, e_i⟩. Loss: BPR + ``reg_weight``·½‖ego embeddings‖²/B, as in the paper (``reg_form=emb``: MMRec's
EmbLoss Σ‖ego‖/B instead, set by ``protocol=mmrec``). Defaults: d=64, L=3,
reg 1e-4 (the paper's; MMRec grids L∈{1..4}).
"""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.graph import lightgcn_propagate, train_adjacency
from recx.topn.losses import check_reg_form, gather_triplet, l2_penalty, triplet_bpr
from recx.topn.models.base import TopNModel


class LightGCN(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency",)

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 3,
                 reg_weight: float = 1e-4, reg_form: str = "l2") -> None:
        super().__init__(data.n_users, data.n_items)
        self.n_layers = n_layers
        self.reg_weight = reg_weight
        self.reg_form = check_reg_form(reg_form)
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        # Not a buffer: it is derived from the data, not learned, so it stays out of checkpoints.
        self.adjacency = train_adjacency(data)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = lightgcn_propagate(self.adjacency, ego, self.n_layers)
        return final[: self.n_users], final[self.n_users:]

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("propagated", self.propagate)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users_all, items_all = self.propagate()
        users, pos, neg = batch["users"], batch["pos"], batch["neg"]
        u, i, j = gather_triplet(users_all, items_all, batch)
        ranking = triplet_bpr(u, i, j)
        reg = l2_penalty(self.user_embedding(users), self.item_embedding(pos), self.item_embedding(neg),
                         batch_size=users.shape[0], form=self.reg_form)
        return ranking + self.reg_weight * reg
