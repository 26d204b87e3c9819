"""MOTOR (Zhang et al., arXiv 2410.19276): ID-free multimodal token representations for any top-N backbone.

No code is public; this is a reconstruction from the abstract and secondary summaries (see the research notes), and it
says so wherever it chooses:

1. **Tokenizer** (:mod:`recx.topn.tokenizer`): each modality's features are product-quantised (``n_subspaces`` × ``K``
   centroids, optionally OPQ) into token ids; an item is its ``T = Σ_m M_m`` tokens.
2. **Token embeddings**: one table per token position (``T`` tables of ``K × d``), shared by every item holding the
   token, so related items exchange information through shared tokens, and the item side has ``T·K·d`` parameters
   instead of ``n_items·d``.
3. **Token Cross Network** (:class:`TokenCrossNetwork`): cross layers over the item's token matrix
   ``X₀ ∈ R^{T×d}``: ``X_{l+1} = X₀ ⊙ (A_l X_l W_l + b_l) + X_l`` (a DCN-v2-style explicit crossing, factorised into
   token mixing ``A_l`` and channel mixing ``W_l`` — our reading of "captures the implicit interaction patterns among
   tokens"), then the mean over tokens.
4. The result **replaces the backbone's item-ID embedding** (``item_embedding``): the backbone's own code and loss are
   untouched (no extra loss, as the paper states). ``item_representation: id`` keeps the ID embedding, which makes
   ID-vs-MOTOR comparisons a single sweep over one key.

Backbones with an ``item_embedding`` table (BPR, LightGCN, VBPR, LATTICE, FREEDOM, BM3, SLMRec) are supported; the
others keep item IDs inside joint tables (MMGCN, GRCN) or have none (DualGNN, DRAGON) and are refused with a clear error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_features
from recx.topn.models.base import MODULE_KEYS, META_KEYS, TopNModel
from recx.topn.tokenizer import ItemTokens, cached_item_tokens

ITEM_TABLE = "item_embedding"


class TokenCrossNetwork(nn.Module):
    """``[B, T, d]`` token embeddings → ``[B, d]`` item representations.

    Each layer crosses every token with a mix of the others: ``X_{l+1} = X₀ ⊙ (A_l X_l W_l + b_l) + X_l``, where
    ``A_l ∈ R^{T×T}`` mixes tokens and ``W_l ∈ R^{d×d}`` mixes channels (a factorised DCN-v2 cross layer on the token
    matrix), so the product with ``X₀`` carries pairwise token interactions; the item is the mean of the crossed tokens.
    Parameters per layer: ``T² + d² + d`` — independent of the number of items, as MOTOR requires.
    """

    def __init__(self, n_tokens: int, dim: int, n_layers: int = 2) -> None:
        super().__init__()
        self.mix = nn.ParameterList(nn.Parameter(torch.eye(n_tokens) / n_tokens + 0.01 * torch.randn(n_tokens, n_tokens))
                                    for _ in range(n_layers))
        self.channel = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
        for layer in self.channel:
            nn.init.xavier_normal_(layer.weight, gain=0.1)  # start near the identity path X_{l+1} ≈ X_l
            nn.init.zeros_(layer.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x0 = x = tokens
        for mix, channel in zip(self.mix, self.channel):
            x = x0 * channel(torch.einsum("st,btd->bsd", mix, x)) + x
        return x.mean(1)


class TokenItemEmbedding(nn.Module):
    """A drop-in for ``nn.Embedding(n_items, d)`` whose rows are computed from the items' tokens.

    ``forward(ids)`` and ``.weight`` behave as an embedding table's do, so backbones use it unchanged.
    """

    def __init__(self, tokens: ItemTokens, dim: int, cross_layers: int = 2) -> None:
        super().__init__()
        sizes = tokens.vocabulary_sizes
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("codes", tokens.codes.long() + offsets, persistent=False)  # derived from the data
        self.token_embedding = nn.Embedding(sum(sizes), dim)
        nn.init.normal_(self.token_embedding.weight, std=0.1)
        self.tcn = TokenCrossNetwork(len(sizes), dim, cross_layers)
        self.embedding_dim = dim
        self.num_embeddings = tokens.codes.shape[0]

    def represent(self, codes: torch.Tensor) -> torch.Tensor:
        """Item representations from offset token ids ``[B, T]``."""
        return self.tcn(self.token_embedding(codes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # a training batch repeats items (positives and negatives of 2,048 triplets on a 1,682-item catalogue):
        # run the token network once per distinct item and gather
        unique, inverse = torch.unique(ids.reshape(-1), return_inverse=True)
        rows = self.represent(self.codes.index_select(0, unique))
        return rows.index_select(0, inverse).view(*ids.shape, -1)

    @property
    def weight(self) -> torch.Tensor:
        return self.represent(self.codes)

    def encode_new(self, tokens: ItemTokens, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Representations of items never seen in training, from their features alone (ID-free)."""
        codes = tokens.encode(features).to(self.offsets.device) + self.offsets
        return self.represent(codes)


