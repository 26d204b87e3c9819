"""DualGNN (Wang et al., IEEE TMM 2021, "DualGNN: Dual Graph Neural Network for Multimedia Recommendation").

DualGNN learns one user preference per modality on the user–item graph, fuses a user's modality preferences with
user-specific weights, and then lets every user borrow the fused preference of the users she co-interacts with most.
For every loaded modality m (``dataset.modalities``: one, two or more, any names):

* **single-modal representation learning** (a GCN over the user–item graph; MMRec's ``GCN``)::

      x_m   = row_l2_normalise([P_m ; MLP_m(F_m)])          P_m ∈ R^{U×d} user preference, MLP_m: F_m → 4d → d
      x̂_m   = x_m + Â x_m + Â² x_m                           (n_layers = 2, layers *summed*, no transforms)

  with ``Â = D^-1/2 A D^-1/2`` the user–item adjacency without self loops (recx's ``train_adjacency``) and
  ``MLP_m = Linear → LeakyReLU → Linear`` (``Projector(hidden=4d)``). Items carry no ID embedding: an item is its
  projected features plus what propagation brings, which is why DualGNN can rank items it has barely seen.
* **multimodal fusion** (MMRec ``construction='weighted_sum'``): per-user weights ``w_u ∈ R^M`` (learned; initialised
  as MMRec, a softmax over modalities of Xavier-normal noise with std √(2/(U+M)), i.e. ≈ 1/M; not re-normalised
  afterwards)::

      u = Σ_m w_{u,m} · x̂_m[u]          i = Σ_m x̂_m[i]      (items: plain sum over modalities)

* **user co-occurrence graph**: each user's ``user_knn_k`` users with the most co-interacted training items
  (``cooccurrence_knn``), weights ``softmax`` over those co-occurrence counts (``user_aggr='softmax'``, MMRec) or
  uniform (``'mean'``); one hop: ``u ← u + Σ_{v∈N(u)} s_uv · u_v`` (a fixed sparse product, :class:`FixedSparseGraph`).
* **prediction** ``ŷ_ui = ⟨u, i⟩``; **loss** (MMRec)::

      L = -mean(log₂ σ(ŷ_ui - ŷ_uj)) + reg_weight · (Σ_m mean(P_m[users]²) + mean(w²))

  (the log₂ BPR of MMRec and of the authors' code; mean of squares, not ½‖·‖²/B).

The user–user graph needs **no extra file**: MMRec/the authors require a precomputed ``user_graph_dict.npy``
(``preprocessing/dualgnn-gen-u-u-matrix.py``, the most frequent MMRec support question); recx derives it from the
training pairs on first use and caches it on the dataset object (:func:`user_cooccurrence_graph`).

Deliberate differences:

* ``user_knn_k`` = 40 as MMRec's and the authors' code (hard-coded ``self.k = 40``; ``--sampling 40``), not 10.
* Users with fewer than ``k`` co-interacting users: the softmax runs over their real neighbours only. MMRec pads the
  list by re-drawing existing neighbours at random every epoch (so duplicates get extra softmax mass); recx's graph
  is fixed and deterministic. Users with no co-interacting user get no user-graph term, as in MMRec. Ties in the
  co-occurrence counts go to the lower user index (MMRec: ``torch.topk`` order).
* Modalities are generic (MMRec hard-codes image + text). With one modality there are no fusion weights
  (``u = x̂[u]``), as MMRec does with one modality.
* Dead code of MMRec is left out: the per-modality edge dropping (``edge_index_drop*`` is built but never used),
  the item fusion weights ``weight_i`` (only ever regularised, never used in a score), ``MLP_user``,
  ``result_embed``. MMRec scores with the representations of the *last training batch* (computed before its
  optimiser step); recx recomputes them from the current weights once per evaluation. ``score_with=last_batch``
  (set by ``protocol=mmrec``; :data:`recx.topn.models.base.SCORE_WITH`) scores as MMRec does.
* ``Projector`` initialises the MLP with Xavier-normal weights and zero biases (MMRec: PyTorch's default Linear init).
* Not implemented: the modality-missing setting the paper motivates (the authors' code builds node-dropped edge
  lists for it but never uses them) and the authors' other fusion variants (``mean``, ``max``, ``cat_mlp``);
  ``weighted_sum`` is what MMRec and the authors' defaults run. The paper's full text was not retrievable here; the
  equations follow the authors' code (wqf321/dualgnn) and MMRec's ``src/models/dualgnn.py``, which agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_features
from recx.topn.graph import lightgcn_propagate, train_adjacency
from recx.topn.knn import FixedSparseGraph, KNNGraph, user_cooccurrence_graph
from recx.topn.layers import Projector
from recx.topn.losses import gather_triplet, triplet_bpr
from recx.topn.models.base import TopNModel

LN2 = math.log(2.0)


#: ``user_aggr`` values of :func:`user_graph_weights`
USER_AGGRS = ("softmax", "mean")


def user_graph_weights(counts: torch.Tensor, mode: str = "softmax") -> torch.Tensor:
    """Aggregation weights of the user co-occurrence graph from its ``[n_users, k]`` counts (0 = padding edge).

    ``softmax``: ``exp(c_uv) / Σ_{v'} exp(c_uv')`` over the real neighbours (MMRec/DualGNN's ``user_aggr_mode``);
    ``mean``: ``1/|N(u)|``. Rows without any real neighbour get all-zero weights.
    """
    valid = counts > 0
    if mode == "softmax":
        logits = counts.float().masked_fill(~valid, float("-inf"))
        weights = torch.softmax(logits, dim=1)
        return torch.where(valid, weights, torch.zeros_like(weights))  # all-padding rows: NaN → 0
    if mode == "mean":
        return valid.float() / valid.sum(dim=1, keepdim=True).clamp_min(1).float()
    raise ConfigError(f"unknown user graph aggregation '{mode}'", field="model.user_aggr", fix="use softmax or mean")


def user_graph(data: InteractionData, k: int, mode: str = "softmax") -> FixedSparseGraph:
    """The user co-occurrence graph with DualGNN's aggregation weights (``u ← u + user_graph.propagate(u)``)."""
    counts = user_cooccurrence_graph(data, k)
    return FixedSparseGraph.from_knn(KNNGraph(counts.indices, user_graph_weights(counts.weights, mode)))


class ModalityGCN(nn.Module):
    """One modality's single-modal representation learning (DualGNN; reused by DRAGON's heterogeneous graphs).

    ``x = row_l2([P ; MLP(F)])``, ``x̂ = Σ_{l=0..L} Â^l x``: a user preference table for this modality, the
    projected item features, summed LightGCN-style layers (no transform, no non-linearity).
    """

    def __init__(self, n_users: int, feature_dim: int, dim: int, n_layers: int) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))
        self.projector = Projector(feature_dim, dim, hidden=4 * dim, activation="leaky_relu")

    def forward(self, adjacency: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(torch.cat([self.preference, self.projector(features)]), dim=1)
        return lightgcn_propagate(adjacency, x, self.n_layers) * (self.n_layers + 1)  # the sum of the layers


def fusion_weights(n_users: int, n_modalities: int) -> nn.Parameter:
    """Per-user modality weights, initialised as MMRec: softmax over modalities of Xavier-normal ``[U, M, 1]``."""
    raw = nn.init.xavier_normal_(torch.empty(n_users, n_modalities, 1))
    return nn.Parameter(torch.softmax(raw, dim=1).squeeze(-1))


class _DualGraphBase(TopNModel):
    """What DualGNN and DRAGON share: per-modality GCNs, per-user fusion weights, the user co-occurrence graph."""

    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency", "user_graph")

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int, n_layers: int, user_knn_k: int, user_aggr: str,
                 reg_weight: float, feature_norm: str, score_with: str = "current") -> None:
        super().__init__(data.n_users, data.n_items)
        if n_layers < 0:
            raise ConfigError(f"n_layers must be >= 0, got {n_layers}", field="model.n_layers")
        self.reg_weight = reg_weight
        features = modality_features(data, feature_norm)
        self.modalities = list(features)
        for idx, f in enumerate(features.values()):  # data, not learned: kept out of checkpoints
            self.register_buffer(f"feature_{idx}", f, persistent=False)
        self.gcns = nn.ModuleList([ModalityGCN(data.n_users, f.shape[1], embedding_dim, n_layers)
                                   for f in features.values()])
        self.score_with_last_batch(score_with, self.table_width(embedding_dim))
        # MMRec creates fusion weights only to use them with two modalities; one modality is used as it is.
        self.user_weights = fusion_weights(data.n_users, len(features)) if len(features) > 1 else None
        # Derived from the data, not learned: attributes (not buffers), listed in `derived`.
        self.adjacency = train_adjacency(data)
        self.user_graph = user_graph(data, user_knn_k, user_aggr)

    def table_width(self, embedding_dim: int) -> int:
        """Width of the user and item vectors :meth:`propagate` returns."""
        return embedding_dim

    def features(self) -> list[torch.Tensor]:
        return [getattr(self, f"feature_{idx}") for idx in range(len(self.modalities))]

    def modality_representations(self) -> list[torch.Tensor]:
        """``x̂_m`` of every modality, ``[n_users + n_items, d]`` each."""
        return [gcn(self.adjacency, f) for gcn, f in zip(self.gcns, self.features())]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("vectors", lambda: self.scoring_tables(self.propagate))

    def regularizer(self, users: torch.Tensor) -> torch.Tensor:
        """MMRec's ``Σ_m mean(P_m[users]²) + mean(w²)`` (mean of squares)."""
        reg = sum(gcn.preference.index_select(0, users).pow(2).mean() for gcn in self.gcns)
        if self.user_weights is not None:
            reg = reg + self.user_weights.pow(2).mean()
        return reg

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users_all, items_all = self.propagate()
        self.remember_batch_tables(users_all, items_all)  # score_with=last_batch (MMRec's result_embed)
        ranking = triplet_bpr(*gather_triplet(users_all, items_all, batch)) / LN2  # log₂, as MMRec
        return ranking + self.reg_weight * self.regularizer(batch["users"])


class DualGNN(_DualGraphBase):
    """DualGNN (IEEE TMM 2021): per-modality GCNs, user-specific modality fusion, user co-occurrence aggregation.

    See the module docstring for the equations and every deliberate difference from the paper and MMRec.
    """

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 2, user_knn_k: int = 40,
                 user_aggr: str = "softmax", reg_weight: float = 1e-3, feature_norm: str = "none",
                 score_with: str = "current") -> None:
        super().__init__(data, embedding_dim, n_layers, user_knn_k, user_aggr, reg_weight, feature_norm, score_with)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        reps = self.modality_representations()
        user_parts = torch.stack([r[: self.n_users] for r in reps], dim=1)  # [U, M, d]
        if self.user_weights is None:
            users = user_parts[:, 0]
        else:
            users = (self.user_weights.unsqueeze(-1) * user_parts).sum(dim=1)
        items = torch.stack([r[self.n_users:] for r in reps]).sum(dim=0)
        users = users + self.user_graph.propagate(users)
        return users, items
