"""VBPR (He & McAuley, AAAI 2016): BPR-MF whose item vector also carries a projection of the item's content.

item_i = [θ_i ; E f_i] with f_i the concatenated modality features (``dataset.modalities``), E a learned linear map;
user_u = [γ_u ; δ_u] of the same width. score = ⟨user_u, item_i⟩; loss = BPR + ``reg_weight``·½‖·‖²/B on the
looked-up ID embeddings. As MMRec's VBPR: one projection of all modalities concatenated, no separate visual bias term.

Deliberate differences from MMRec, each a key (``protocol=mmrec`` sets MMRec's value):

* ``reg_scope``: ``ids`` (recx) regularises the user rows and the items' ID half θ_i only; MMRec (``full``)
  regularises the whole item vectors ``[θ_i ; E f_i]``, i.e. also the projected-feature half (and so ``E``).
* ``reg_form``: ``l2`` (½Σ‖·‖²/B) or MMRec's EmbLoss ``emb`` (Σ‖·‖/B).
* ``feature_order``: ``modalities`` keeps ``dataset.modalities`` order in the concatenated content vector;
  ``text_first`` is MMRec's ``cat(text, image)`` (the same model up to a permutation of E's columns, so only the
  random initialisation differs).
Because part of the item vector comes from features, an item with few training interactions still gets a sensible
vector: that is the cold-item advantage features bring.
"""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.features import stack_features
from recx.errors import ConfigError
from recx.topn.losses import bpr_loss, check_reg_form, l2_penalty
from recx.topn.models.base import TopNModel


#: ``reg_scope`` values: ids (the ID half of the item vectors, recx) or full (the whole vectors, MMRec)
REG_SCOPES = ("ids", "full")


class VBPR(TopNModel):
    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 feature_norm: str = "none", reg_form: str = "l2", reg_scope: str = "ids",
                 feature_order: str = "modalities") -> None:
        super().__init__(data.n_users, data.n_items)
        self.reg_weight = reg_weight
        self.reg_form = check_reg_form(reg_form)
        if reg_scope not in REG_SCOPES:
            raise ConfigError(f"unknown reg_scope '{reg_scope}'", field="model.reg_scope",
                              fix="use ids (the ID half of the item vectors) or full (MMRec: the whole vectors)")
        self.reg_scope = reg_scope
        # derived from the data (rebuilt at load time), so kept out of checkpoints
        self.register_buffer("features", stack_features(data, feature_norm, order=feature_order), persistent=False)
        self.projection = nn.Linear(self.features.shape[1], embedding_dim)
        self.user_embedding = nn.Embedding(data.n_users, 2 * embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        for p in (self.user_embedding.weight, self.item_embedding.weight, self.projection.weight):
            nn.init.xavier_normal_(p)
        nn.init.zeros_(self.projection.bias)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        feats = self.features if items is None else self.features[items]
        return torch.cat([ids, self.projection(feats)], dim=-1)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.cached("items", self.item_vectors)

    def batch_item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """:meth:`item_vectors` of a training batch's items, projecting each distinct item once: a batch of 2,048
        triplets names up to 4,096 items, often far more rows than the catalogue has (the same values and gradients
        as projecting every row, at the cost of the smaller of the two)."""
        distinct, where = torch.unique(items, return_inverse=True)
        # an embedding lookup, not [where]: its backward sums the repeated rows in a fixed order (index backward
        # accumulates in parallel, which made two identical runs differ in the last bit with 2 threads)
        projected = nn.functional.embedding(where, self.projection(self.features[distinct]))
        return torch.cat([self.item_embedding(items), projected], dim=-1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, pos, neg = batch["users"], batch["pos"], batch["neg"]
        u = self.user_embedding(users)
        i, j = self.batch_item_vectors(torch.cat([pos, neg])).split(pos.shape[0])
        ranking = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        if self.reg_scope == "full":
            reg = l2_penalty(u, i, j, batch_size=users.shape[0], form=self.reg_form)
        else:
            reg = l2_penalty(u, self.item_embedding(pos), self.item_embedding(neg), batch_size=users.shape[0],
                             form=self.reg_form)
        return ranking + self.reg_weight * reg
