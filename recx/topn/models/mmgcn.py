"""MMGCN (Wei et al., ACM MM 2019): one graph-convolution branch per modality over the user–item graph.

*Multi-modal Graph Convolution Network for Personalized Recommendation of Micro-video.* For every loaded modality m
(``dataset.modalities``, any number) a branch keeps its own node states on the bipartite graph (users then items):

    x⁰ = normalize([P_m ; W_p f_m])           P_m ∈ R^{U×d₀} learned user preferences, W_p f_m projected features
    per layer l = 1..L:
      h  = LeakyReLU(Agg(xˡ⁻¹) W_c)            Agg = mean (D⁻¹A, default) or sum (A) over neighbours (paper eq. 1)
      x̂  = LeakyReLU(W_l xˡ⁻¹ + b_l) + e_id    e_id ∈ R^{(U+I)×d} learned ID embeddings, shared by branches (eq. 5)
      xˡ = LeakyReLU(W_g [h ; x̂] + b_g)        ``combination="concat"`` (the paper's concatenation combiner)
         | LeakyReLU(W_g h + b_g + x̂)          ``combination="sum"``    (its element-wise combiner)
    z = mean_m x^L_m                           fused user/item representation (the paper sums; see below)
    score(u, i) = ⟨z_u, z_i⟩;  loss = BPR + reg_weight · l2_penalty(e_id[u], e_id[i⁺], e_id[i⁻], P_m[u] ∀m)

A (no self loops) is built once from the deduplicated training pairs; mean aggregation divides each row by the node's
degree (isolated nodes aggregate nothing). ``Agg(x) W_c`` equals ``Agg(x W_c)`` (both linear), which is how the
paper and MMRec write it.

Deliberate differences
* vs MMRec (``src/models/mmgcn.py``): (1) MMRec's ``n_layers`` is read but ignored — its GCN hard-codes three layers;
  recx runs ``n_layers`` layers (default 2, MMRec's config value). (2) MMRec's ID embeddings and user preferences are
  plain tensors, not ``nn.Parameter``s, so its optimiser never updates them (they stay at their random init); recx
  learns them, as the paper does. (3) MMRec projects only the image features (Linear 4096→256) and feeds text raw
  (384-d); recx projects every modality to ``latent_dim`` (256) with one Linear, or none with ``latent_dim: null``.
  (4) MMRec's ``concate = 'False'`` is a non-empty string, so its code takes the *concatenation* branch; recx's
  default ``combination: concat`` matches what MMRec actually runs. (5) Regulariser: MMRec uses the element mean of
  the squared batch ID rows plus the mean over *all* users of the image preference; recx uses the shared
  ``l2_penalty`` (½Σ‖·‖²/B) on the batch rows of the ID embeddings and of every modality's preferences, i.e. MMRec's
  ``reg_weight`` r corresponds to about r/d here (d = 64). (6) Modalities are fused by a mean, as MMRec
  (``representation /= num_modal``); the paper writes a sum (the same up to a constant factor of the scores' scale).
  (7) Initialisation: recx gives every projection, ``W_l`` and ``W_g`` Xavier-normal weights; MMRec's GCN does so
  for ``linear_layer1-3`` and ``g_layer1`` only, leaving its ``MLP`` (the image projection) and ``g_layer2/3`` at
  ``nn.Linear``'s own Kaiming-uniform init (``W_c``: PyG's ``uniform(±1/√in)``, the same as recx's). (8) MMRec's
  ``full_sort_predict`` scores with ``self.result``, the representation of the last training batch's forward (one
  optimiser step old); recx propagates afresh for evaluation.
* MMRec's variant, one key each (``protocol=mmrec`` sets all five): ``n_layers: 3`` (what its GCN runs);
  ``freeze_id_and_preferences: true`` (ID embeddings and user preferences stay at their random init, as MMRec's plain
  tensors do; its regulariser then acts only on those frozen tensors, so it changes nothing that trains);
  ``raw_modalities: [text]`` (that modality enters unprojected, at its raw width; names that are not loaded are
  ignored); ``layer_init: mmrec`` (the initialisation of (7); default ``xavier_normal``); ``score_with: last_batch`` (the
  scoring of (8), :data:`recx.topn.models.base.SCORE_WITH`; default ``current``).
* vs the paper: the max-aggregation variant and the "no ID embedding" ablation are not offered.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_features
from recx.topn.graph import bipartite_aggregation_adjacency, sparse_matmul, transpose_csr
from recx.topn.losses import id_and_preference_bpr
from recx.topn.models.base import TopNModel


class _ModalityBranch(nn.Module):
    """One modality's graph-convolution branch (the paper's per-modality GCN)."""

    def __init__(self, n_users: int, feature_dim: int, embedding_dim: int, latent_dim: int | None, n_layers: int,
                 combination: str, layer_init: str = "xavier_normal") -> None:
        super().__init__()
        self.combination = combination
        self.projection = nn.Linear(feature_dim, latent_dim) if latent_dim else None
        in_dim = latent_dim or feature_dim
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, in_dim)))
        self.conv = nn.ModuleList()      # W_c (PyG-style uniform(±1/√in) init = nn.Linear's default)
        self.linear = nn.ModuleList()    # W_l, b_l
        self.combine = nn.ModuleList()   # W_g, b_g
        for layer in range(n_layers):
            d_in = in_dim if layer == 0 else embedding_dim
            self.conv.append(nn.Linear(d_in, d_in, bias=False))
            self.linear.append(nn.Linear(d_in, embedding_dim))
            self.combine.append(nn.Linear(d_in + embedding_dim if combination == "concat" else d_in, embedding_dim))
        # xavier_normal: every W_p, W_l, W_g; mmrec: W_l and the first W_g only (MMRec's GCN leaves its MLP and
        # g_layer2/3 at nn.Linear's own init); biases keep nn.Linear's init either way
        xavier = [self.projection, *self.linear, *self.combine] if layer_init == "xavier_normal" \
            else [*self.linear, self.combine[0]]
        for module in xavier:
            if module is not None:
                nn.init.xavier_normal_(module.weight)

    def forward(self, features: torch.Tensor, id_embedding: torch.Tensor,
                adjacency: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        items = self.projection(features) if self.projection is not None else features
        x = F.normalize(torch.cat([self.preference, items]), dim=1)
        for conv, linear, combine in zip(self.conv, self.linear, self.combine):
            h = F.leaky_relu(conv(sparse_matmul(*adjacency, x)))
            x_hat = F.leaky_relu(linear(x)) + id_embedding
            if self.combination == "concat":
                x = F.leaky_relu(combine(torch.cat([h, x_hat], dim=1)))
            else:
                x = F.leaky_relu(combine(h) + x_hat)
        return x


#: ``layer_init`` values: xavier_normal (recx) or mmrec (nn.Linear's own init for the MLP and g_layer2-3, as MMRec)
LAYER_INITS = ("xavier_normal", "mmrec")


class MMGCN(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency", "adjacency_t")

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 2, latent_dim: int | None = 256,
                 aggregation: str = "mean", combination: str = "concat", reg_weight: float = 1e-4,
                 feature_norm: str = "none", freeze_id_and_preferences: bool = False,
                 raw_modalities: tuple[str, ...] | list[str] = (), layer_init: str = "xavier_normal",
                 score_with: str = "current") -> None:
        super().__init__(data.n_users, data.n_items)
        self.score_with_last_batch(score_with, embedding_dim)
        if combination not in ("concat", "sum"):
            raise ConfigError(f"unknown combination '{combination}'", field="model.combination",
                              fix="use concat or sum")
        if layer_init not in LAYER_INITS:
            raise ConfigError(f"unknown layer_init '{layer_init}'", field="model.layer_init",
                              fix="use xavier_normal or mmrec")
        if n_layers < 1:
            raise ConfigError("MMGCN needs at least one layer", field="model.n_layers", fix="set n_layers >= 1")
        self.reg_weight = reg_weight
        features = modality_features(data, feature_norm)
        self.modalities = list(features)
        for name, feats in features.items():  # derived from the data: moves with the model, not checkpointed
            self.register_buffer(f"features_{name}", feats, persistent=False)
        # names that are not loaded are ignored, so protocol=mmrec's [text] also runs on image-only data
        self.branches = nn.ModuleDict({
            name: _ModalityBranch(data.n_users, feats.shape[1], embedding_dim,
                                  None if name in raw_modalities else latent_dim, n_layers, combination, layer_init)
            for name, feats in features.items()})
        self.id_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(data.n_users + data.n_items,
                                                                            embedding_dim)))
        if freeze_id_and_preferences:  # MMRec: plain tensors the optimiser never sees (kept in checkpoints)
            self.id_embedding.requires_grad_(False)
            for branch in self.branches.values():
                branch.preference.requires_grad_(False)
        # Not a buffer: derived from the data, kept out of checkpoints (listed in `derived`).
        self.adjacency = bipartite_aggregation_adjacency(data.train, data.n_users, data.n_items, aggregation)
        self.adjacency_t = transpose_csr(self.adjacency)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All users' and items' fused representations ``z`` (mean over the modality branches)."""
        z = torch.stack([self.branches[m](getattr(self, f"features_{m}"), self.id_embedding,
                                             (self.adjacency, self.adjacency_t))
                         for m in self.modalities]).mean(0)
        return z[: self.n_users], z[self.n_users:]

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("propagated", lambda: self.scoring_tables(self.propagate))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return id_and_preference_bpr(self, batch)
