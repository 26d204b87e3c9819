"""DRepMRec's building blocks: a modal line with no ID parameters, and the Behaviour-Modal Alignment (BMA) losses.

DRepMRec (Zhang et al., arXiv 2404.11119; renamed DREAM in v2) has no public code; this is a reconstruction from the
abstracts and secondary summaries (research notes §3), labelled as such:

* :class:`ModalLine` — per modality ``m``: a projection ``p_m = P_m x_m`` to the embedding size, a modal-specific
  *filter gate* ``f_m = p_m ⊙ σ(G_m p_m)`` (denoises the raw features), propagation over the frozen kNN item graph of
  that modality (``n_layers``), the mean over modalities for items, and the user rows of the normalised user–item
  adjacency for users (``m_u = R̂ m_i``). It owns no ID embedding: its parameters are disjoint from any behaviour line.
* :func:`bma_losses` — **intra**-alignment: InfoNCE between the behaviour and the modal representation of the same
  node (users and items); **inter**-alignment: InfoNCE between a user's behaviour vector and the modal vector of the
  item they interacted with, and the reverse (user modal ↔ item behaviour).
* The Similarity-Supervised Signal (SSS) keeps each modality's item representations' Gram matrix close to its raw
  feature cosines: :func:`recx.topn.models.alignrec.similarity_preservation` per modality.
"""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.features import modality_features
from recx.topn.graph import symmetric_spmm, train_adjacency
from recx.topn.knn import FixedSparseGraph, cached_knn_graph
from recx.topn.layers import Projector
from recx.topn.losses import info_nce


class ModalLine(nn.Module):
    """Modal user/item representations from item features alone (see the module docstring)."""

    def __init__(self, data: InteractionData, dim: int, knn_k: int = 10, n_layers: int = 1,
                 feature_norm: str = "none") -> None:
        super().__init__()
        features = modality_features(data, feature_norm)
        self.modalities = list(features)
        for idx, x in enumerate(features.values()):
            self.register_buffer(f"feature_{idx}", x, persistent=False)  # data, not learned
        self.projections = nn.ModuleList(Projector(x.shape[1], dim) for x in features.values())
        self.gates = nn.ModuleList(nn.Linear(dim, dim) for _ in features)
        for gate in self.gates:
            nn.init.xavier_uniform_(gate.weight)
            nn.init.zeros_(gate.bias)
        self.n_layers = n_layers
        self.n_users = data.n_users
        self.graphs = [FixedSparseGraph.from_knn(cached_knn_graph(data, m, knn_k, weighting="similarity",
                                                                  normalization="sym")) for m in self.modalities]
        self.adjacency = train_adjacency(data)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        device = self.projections[0].net[-1].weight.device
        self.graphs = [g.to(device) for g in self.graphs]
        self.adjacency = self.adjacency.to(device)
        return out

    def raw(self, idx: int) -> torch.Tensor:
        return getattr(self, f"feature_{idx}")

    def item_views(self) -> list[torch.Tensor]:
        """Per-modality item representations ``[n_items, d]`` after gating and graph propagation."""
        views = []
        for idx, (projection, gate, graph) in enumerate(zip(self.projections, self.gates, self.graphs)):
            p = projection(self.raw(idx))
            h = p * torch.sigmoid(gate(p))
            for _ in range(self.n_layers):
                h = graph.propagate(h)
            views.append(h)
        return views

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(users [n_users, d], items [n_items, d], per-modality item views)``."""
        views = self.item_views()
        items = torch.stack(views).mean(0)
        padded = torch.cat([items.new_zeros(self.n_users, items.shape[1]), items])
        users = symmetric_spmm(self.adjacency, padded)[: self.n_users]
        return users, items, views


def bma_losses(behaviour_users: torch.Tensor, behaviour_items: torch.Tensor, modal_users: torch.Tensor,
               modal_items: torch.Tensor, temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(intra, inter)`` over a batch of interacting ``(user, item)`` rows (row i of each tensor: pair i)."""
    intra = info_nce(behaviour_users, modal_users, temperature) + info_nce(behaviour_items, modal_items, temperature)
    inter = info_nce(behaviour_users, modal_items, temperature) + info_nce(modal_users, behaviour_items, temperature)
    return intra, inter
