"""LATTICE (Zhang et al., ACM MM 2021, "Mining Latent Structures for Multimedia Recommendation").

For every modality m (whatever ``dataset.modalities`` loads) LATTICE keeps two item–item kNN graphs:

* the *original* graph ``O_m`` from the raw features: cosine similarity, each item's ``knn_k`` most similar items
  (itself included) with similarity weights, ``D^-1/2 S D^-1/2`` normalised; fixed, built once and cached on disk;
* the *learned* graph from projected features ``f̃_m = W_m f_m + b_m`` (``feat_embed_dim``): the same kNN
  construction, whose edge *weights* stay differentiable in ``W_m`` (neighbour choice is a top-k and is not).

With modality importances ``α = softmax(w)`` (one learnable scalar per modality) the item graph is::

    L = sym_norm( Σ_m α_m · kNN_sim(f̃_m) )                  (learned part, combined before normalisation)
    A = (1 - λ) · L + λ · Σ_m α_m · O_m                       (λ = lambda_coeff, skip connection to the original)
    h = A^{n_layers} · E_item                                (item-graph convolution of the item ID embeddings)

The CF part is LightGCN (``n_ui_layers``) on the user–item graph: ``(e_u, e_i) = mean_l Â^l [E_user; E_item]``.
Final vectors: ``user = e_u``, ``item = e_i + h / ‖h‖``; score = inner product. Loss: BPR + ``reg_weight``·½‖·‖²/B on
the *final* user/positive/negative vectors of the batch (as the official code and MMRec).

When the learned graph is rebuilt (checked in MMRec ``src/models/lattice.py`` and the authors' ``codes/main.py``):
once per epoch, in the first training batch, *with* gradients (so ``W_m`` and ``w`` learn from that batch); the other
batches of the epoch reuse that graph detached. At evaluation the graph is rebuilt from the current weights (MMRec's
``full_sort_predict`` calls ``forward(build_item_graph=True)``); recx builds it once per evaluation and caches it.

Deliberate differences:

* The learned graphs are α-weighted and summed *before* one normalisation, as in the authors' code and MMRec; the
  paper's equations read as normalising each modality's learned graph and mixing it with its original graph before
  the α-weighted sum. recx follows the code that produced the published numbers.
* Modalities are generic: one projection, one original graph and one importance scalar per loaded modality
  (the paper/MMRec hard-code image + text; with two modalities the math is the same).
* The user–item graph is recx's LightGCN adjacency ``D^-1/2 A D^-1/2`` without self loops (the paper says LightGCN);
  the official code and MMRec feed LightGCN the NGCF-style ``D^-1 (A + I)`` (random-walk, with self loops):
  ``ui_norm=rw_self_loops`` (set by ``protocol=mmrec``) uses that one.
* Raw features are frozen by default (the paper treats them as pre-extracted); the official code and MMRec wrap them in
  ``nn.Embedding.from_pretrained(freeze=False)``, so the first batch of every epoch also nudges the raw features.
  ``finetune_features=true`` restores that behaviour.
* The projections ``W_m`` start from Xavier-normal weights and zero biases; MMRec's ``image_trs``/``text_trs`` are
  plain ``nn.Linear`` (PyTorch's Kaiming-uniform weights and ``U(±1/√fan_in)`` biases): ``projection_init=torch``
  (set by ``protocol=mmrec``). It matters: on MMRec's protocol recx's init stopped ~50 epochs earlier and ~0.03
  lower in Recall@20 (docs/mmrec_parity.md); with identical weights the loss, gradients and scores match MMRec's to
  float rounding.
* Negative cosine similarities among the top-k are clamped to 0 (MMRec keeps them; they are rare in a top-10).
* The ``1/B`` of the regulariser is the actual batch size (MMRec divides by the configured ``train_batch_size``).
* kNN graphs are stored as ``[n_items, k]`` neighbour lists and built in memory-bounded chunks (MMRec: dense n×n).
* ``feature_norm`` (default ``none`` = MMRec) only changes the projections' input; the original graphs are always
  built from the raw features (and cached next to the prepared data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.features import modality_features
from recx.errors import ConfigError
from recx.topn.graph import lightgcn_propagate, random_walk_self_loop_adjacency, train_adjacency
from recx.topn.knn import CombinedGraph, KNNGraph, cached_knn_graph, learned_knn_graph, normalize_weights
from recx.topn.layers import Projector
from recx.topn.losses import gather_triplet, l2_penalty, triplet_bpr
from recx.topn.models.base import TopNModel


#: ``ui_norm`` values: sym (D^-1/2 A D^-1/2, recx/LightGCN) or rw_self_loops (D^-1(A+I), the official code and MMRec)
UI_NORMS = ("sym", "rw_self_loops")


class LATTICE(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency", "adjacency_t", "original_graphs")

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, feat_embed_dim: int = 64, knn_k: int = 10,
                 lambda_coeff: float = 0.9, n_layers: int = 1, n_ui_layers: int = 2, reg_weight: float = 1e-5,
                 feature_norm: str = "none", finetune_features: bool = False,
                 ui_norm: str = "sym", projection_init: str = "xavier_normal") -> None:
        super().__init__(data.n_users, data.n_items)
        if not 0.0 <= lambda_coeff <= 1.0:
            raise ValueError(f"lambda_coeff must be in [0, 1], got {lambda_coeff}")
        self.knn_k, self.lambda_coeff = knn_k, lambda_coeff
        self.n_layers, self.n_ui_layers = n_layers, n_ui_layers
        self.reg_weight = reg_weight
        features = modality_features(data, feature_norm)
        self.modalities = list(features)
        # Raw features: data, not learned (kept out of checkpoints) unless fine-tuned as in the official code.
        self.finetune_features = finetune_features
        if finetune_features:
            self.features = nn.ParameterList([nn.Parameter(f.clone()) for f in features.values()])
        else:
            for idx, f in enumerate(features.values()):
                self.register_buffer(f"feature_{idx}", f, persistent=False)
        self.projections = nn.ModuleList([Projector(f.shape[1], feat_embed_dim, init=projection_init)
                                          for f in features.values()])
        self.modal_weight = nn.Parameter(torch.full((len(features),), 0.5))  # softmax → equal importances at start
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        # Derived from the data, never checkpointed (moved with the parameters: `derived`).
        if ui_norm == "sym":
            self.adjacency, self.adjacency_t = train_adjacency(data), None
        elif ui_norm == "rw_self_loops":
            self.adjacency, self.adjacency_t = random_walk_self_loop_adjacency(data.train, data.n_users, data.n_items)
        else:
            raise ConfigError(f"unknown ui_norm '{ui_norm}'", field="model.ui_norm",
                              fix="use sym (D^-1/2 A D^-1/2, LightGCN) or rw_self_loops (D^-1 (A+I), MMRec's LATTICE)")
        self.original_graphs = [cached_knn_graph(data, m, knn_k, weighting="similarity", normalization="sym")
                                for m in self.modalities]
        self._epoch_graph: CombinedGraph | None = None  # this epoch's item graph, detached after its first batch
        self._rebuild = True

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # moves the derived graphs
        self._epoch_graph, self._rebuild = None, True  # rebuilt on the new device
        return out

    def raw_features(self) -> list[torch.Tensor]:
        if self.finetune_features:
            return list(self.features)
        return [getattr(self, f"feature_{idx}") for idx in range(len(self.modalities))]

    # ------------------------------------------------------------ the item graph
    def modality_importance(self) -> torch.Tensor:
        return torch.softmax(self.modal_weight, dim=0)

    def learned_graph(self, alpha: torch.Tensor) -> KNNGraph:
        """``sym_norm(Σ_m α_m kNN_sim(W_m f_m))``: the modalities' learned neighbour lists side by side (an item may
        appear twice in a row; propagation and degrees then add up, exactly as the dense weighted sum)."""
        parts = [learned_knn_graph(proj(feat), self.knn_k, normalization="none")
                 for proj, feat in zip(self.projections, self.raw_features())]
        indices = torch.cat([g.indices for g in parts], dim=1)
        weights = torch.cat([a * g.weights for a, g in zip(alpha, parts)], dim=1)
        return KNNGraph(indices, normalize_weights(indices, weights, "sym"))

    def item_graph(self) -> CombinedGraph:
        """``A = (1-λ) L + λ Σ_m α_m O_m``, differentiable in the projections and the modality importances."""
        alpha = self.modality_importance()
        parts: list = [(1.0 - self.lambda_coeff, self.learned_graph(alpha))]
        parts += [(self.lambda_coeff * a, g) for a, g in zip(alpha, self.original_graphs)]
        return CombinedGraph(parts)

    def on_epoch_start(self, epoch: int) -> None:
        self._rebuild = True  # MMRec's pre_epoch_processing: a fresh learned graph in the epoch's first batch

    def _training_graph(self) -> CombinedGraph:
        if self._rebuild or self._epoch_graph is None:
            graph = self.item_graph()
            self._epoch_graph, self._rebuild = graph.detach(), False
            return graph  # first batch of the epoch: gradients reach the projections and importances
        return self._epoch_graph

    # ---------------------------------------------------------------- forward
    def forward_vectors(self, graph: CombinedGraph) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.item_embedding.weight
        for _ in range(self.n_layers):
            h = graph.propagate(h)
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = lightgcn_propagate(self.adjacency, ego, self.n_ui_layers, transpose=self.adjacency_t)
        users, items = final[: self.n_users], final[self.n_users:]
        return users, items + F.normalize(h, p=2, dim=1)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("vectors", lambda: self.forward_vectors(self.item_graph()))

    def training_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors over the epoch's learned graph: rebuilt with gradients in the epoch's first batch only."""
        return self.forward_vectors(self._training_graph())

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users_all, items_all = self.training_vectors()
        u, i, j = gather_triplet(users_all, items_all, batch)
        return triplet_bpr(u, i, j) + self.reg_weight * l2_penalty(u, i, j, batch_size=u.shape[0])