def motor_item_parameters(n_items: int, n_modalities: int = 2, n_subspaces: int = 4, n_centroids: int = 256,
                          dim: int = 64, cross_layers: int = 2, min_items_per_centroid: int = 16) -> int:
    """Item-side parameters of MOTOR (token tables + TCN) for a catalogue of ``n_items``, without building it.

    ``T·K·d + L·(T² + d² + d)`` with ``T = n_modalities·n_subspaces`` and ``K`` capped as :class:`MOTOR` caps it; an
    ID table has ``n_items·d``. Beyond ``n_items = 16·n_centroids`` (4,096 for the defaults) MOTOR's count stops growing.
    """
    k = max(2, min(n_centroids, n_items // max(1, min_items_per_centroid), n_items))
    tokens = n_modalities * n_subspaces
    return tokens * k * dim + cross_layers * (tokens * tokens + dim * dim + dim)


def build_backbone(backbone: dict[str, Any], data: InteractionData) -> TopNModel:
    """Instantiate a backbone from its (flat) model config, ignoring the family module's keys."""
    from hydra.utils import get_class

    params = {k: v for k, v in backbone.items() if k not in MODULE_KEYS + META_KEYS + ("_target_",)}
    return get_class(backbone["_target_"])(data=data, **params)


class MOTOR(TopNModel):
    """A backbone whose item-ID embedding is replaced by MOTOR's token representation (see the module docstring)."""

    uses_features = True

    def __init__(self, data: InteractionData, backbone: dict[str, Any], item_representation: str = "motor",
                 n_subspaces: int = 4, n_centroids: int = 256, opq: bool = False, kmeans_iters: int = 20,
                 cross_layers: int = 2, tokenizer_backend: str = "torch", tokenizer_seed: int = 0,
                 min_items_per_centroid: int = 16) -> None:
        super().__init__(data.n_users, data.n_items)
        if item_representation not in ("motor", "id"):
            raise ConfigError(f"unknown item_representation '{item_representation}'",
                              field="model.item_representation", fix="use motor or id")
        self.backbone = build_backbone(dict(backbone), data)
        self.backbone_name = backbone.get("name", backbone["_target_"].rsplit(".", 1)[-1])
        table = getattr(self.backbone, ITEM_TABLE, None)
        if not isinstance(table, nn.Embedding):
            raise ConfigError(
                f"backbone '{self.backbone_name}' has no item-ID embedding table to replace", field="model/backbone",
                fix="use a backbone with an item_embedding table: bpr, lightgcn, vbpr, lattice, freedom, bm3, slmrec")
        self.item_representation = item_representation
        self.tokens: ItemTokens | None = None
        if item_representation == "motor":
            # Tokens only share information if items share them: cap K so a centroid serves >= min_items_per_centroid
            # items on average (on 7k-item Amazon data the paper's K=256 is below the cap anyway).
            k = max(2, min(n_centroids, data.n_items // max(1, min_items_per_centroid)))
            self.tokens = cached_item_tokens(data, modality_features(data), n_subspaces=n_subspaces,
                                             n_centroids=k, opq=opq, kmeans_iters=kmeans_iters,
                                             seed=tokenizer_seed, backend=tokenizer_backend)
            setattr(self.backbone, ITEM_TABLE, TokenItemEmbedding(self.tokens, table.embedding_dim, cross_layers))

    # ---------------------------------------------------------------- delegation
    def loss(self, batch):
        return self.backbone.loss(batch)

    def score(self, users):
        return self.backbone.score(users)

    def user_item_vectors(self):
        return self.backbone.user_item_vectors()

    def item_representations(self):
        return self.backbone.item_representations()

    def on_epoch_start(self, epoch: int) -> None:
        self.backbone.on_epoch_start(epoch)

    # ------------------------------------------------------------------ reports
    def item_parameter_count(self) -> int:
        """Parameters of the item side: the ID table (``n_items·d``) or the token tables + TCN."""
        return sum(p.numel() for p in getattr(self.backbone, ITEM_TABLE).parameters())

    def tokenizer_report(self) -> dict[str, Any]:
        if self.tokens is None:
            return {}
        return {"distortion": self.tokens.distortions(), "tokens_per_item": int(self.tokens.codes.shape[1]),
                "vocabulary": int(sum(self.tokens.vocabulary_sizes))}

    # ---------------------------------------------------------------- new items
    def new_item_vectors(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scoring vectors of items unseen in training, from their features alone.

        Supported where the backbone's item vector of an item without interactions is known in closed form:
        BPR (the representation itself), LightGCN (an isolated node keeps its ego embedding in layer 0 and receives
        nothing afterwards, so its layer mean is ego/(L+1)) and VBPR ([representation; E f]).
        """
        if self.tokens is None:
            raise ConfigError("an ID-based model cannot represent new items", field="model.item_representation",
                              fix="train with item_representation=motor")
        ego = getattr(self.backbone, ITEM_TABLE).encode_new(self.tokens, features)
        name = type(self.backbone).__name__
        if name == "BPR":
            return ego
        if name == "LightGCN":
            return ego / (self.backbone.n_layers + 1)
        if name == "VBPR":
            raw = torch.cat([features[m].float() for m in self.tokens.quantizers], dim=1)
            return torch.cat([ego, self.backbone.projection(raw.to(ego.device))], dim=-1)
        raise ConfigError(f"scoring new items is not available for backbone {name}", field="new_items",
                          fix="use model/backbone=bpr, lightgcn or vbpr to score unseen items")
