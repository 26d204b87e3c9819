"""DRAGON (Zhou, Zhou & Shen, ECAI 2023, "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation"; code: hongyurain/DRAGON, identical in substance to MMRec's ``src/models/dragon.py``).

DRAGON learns *dual* representations: one from heterogeneous user–item graphs, one from homogeneous (item–item and
user–user) graphs, and adds them. For every loaded modality m (``dataset.modalities``; any number, any names):

* **heterogeneous graphs** — DualGNN's single-modal GCN (:class:`~recx.topn.models.dualgnn.ModalityGCN`)::

      x_m = row_l2_normalise([P_m ; MLP_m(F_m)])            P_m ∈ R^{U×d} user embedding for modality m
      x̂_m = x_m + Â x_m + Â² x_m                            (n_layers = 2, LightGCN propagation, layers summed)

  ``Â`` = ``D^-1/2 A D^-1/2`` of the training user–item graph; ``MLP_m`` = Linear(F_m → 4d) → LeakyReLU → Linear(d).
  The users' side is an ID embedding, the items' side their projected modality features (no item ID embedding).
* **attentive concatenation** (MMRec ``construction='cat'``): learned per-user modality weights ``w_u ∈ R^M``
  (initialised ≈ 1/M by a softmax, free afterwards) scale the user's modality parts; items are concatenated as is::

      h_u = ‖_m w_{u,m} · x̂_m[u]        h_i = ‖_m x̂_m[i]                (both M·d wide)

* **homogeneous item–item graph** (frozen, as FREEDOM): per modality the ``knn_k`` = 10 most cosine-similar items
  under the *raw* features (self included), binary edges, ``D^-1/2 S D^-1/2``; combined ``S = Σ_m c_m S_m`` with
  ``c`` = ``modality_weights`` normalised over the loaded modalities (MMRec: ``mm_image_weight`` 0.1 image,
  0.9 text); ``h̃_i = S^{n_mm_layers} h_i`` (n_mm_layers = 1).
* **homogeneous user–user graph**: each user's ``user_knn_k`` = 40 users with most co-interacted items, weights =
  softmax of the co-occurrence counts; ``h̃_u = W^{user_layers} h_u`` (user_layers = 1).
* **dual representations** ``u = h_u + h̃_u``, ``i = h_i + h̃_i``; ``ŷ_ui = ⟨u, i⟩``; **loss** (MMRec)::

      L = -mean(log₂ σ(ŷ_ui - ŷ_uj)) + reg_weight · (Σ_m mean(P_m[users]²) + mean(w²))

What is learned: the user tables ``P_m``, the projection MLPs and the fusion weights ``w``. The item–item graph
(raw features) and the user–user graph (training co-occurrences) are fixed. The user–user graph needs no
``user_graph_dict.npy`` (MMRec's ``tools/generate-u-u-matrix.py``): recx derives it from the training pairs and
caches it on the dataset object; the item–item graphs are cached on disk per modality (``cached_knn_graph``).

Deliberate differences:

* Modalities are generic: one GCN, one kNN graph and one fusion weight per loaded modality; the item-graph
  weights come from ``modality_weights`` (name → weight, ``default_modality_weight`` for names not listed),
  normalised to sum to 1, which reproduces MMRec's ``0.1·S_image + 0.9·S_text`` exactly for image + text and uses
  ``S_m`` alone for a single modality (as MMRec). With one modality there are no fusion weights (as MMRec).
* ``user_knn_k`` = 40 (hard-coded ``self.k = 40`` in both codes; the authors' grid lists k ∈ {30, 40, 50} and
  ``u_layers`` ∈ {1, 2}, which their code ignores — recx honours ``user_layers``). The user-graph softmax runs over
  a user's real neighbours; MMRec pads short neighbour lists with randomly re-drawn neighbours every epoch (see
  DualGNN). Ties in kNN/co-occurrence go to the lower index.
* The combined item graph is built from the per-modality cached graphs with the current weights (MMRec caches the
  combination as ``mm_adj_{knn_k}.pt`` whatever ``mm_image_weight`` is, so a changed weight silently reuses the old
  graph).
* Dead code of MMRec is left out (edge dropping built but unused, ``weight_i``, ``MLP_user``, ``image_trs``/
  ``text_trs`` and the trainable copies of the raw features, which only feed the kNN graph construction); MMRec scores
  with the representations of the last training batch, recx recomputes them once per evaluation
  (``score_with=last_batch``, set by ``protocol=mmrec``, scores as MMRec; see DualGNN).
* ``Projector`` initialises the MLP with Xavier-normal weights and zero biases (MMRec: PyTorch's default).
* The paper text itself was not retrievable here; the equations above follow the authors' released code.
"""

from __future__ import annotations

import torch

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_weights as resolve_modality_weights
from recx.topn.knn import CombinedGraph, FixedSparseGraph, cached_knn_graph
from recx.topn.models.dualgnn import _DualGraphBase

class DRAGON(_DualGraphBase):
    """DRAGON (ECAI 2023): heterogeneous + homogeneous (item–item, user–user) graphs, attentive concatenation.

    See the module docstring for the equations and every deliberate difference from the paper and MMRec.
    """

    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = _DualGraphBase.derived + ("item_graph",)

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 2, n_mm_layers: int = 1,
                 knn_k: int = 10, modality_weights: dict[str, float] | None = None,
                 default_modality_weight: float = 1.0, user_knn_k: int = 40, user_layers: int = 1,
                 user_aggr: str = "softmax", reg_weight: float = 1e-3, feature_norm: str = "none",
                 score_with: str = "current") -> None:
        super().__init__(data, embedding_dim, n_layers, user_knn_k, user_aggr, reg_weight, feature_norm, score_with)
        if n_mm_layers < 0 or user_layers < 0:
            raise ConfigError("n_mm_layers and user_layers must be >= 0", field="model.n_mm_layers")
        self.n_mm_layers, self.user_layers = n_mm_layers, user_layers
        self.item_coefficients = resolve_modality_weights(self.modalities, modality_weights, default_modality_weight)
        # Frozen, derived from the raw features: an attribute (not a buffer), cached on disk per modality.
        self.item_graph = FixedSparseGraph.from_knn(CombinedGraph([
            (c, cached_knn_graph(data, m, knn_k, weighting="binary", normalization="sym"))
            for c, m in zip(self.item_coefficients, self.modalities)
        ]))

    def table_width(self, embedding_dim: int) -> int:
        return len(self.modalities) * embedding_dim  # the modalities' concatenation

    def heterogeneous(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h_u, h_i)``: the attentive concatenation of the per-modality user–item GCN outputs, ``[·, M·d]``."""
        reps = self.modality_representations()
        users = [r[: self.n_users] for r in reps]
        if self.user_weights is not None:
            users = [self.user_weights[:, m:m + 1] * part for m, part in enumerate(users)]
        return torch.cat(users, dim=1), torch.cat([r[self.n_users:] for r in reps], dim=1)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.heterogeneous()
        h_items = items
        for _ in range(self.n_mm_layers):
            h_items = self.item_graph.propagate(h_items)
        h_users = users
        for _ in range(self.user_layers):
            h_users = self.user_graph.propagate(h_users)
        return users + h_users, items + h_items
