"""FREEDOM (Zhou & Shen, ACM MM 2023, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation").

Two graphs, one frozen and one denoised:

* **Frozen item–item graph.** Per modality m (whatever ``dataset.modalities`` loads): each item's ``knn_k`` most
  cosine-similar items under the raw features (itself included), **binary** edges, ``D^-1/2 A D^-1/2`` normalised:
  ``S_m``. Combined as ``S = Σ_m w_m S_m`` (``modality_weights``, normalised to sum 1; MMRec: image 0.1, text 0.9).
  Built once from the raw features and never trained (cached on disk). ``h = S^{n_mm_layers} · E_item``.
* **Denoised user–item graph.** At every epoch start, keep ``⌊(1 - dropout)·|E|⌉`` training edges sampled without
  replacement with probability ∝ ``1/sqrt(d_u · d_i)`` (degree-sensitive edge pruning), and renormalise
  ``D^-1/2 A D^-1/2`` on the kept edges. LightGCN (``n_ui_layers``) runs on this pruned graph in training and on the
  full graph at inference.

Vectors: ``(e_u, e_i) = mean_l Â^l [E_user; E_item]``, user = ``e_u``, item = ``e_i + h``; score = inner product.
Loss (no L2 term): ``BPR(e_u, item⁺, item⁻) + reg_weight · Σ_m BPR(e_u, P_m f_m⁺, P_m f_m⁻)`` with ``P_m`` a linear
projection of modality m into the embedding space (the feature-side BPR of MMRec's ``calculate_loss``).

Deliberate differences:

* Modalities are generic: MMRec's ``mm_image_weight`` (image 0.1, text 1 - 0.1) becomes ``modality_weights``
  (a name → weight dict); loaded modalities missing from it get ``default_modality_weight``; the weights of the loaded
  modalities are then normalised to sum 1 (so [image, text] gives exactly MMRec's 0.1/0.9, a single modality 1).
* The projection width is ``embedding_dim`` (it must equal it for ``⟨e_u, P_m f_m⟩``; MMRec's ``feat_embed_dim`` is
  always set to the same 64). MMRec's ``lambda_coeff`` is unused by its FREEDOM and is not a parameter here.
* Raw features are frozen by default (the paper uses pre-extracted features); MMRec wraps them in
  ``nn.Embedding.from_pretrained(freeze=False)``, so its feature-side BPR also fine-tunes the raw features.
  ``finetune_features=true`` restores that behaviour.
* The feature-side BPR projects only the batch's items (MMRec projects all items, then indexes: same values).
* kNN graphs are ``[n_items, k]`` neighbour lists built in memory-bounded chunks (MMRec: a dense n×n similarity).
* ``feature_norm`` (default ``none`` = MMRec) only changes the projections' input; the frozen graphs are always built
  from the raw features (and cached next to the prepared data).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_features
from recx.topn.features import modality_weights as resolve_modality_weights
from recx.topn.graph import lightgcn_propagate, normalized_bipartite_adjacency, sample_edges_by_degree, train_adjacency
from recx.topn.knn import CombinedGraph, FixedSparseGraph, cached_knn_graph
from recx.topn.layers import Projector
from recx.topn.losses import gather_triplet, triplet_bpr
from recx.topn.models.base import TopNModel

class FREEDOM(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency", "train_pairs", "item_graph", "item_propagator", "pruned_adjacency")

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, knn_k: int = 10, n_mm_layers: int = 1,
                 n_ui_layers: int = 2, dropout: float = 0.8, reg_weight: float = 1e-3,
                 modality_weights: Mapping[str, float] | None = None, default_modality_weight: float = 0.5,
                 feature_norm: str = "none", finetune_features: bool = False) -> None:
        super().__init__(data.n_users, data.n_items)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout (the share of user–item edges pruned per epoch) must be in [0, 1), got "
                              f"{dropout}", field="model.dropout", fix="MMRec's grid is {0.8, 0.9}")
        self.n_mm_layers, self.n_ui_layers = n_mm_layers, n_ui_layers
        self.dropout, self.reg_weight = dropout, reg_weight
        features = modality_features(data, feature_norm)
        self.modalities = list(features)
        self.modality_weights = resolve_modality_weights(self.modalities, modality_weights, default_modality_weight)
        self.finetune_features = finetune_features
        if finetune_features:
            self.features = nn.ParameterList([nn.Parameter(f.clone()) for f in features.values()])
        else:  # data, not learned: out of checkpoints
            for idx, f in enumerate(features.values()):
                self.register_buffer(f"feature_{idx}", f, persistent=False)
        self.projections = nn.ModuleList([Projector(f.shape[1], embedding_dim) for f in features.values()])
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        # Derived from the data, never checkpointed (moved with the parameters: `derived`). The graph is frozen, so it
        # propagates as one CSR product (FixedSparseGraph) instead of a [n_items, k, d] gather.
        self.item_graph = CombinedGraph([
            (w, cached_knn_graph(data, m, knn_k, weighting="binary", normalization="sym"))
            for m, w in zip(self.modalities, self.modality_weights)])
        self.item_propagator = FixedSparseGraph.from_knn(self.item_graph)
        self.adjacency = train_adjacency(data)  # the full graph: inference
        self.train_pairs = torch.unique(data.train.long(), dim=0)  # deduplicated edges to prune from
        self.pruned_adjacency: torch.Tensor | None = None  # this epoch's denoised graph: training

    def raw_features(self) -> list[torch.Tensor]:
        if self.finetune_features:
            return list(self.features)
        return [getattr(self, f"feature_{idx}") for idx in range(len(self.modalities))]

    # ------------------------------------------------------- edge pruning
    def prune_edges(self) -> torch.Tensor:
        """Degree-sensitive edge pruning: the normalised adjacency of ``1 - dropout`` of the edges (global RNG)."""
        if self.dropout <= 0.0:
            return self.adjacency
        kept = sample_edges_by_degree(self.train_pairs, self.n_users, self.n_items, keep_ratio=1.0 - self.dropout)
        return normalized_bipartite_adjacency(kept, self.n_users, self.n_items)

    def on_epoch_start(self, epoch: int) -> None:
        self.pruned_adjacency = self.prune_edges()

    # ------------------------------------------------------------ forward
    def forward_vectors(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            h = self.item_propagator.propagate(h)
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = lightgcn_propagate(adjacency, ego, self.n_ui_layers)
        return final[: self.n_users], final[self.n_users:] + h

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("vectors", lambda: self.forward_vectors(self.adjacency))

    def training_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors over this epoch's pruned graph (what training sees; scoring uses the full graph)."""
        if self.pruned_adjacency is None:  # called without an epoch start (e.g. a bare training step)
            self.pruned_adjacency = self.prune_edges()
        return self.forward_vectors(self.pruned_adjacency)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users_all, items_all = self.training_vectors()
        pos, neg = batch["pos"], batch["neg"]
        u, i, j = gather_triplet(users_all, items_all, batch)
        ranking = triplet_bpr(u, i, j)
        feature_side = sum(triplet_bpr(u, proj(feat.index_select(0, pos)), proj(feat.index_select(0, neg)))
                           for proj, feat in zip(self.projections, self.raw_features()))
        return ranking + self.reg_weight * feature_side
