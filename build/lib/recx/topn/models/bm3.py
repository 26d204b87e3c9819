"""BM3 (Zhou et al., WWW 2023, "Bootstrap Latent Representations for Multi-modal Recommendation").

Self-supervised, BYOL-style: no negative sampling (``batch["neg"]`` is ignored) and no target network. For a batch of
observed pairs ``(u, i)``:

* online embeddings: ``(h_u, h_i) = LightGCN_L([E_user; E_item])`` over the normalised user–item graph, then
  ``h_i ← h_i + E_item[i]`` (the raw item-ID embedding is added once more, as the official code does);
* modality embeddings: ``h_i^m = W_m f_i^m`` for every loaded modality ``m`` (one linear projection each);
* targets: ``h̃ = dropout_p(h).detach()`` (dropout is the only augmentation; no gradient through the targets);
* a shared predictor ``P`` (Linear d→d) maps online embeddings into the space where they meet their targets:

  ``L = [1 − cos(P h_u, h̃_i)] + [1 − cos(P h_i, h̃_u)] + reg_weight · (‖H_U‖_F + ‖H_I‖_F) / n_items
       + cl_weight · Σ_m ([1 − cos(P h_i^m, h̃_i)] + [1 − cos(P h_i^m, dropout_p(h_i^m).detach())])``

  where ``H_U``, ``H_I`` are the *whole* online tables (MMRec's ``EmbLoss``: unsquared Frobenius norms divided by the
  number of items, not a per-batch squared L2 term);
* score ``s(u, i) = ⟨P h_u, P h_i⟩``. The modality embeddings do not enter the score: features shape the shared
  predictor and, through it, the geometry of the ID embeddings.

Defaults follow MMRec's BM3.yaml and the BM3 README's best Baby setting: d=64, L=1, dropout 0.5, reg_weight 0.1,
cl_weight 2.0; item features are *trainable* (MMRec wraps them in ``nn.Embedding.from_pretrained(freeze=False)``) and
raw (no normalisation).

Deliberate differences:

* modalities are generic: the per-modality terms are summed over whatever ``dataset.modalities`` are loaded (MMRec
  hard-codes a text and an image term, both weighted by ``cl_weight``);
* targets are dropped out on the batch rows rather than on the whole table before indexing (the same distribution per
  row; a user or item repeated within a batch gets independent masks instead of a shared one);
* the modality projections are :class:`~recx.topn.layers.Projector` (Xavier-normal weight as in MMRec, zero bias
  instead of PyTorch's default uniform bias); ``P`` is Xavier-normal with PyTorch's default bias, as in MMRec;
* ``train_features=False`` freezes the raw features (saves memory on large catalogues); MMRec has no such switch;
* conf/model/bm3.yaml sets lr 5e-3 (MMRec: 1e-3 for up to 1000 epochs), chosen on ml100k validation recall for
  recx's short training budgets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.topn.features import modality_features
from recx.topn.graph import lightgcn_propagate, train_adjacency
from recx.topn.layers import Projector
from recx.topn.losses import negative_cosine
from recx.topn.models.base import TopNModel


class BM3(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency",)

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 1, dropout: float = 0.5,
                 reg_weight: float = 0.1, cl_weight: float = 2.0, train_features: bool = True,
                 feature_norm: str = "none") -> None:
        super().__init__(data.n_users, data.n_items)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_layers, self.dropout = n_layers, dropout
        self.reg_weight, self.cl_weight = reg_weight, cl_weight
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.predictor = nn.Linear(embedding_dim, embedding_dim)
        nn.init.xavier_normal_(self.predictor.weight)

        feats = modality_features(data, feature_norm)
        self.modalities = list(feats)
        # Trainable (MMRec) or frozen (requires_grad=False), the features are parameters and travel in checkpoints.
        self.features = nn.ParameterDict({m: nn.Parameter(f.clone(), requires_grad=train_features)
                                          for m, f in feats.items()})
        self.projections = nn.ModuleDict({m: Projector(f.shape[1], embedding_dim) for m, f in feats.items()})
        # Not a buffer: derived from the data, kept out of checkpoints (see LightGCN).
        self.adjacency = train_adjacency(data)

    # ------------------------------------------------------------ embeddings
    def online(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The online user and item tables: LightGCN(L) output, item side plus its raw ID embedding."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = lightgcn_propagate(self.adjacency, ego, self.n_layers)
        return final[: self.n_users], final[self.n_users:] + self.item_embedding.weight

    def modality_embedding(self, modality: str, items: torch.Tensor) -> torch.Tensor:
        return self.projections[modality](self.features[modality].index_select(0, items))

    def _predicted(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.online()
        return self.predictor(users), self.predictor(items)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("predicted", self._predicted)

    # ------------------------------------------------------------------ loss
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.dropout(x.detach(), self.dropout, training=True)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = batch["users"], batch["pos"]  # no negatives: BM3 bootstraps from positives only
        users_all, items_all = self.online()
        # index_select, not x[idx]: its backward is deterministic on CPU (advanced indexing scatters in parallel)
        u, i = users_all.index_select(0, users), items_all.index_select(0, items)
        u_target, i_target = self._target(u), self._target(i)
        alignment = negative_cosine(self.predictor(u), i_target) + negative_cosine(self.predictor(i), u_target)
        reg = (torch.linalg.norm(users_all) + torch.linalg.norm(items_all)) / self.n_items
        contrast = u.new_zeros(())
        for m in self.modalities:
            h = self.modality_embedding(m, items)
            predicted = self.predictor(h)
            contrast = contrast + negative_cosine(predicted, i_target) + negative_cosine(predicted, self._target(h))
        return alignment + self.reg_weight * reg + self.cl_weight * contrast
