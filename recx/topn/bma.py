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
from recx.topn.graph import train_adjacency, users_from_items
from recx.topn.knn import FixedSparseGraph, cached_knn_graph
from recx.topn.layers import Projector
from recx.topn.losses import info_nce
from recx.topn.models.base import DerivedState, TopNModel


class ModalLine(DerivedState):
    """Modal user/item representations from item features alone (see the module docstring)."""

    derived = ("graphs", "adjacency")

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
        users = users_from_items(self.adjacency, items, self.n_users)
        return users, items, views


def bma_losses(behaviour_users: torch.Tensor, behaviour_items: torch.Tensor, modal_users: torch.Tensor,
               modal_items: torch.Tensor, temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(intra, inter)`` over a batch of interacting ``(user, item)`` rows (row i of each tensor: pair i)."""
    intra = info_nce(behaviour_users, modal_users, temperature) + info_nce(behaviour_items, modal_items, temperature)
    inter = info_nce(behaviour_users, modal_items, temperature) + info_nce(modal_users, behaviour_items, temperature)
    return intra, inter


class BMA(TopNModel):
    """The BMA plug-in: a backbone's own representations as the behaviour line, plus a :class:`ModalLine`, aligned by
    :func:`bma_losses` and fused by summation (``model=<backbone> +plugin=bma``; DRepMRec claims BMA helps other
    models). Scores are ``⟨b_u + m_u, b_i + m_i⟩``. The backbone's vectors must have ``embedding_dim`` columns
    (LightGCN, LATTICE, FREEDOM, BPR ...).

    **One ranking loss.** In DRepMRec the two lines are trained through the fused representation — the one that is
    scored — plus the alignment and SSS terms; the behaviour line has no ranking loss of its own. So by default the
    loss is BPR on the fused vectors + alignment + SSS, and the backbone's own loss is not added (adding it, as recx
    did before, counts the ranking loss twice). ``backbone_loss=true`` adds it back for backbones whose loss carries
    auxiliary objectives worth keeping (FREEDOM's feature-side BPR, BM3's self-supervision) — documented in
    conventions as a deviation.

    **Training vectors.** The behaviour line in the loss is the backbone's :meth:`training_vectors` — FREEDOM's
    epoch-pruned graph, LATTICE's per-epoch learned graph (rebuilt with gradients in the epoch's first batch only) —
    not its scoring vectors, which skip the pruning and would rebuild LATTICE's graph with gradients on every batch.
    """

    uses_features = True

    def __init__(self, data: InteractionData, backbone: dict, intra_weight: float = 0.1, inter_weight: float = 0.1,
                 sss_weight: float = 0.1, temperature: float = 0.2, knn_k: int = 10, n_mm_layers: int = 1,
                 feature_norm: str = "none", backbone_loss: bool = False) -> None:
        from recx.topn.motor import build_backbone

        super().__init__(data.n_users, data.n_items)
        self.backbone: TopNModel = build_backbone(dict(backbone), data)
        self.backbone_name = backbone.get("name", backbone["_target_"].rsplit(".", 1)[-1])
        self.dim = int(backbone.get("embedding_dim", 64))
        self.modal = ModalLine(data, self.dim, knn_k=knn_k, n_layers=n_mm_layers, feature_norm=feature_norm)
        self.intra_weight, self.inter_weight, self.sss_weight = intra_weight, inter_weight, sss_weight
        self.temperature = temperature
        self.backbone_loss = bool(backbone_loss)
        with torch.no_grad():
            self._behaviour()  # refuse an incompatible backbone now, not in the middle of training

    def _behaviour(self, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self.backbone.training_vectors() if training else self.backbone.user_item_vectors()
        if vectors is None or vectors[0].shape[1] != self.dim:
            from recx.errors import ConfigError

            raise ConfigError(f"BMA needs {self.dim}-d user/item vectors from backbone '{self.backbone_name}'",
                              field="plugin", fix="use a backbone with embedding_dim-wide vectors (lightgcn, lattice, "
                                                  "freedom, bpr)")
        return vectors

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        b_u, b_i = self._behaviour()
        m_u, m_i, _ = self.modal()
        return b_u + m_u, b_i + m_i

    # ---------------------------------------------------------------------------------- top-N protocol
    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("vectors", self.fused)

    def on_epoch_start(self, epoch: int) -> None:
        self.backbone.on_epoch_start(epoch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from recx.topn.losses import gather_triplet, triplet_bpr
        from recx.topn.models.alignrec import similarity_preservation

        b_u, b_i = self._behaviour(training=True)
        m_u, m_i, views = self.modal()
        u, i, j = gather_triplet(b_u + m_u, b_i + m_i, batch)
        users, pos = batch["users"], batch["pos"]
        intra, inter = bma_losses(b_u.index_select(0, users), b_i.index_select(0, pos), m_u.index_select(0, users),
                                  m_i.index_select(0, pos), self.temperature)
        sss = sum(similarity_preservation(view.index_select(0, pos), self.modal.raw(idx).index_select(0, pos))
                  for idx, view in enumerate(views))
        total = triplet_bpr(u, i, j) + self.intra_weight * intra + self.inter_weight * inter + self.sss_weight * sss
        if self.backbone_loss:
            total = total + self.backbone.loss(batch)
        return total
