"""BPR-MF: matrix factorisation trained with the BPR pairwise loss (Rendle et al., UAI 2009).

score(u, i) = ⟨p_u, q_i⟩. Loss: BPR over (user, positive, sampled negative) + ``reg_weight``·½‖·‖²/B on the looked-up
embeddings (``reg_form=l2``) or MMRec's EmbLoss ``Σ‖·‖/B`` (``reg_form=emb``, set by ``protocol=mmrec``).
Xavier-normal initialisation, as RecBole/MMRec.
"""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.losses import bpr_loss, check_reg_form, l2_penalty
from recx.topn.models.base import TopNModel


class BPR(TopNModel):
    def __init__(self, data: InteractionData, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 reg_form: str = "l2") -> None:
        super().__init__(data.n_users, data.n_items)
        self.reg_weight = reg_weight
        self.reg_form = check_reg_form(reg_form)
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_normal_(self.user_embedding.weight)
        nn.init.xavier_normal_(self.item_embedding.weight)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        u = self.user_embedding(batch["users"])
        i = self.item_embedding(batch["pos"])
        j = self.item_embedding(batch["neg"])
        ranking = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        return ranking + self.reg_weight * l2_penalty(u, i, j, batch_size=u.shape[0], form=self.reg_form)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight
