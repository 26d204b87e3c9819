"""DRepMRec (Zhang et al., arXiv 2404.11119, "DREAM" in v2): dual representation learning for multimodal
recommendation — a reconstruction (no public code; see :mod:`recx.topn.bma` and the research notes).

* **Behaviour line**: LightGCN over the training graph on ID embeddings, ``(b_u, b_i)``.
* **Modal line** (:class:`~recx.topn.bma.ModalLine`): filter-gated projections of each modality propagated over
  frozen kNN item graphs, users from their items; no parameter is shared with the behaviour line (the paper's answer to
  the two lines' opposing gradients).
* **BMA**: intra-alignment (same node, two lines) + inter-alignment (user of one line ↔ interacted item of the other),
  InfoNCE with in-batch negatives; then fusion, ``sum`` (``b + m``) or ``concat`` (``[b; m]``).
* **SSS**: per modality, the batch items' modal-view Gram matrix follows their raw-feature cosines.

Loss: ``BPR(z) + reg_weight·½(‖e_u‖² + ‖e_i⁺‖² + ‖e_i⁻‖²)/B + intra_weight·intra + inter_weight·inter
+ sss_weight·Σ_m SSS_m``, with ``e`` the ego ID embeddings of the batch (LightGCN's regulariser).
"""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.bma import ModalLine, bma_losses
from recx.topn.graph import lightgcn_propagate, train_adjacency
from recx.topn.losses import gather_triplet, l2_penalty, triplet_bpr
from recx.topn.models.alignrec import similarity_preservation
from recx.topn.models.base import TopNModel

FUSIONS = ("sum", "concat")


class DRepMRec(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency",)

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_ui_layers: int = 2, n_mm_layers: int = 1,
                 knn_k: int = 10, reg_weight: float = 1e-4, intra_weight: float = 0.1, inter_weight: float = 0.1,
                 sss_weight: float = 0.1, temperature: float = 0.2, fusion: str = "sum",
                 feature_norm: str = "none") -> None:
        super().__init__(data.n_users, data.n_items)
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion '{fusion}'", field="model.fusion", fix=f"use one of {list(FUSIONS)}")
        self.n_ui_layers, self.fusion, self.temperature = n_ui_layers, fusion, temperature
        self.reg_weight, self.intra_weight = reg_weight, intra_weight
        self.inter_weight, self.sss_weight = inter_weight, sss_weight
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.modal = ModalLine(data, embedding_dim, knn_k=knn_k, n_layers=n_mm_layers, feature_norm=feature_norm)
        self.adjacency = train_adjacency(data)

    def behaviour(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = lightgcn_propagate(self.adjacency, ego, self.n_ui_layers)
        return out[: self.n_users], out[self.n_users:]

    def fuse(self, behaviour: torch.Tensor, modal: torch.Tensor) -> torch.Tensor:
        return behaviour + modal if self.fusion == "sum" else torch.cat([behaviour, modal], dim=-1)

    def forward_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        b_u, b_i = self.behaviour()
        m_u, m_i, _ = self.modal()
        return self.fuse(b_u, m_u), self.fuse(b_i, m_i)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("vectors", self.forward_vectors)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b_u, b_i = self.behaviour()
        m_u, m_i, views = self.modal()
        users, pos = batch["users"], batch["pos"]
        u, i, j = gather_triplet(self.fuse(b_u, m_u), self.fuse(b_i, m_i), batch)
        ranking = triplet_bpr(u, i, j)
        ego = gather_triplet(self.user_embedding.weight, self.item_embedding.weight, batch)
        regulariser = l2_penalty(*ego, batch_size=users.shape[0])
        intra, inter = bma_losses(b_u.index_select(0, users), b_i.index_select(0, pos), m_u.index_select(0, users),
                                  m_i.index_select(0, pos), self.temperature)
        sss = sum(similarity_preservation(view.index_select(0, pos), self.modal.raw(idx).index_select(0, pos))
                  for idx, view in enumerate(views))
        return (ranking + self.reg_weight * regulariser + self.intra_weight * intra + self.inter_weight * inter
                + self.sss_weight * sss)
