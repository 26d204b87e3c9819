"""AlignRec (Liu et al., CIKM 2024, "AlignRec: Aligning and Training in Multimodal Recommendations") — stage 2.

AlignRec aligns three pairs: image↔text inside a multimodal encoder (ICA, stage 1), content↔ID (CCA) and user↔item
(UIA), the last two trained jointly with the ranking loss (stage 2). This module is stage 2 as the authors' released
code computes it (``sjtulyf123/AlignRec_CIKM24``, ``src/models/alignrec.py``; see the research notes), on recx's
shared blocks. With ``x_i`` the item's multimodal feature:

* ``m_i = W_m x_i`` (Linear to ``embedding_dim``; ``x`` is a trainable table initialised from the features);
* behaviour-guided purifier: ``g_i = e_i ⊙ σ(W_g m_i + b_g)`` with ``e_i`` the item-ID embedding;
* ID line ``C = mean_{l≤L} Â^l [E_u; E_i]`` (LightGCN, ``n_ui_layers``; ``Â = D^-1/2 A D^-1/2``, no self loops);
* content line ``h_i = S^{n_mm_layers} g`` over the frozen kNN graph ``S`` of the initial features (``knn_k``
  neighbours by cosine, the item itself included, cosine weights, ``D^-1/2 S D^-1/2`` with ``D`` the row sums), and
  ``h_u = R̂ h_i`` (the user rows of Â);
* vectors ``z = C + [h_u; h_i]``, score ``⟨z_u, z_i⟩``.

Loss of a batch ``(u, i⁺, i⁻)`` of size B, with ``B_reg`` = ``reg_batch_size`` (the configured training batch size,
as the released code divides by its ``train_batch_size``; null: B)::

    BPR(z) + reg_weight · ½(‖z_u‖² + ‖z_i⁺‖² + ‖z_i⁻‖²) / B_reg
      + cl_weight · [InfoNCE_τ(h_i⁺, C_i⁺) + InfoNCE_τ(h_u, C_u)]          # CCA, in-batch negatives, τ = 0.2
      + sim_weight · ‖h_i⁺ h_i⁺ᵀ − cos(x_i⁺, x_i⁺)‖_F / B                   # keep the content similarity
      + ui_cosine_weight · (1 − mean cos(z_u, z_i⁺))                         # UIA

Where ``x`` comes from (``stage``):

* ``both`` (default): stage 1 first — inter-content alignment of the loaded modalities
  (:mod:`recx.topn.models.alignrec_ica`, **recx's reconstruction**, cached with the data) — then stage 2 on its
  unified features; the run says so (console line, ``reconstruction`` in conventions.json and metrics.json, the model
  named ``alignrec [stage 1: recx reconstruction]`` in metrics.json and report.md);
* ``train``: stage 2 alone on ``features=<file or folder>``: an ``.npy`` (rows by raw item id) / ``.npz`` (item_ids +
  vectors), or a folder holding ``image_feat.npy`` (or ``<dataset>_<folder name>/image_feat.npy``), where the
  released code reads its one unified feature (``--multimodal_data_dir``; an MMRec dataset folder gives its image
  features, as the released code without that flag). Without a file: the loaded modalities fused (each
  L2-normalised, scaled by 1/√M, concatenated) — a recx choice;
* ``pretrain``: stage 1 alone; nothing is trained after it and the run scores items zero-shot (user = mean of their
  training items' unified features), so its metrics say what the features are worth on their own.

Every run reports AlignRec's intermediate feature metrics (:mod:`recx.lis.feature_quality`: zero-shot, item-CF,
masked modality) for the raw modalities and for ``x`` under ``features`` in metrics.json.

The defaults are the released code's (``sjtulyf123/AlignRec_CIKM24`` @ bf351b6f). Keys for the places where recx's
earlier version differed, each defaulting to the released behaviour:

* ``linear_init``: ``torch`` (released: ``nn.Linear``'s own init for the feature projection and the purifier gate) |
  ``xavier`` (Xavier-uniform weights, zero biases);
* ``knn_negatives``: ``keep`` (released: MMRec's ``build_knn_normalized_graph`` keeps negative cosines among the k) |
  ``clamp`` (set to 0, as recx's LATTICE graph);
* ``reg_batch_size``: the divisor of the regulariser (released: the configured ``train_batch_size``, so a short last
  batch is divided by it too; the YAML interpolates ``dataset.datamodule.batch_size``) | null (the batch's own size).

Training and evaluation protocol (negatives from training items, only training items masked at test, metrics rounded
to 4 decimals, stop after 30 non-improving validations, 1000 epochs, batch 2048, lr 1e-3 decayed 0.96^(epoch/50))
come with ``protocol=mmrec`` (``conf/protocol_model/mmrec_alignrec.yaml`` adds the fork's ``stopping_step: 30``), so
``model.stage=train model.features=<folder> protocol=mmrec`` is the released stage 2. docs/topn.md lists what remains
(hyper-parameter grid, seed, kNN tie order).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError, DataError
from recx.topn.features import modality_features
from recx.topn.graph import lightgcn_propagate, train_adjacency, users_from_items
from recx.topn.knn import FixedSparseGraph, knn_graph
from recx.topn.losses import gather_triplet, info_nce, triplet_bpr
from recx.topn.models.base import TopNModel


def fused_features(data: InteractionData) -> torch.Tensor:
    """Every loaded modality L2-normalised, scaled by 1/√M and concatenated: one unit-norm vector per item."""
    parts = list(modality_features(data, "l2").values())
    return torch.cat(parts, dim=1) / len(parts) ** 0.5


def feature_report(data: InteractionData, x: torch.Tensor) -> dict:
    """AlignRec's intermediate metrics (zero-shot, item-CF, masked) on validation, for the raw modalities and ``x``."""
    from recx.lis.feature_quality import feature_quality

    quality = {"raw": feature_quality(data, modality_features(data), split="valid"),
               "alignrec": feature_quality(data, {"alignrec": x}, split="valid")}
    return {"feature_quality": {name: {k: v for k, v in r.items() if k != "protocol"} for name, r in quality.items()},
            "feature_quality_split": "valid"}


def similarity_preservation(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``‖h hᵀ − cos(x, x)‖_F / B``: the batch's representation Gram matrix should follow its feature cosines."""
    target = F.normalize(x, dim=-1) @ F.normalize(x, dim=-1).T
    return torch.linalg.matrix_norm(h @ h.T - target.detach()) / h.shape[0]


STAGES = ("both", "train", "pretrain")
LINEAR_INITS = ("torch", "xavier")
KNN_NEGATIVES = ("keep", "clamp")
#: the file the released code reads its unified item feature from (``vision_feature_file`` of its dataset yamls)
FEATURE_FILE = "image_feat.npy"
#: what a run whose stage 1 ran says about it (console, conventions.json, metrics.json, report.md)
RECONSTRUCTION = {
    "label": "stage 1: recx reconstruction",
    "note": "AlignRec's stage 1 (inter-content alignment) here is recx's reconstruction, not the paper's: "
            "per-modality MLP encoders trained with a symmetric InfoNCE on the pre-extracted features stand in for "
            "the BEiT-3 encoder, whose weights and recipe are not public. Stage 2 follows the released code; run it "
            "alone on the released unified features with model.stage=train model.features=<folder>.",
}


def features_path(features: str, data: InteractionData) -> Path:
    """A features file, or the released layout's ``image_feat.npy`` inside a folder: the folder's own, else the one in
    its ``<dataset>_<folder name>/`` sub-folder (``--multimodal_data_dir``), ``<dataset>`` being the dataset's name or
    its end (recx names an MMRec folder ``baby`` as ``mmrec-baby``)."""
    path = Path(features)
    if not path.is_dir():
        return path
    if (path / FEATURE_FILE).is_file():
        return path / FEATURE_FILE
    suffix = f"_{path.name}"
    nested = sorted(sub for sub in path.iterdir() if sub.name.endswith(suffix) and (sub / FEATURE_FILE).is_file())
    named = [sub for sub in nested if data.name.endswith(sub.name[: -len(suffix)])]
    if len(named) == 1:
        return named[0] / FEATURE_FILE
    found = f"; it holds {[sub.name for sub in nested]}" if nested else ""
    raise DataError(f"the features folder holds no {FEATURE_FILE} for dataset '{data.name}' (looked for "
                    f"{FEATURE_FILE} and <dataset>{suffix}/{FEATURE_FILE}){found}", path=path, field="model.features",
                    fix=f"give the folder that holds the unified features as {FEATURE_FILE}, or the .npy/.npz itself")


def stage_inputs(data: InteractionData, stage: str, features: str | None, ica: dict) -> tuple[torch.Tensor, dict]:
    """The item features stage 2 reads (or stage 1 produces), and where they came from."""
    from recx.topn.models.alignrec_ica import cached_ica_features

    if stage not in STAGES:
        raise ConfigError(f"unknown AlignRec stage '{stage}'", field="model.stage", fix=f"use one of {list(STAGES)}")
    if features:
        if stage == "pretrain":
            raise ConfigError("stage=pretrain produces features; it cannot also read a features file",
                              field="model.features", fix="drop model.features, or use model.stage=train")
        from recx.lis.representation import load_vectors_file

        x, report = load_vectors_file(features_path(features, data), data)
        return x, {"source": "file", **report}
    if stage == "train" or (stage == "both" and len(data.item_features) < 2):
        return fused_features(data), {"source": "raw modalities, L2-normalised and concatenated",
                                      **({"note": "one modality: nothing to align in stage 1"}
                                         if stage == "both" else {})}
    x, report = cached_ica_features(data, modality_features(data), **ica)
    return x, {"source": "stage 1 (inter-content alignment)", **report}


class AlignRec(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("item_graph", "adjacency")

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_ui_layers: int = 2, n_mm_layers: int = 1,
                 knn_k: int = 10, reg_weight: float = 1e-4, cl_weight: float = 0.01, sim_weight: float = 0.1,
                 ui_cosine_weight: float = 0.1, temperature: float = 0.2, use_layer_norm: bool = False,
                 finetune_features: bool = True, stage: str = "both", features: str | None = None,
                 ica_dim: int = 128, ica_epochs: int = 50, ica_lr: float = 1e-3, ica_temperature: float = 0.2,
                 ica_seed: int = 0, report_feature_quality: bool = True, linear_init: str = "torch",
                 knn_negatives: str = "keep", reg_batch_size: int | None = None) -> None:
        super().__init__(data.n_users, data.n_items)
        if linear_init not in LINEAR_INITS:
            raise ConfigError(f"unknown linear_init '{linear_init}'", field="model.linear_init",
                              fix=f"use one of {list(LINEAR_INITS)}")
        if knn_negatives not in KNN_NEGATIVES:
            raise ConfigError(f"unknown knn_negatives '{knn_negatives}'", field="model.knn_negatives",
                              fix=f"use one of {list(KNN_NEGATIVES)}")
        self.reg_batch_size = reg_batch_size
        self.n_ui_layers, self.n_mm_layers = n_ui_layers, n_mm_layers
        self.reg_weight, self.cl_weight, self.sim_weight = reg_weight, cl_weight, sim_weight
        self.ui_cosine_weight, self.temperature = ui_cosine_weight, temperature
        self.stage = stage
        x, self.source = stage_inputs(data, stage, features, dict(dim=ica_dim, epochs=ica_epochs, lr=ica_lr,
                                                                   temperature=ica_temperature, seed=ica_seed))
        self._feature_quality = feature_report(data, x) if report_feature_quality else {}
        self.features = nn.Parameter(x.clone(), requires_grad=finetune_features)
        self.register_buffer("initial_features", x, persistent=False)  # the sim loss's fixed target
        self.norm = nn.LayerNorm(x.shape[1]) if use_layer_norm else nn.Identity()
        self.content = nn.Linear(x.shape[1], embedding_dim)
        self.gate = nn.Linear(embedding_dim, embedding_dim)
        if linear_init == "xavier":  # recx's earlier choice; "torch" keeps nn.Linear's init, as the released code
            for layer in (self.content, self.gate):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        # derived from the data, never checkpointed; frozen, so propagated as CSR products
        self.item_graph = FixedSparseGraph.from_knn(knn_graph(
            x, knn_k, weighting="signed" if knn_negatives == "keep" else "similarity", normalization="sym"))
        self.adjacency = train_adjacency(data)
        if stage == "pretrain":  # stage 1 only: score zero-shot from the features, train nothing
            from recx.lis.signals import History, RepresentationSignal

            signal = RepresentationSignal(History(*data.seen_csr(("train",)), data.n_items), x)
            self.register_buffer("zero_shot_users", signal.profiles, persistent=False)
            self.register_buffer("zero_shot_items", signal.items_t.T.contiguous(), persistent=False)
            for parameter in self.parameters():
                parameter.requires_grad_(False)

    def reconstruction_notice(self) -> dict | None:
        """``{label, note}`` when this run's features came from recx's reconstructed stage 1, else None."""
        return dict(RECONSTRUCTION) if str(self.source.get("source", "")).startswith("stage 1") else None

    def feature_report(self) -> dict:
        """Where ``x`` came from and AlignRec's intermediate metrics for the raw modalities and for ``x``."""
        return {**self.source, **self._feature_quality}

    # ------------------------------------------------------------------ forward
    def lines(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, h)``: the ID line and the content line, both ``[n_users + n_items, d]``."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        ids = lightgcn_propagate(self.adjacency, ego, self.n_ui_layers)
        m = self.content(self.norm(self.features))
        h_items = self.item_embedding.weight * torch.sigmoid(self.gate(m))
        for _ in range(self.n_mm_layers):
            h_items = self.item_graph.propagate(h_items)
        # user side: R̂ h = the user rows of Â applied to [0; h_items]
        h_users = users_from_items(self.adjacency, h_items, self.n_users)
        return ids, torch.cat([h_users, h_items])

    def forward_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        ids, content = self.lines()
        z = ids + content
        return z[: self.n_users], z[self.n_users:]

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stage == "pretrain":
            return self.zero_shot_users, self.zero_shot_items
        return self.cached("vectors", self.forward_vectors)

    # --------------------------------------------------------------------- loss
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if self.stage == "pretrain":
            return None  # nothing to train after stage 1
        ids, content = self.lines()
        z = ids + content
        users_all, items_all = z[: self.n_users], z[self.n_users:]
        u, i, j = gather_triplet(users_all, items_all, batch)
        batch_size = self.reg_batch_size or u.shape[0]  # released: the configured batch size, short batches too
        ranking = triplet_bpr(u, i, j)
        regulariser = (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2.0 * batch_size)
        users, pos = batch["users"], batch["pos"]
        item_rows = pos + self.n_users
        cca = (info_nce(content.index_select(0, item_rows), ids.index_select(0, item_rows), self.temperature)
               + info_nce(content.index_select(0, users), ids.index_select(0, users), self.temperature))
        sim = similarity_preservation(content.index_select(0, item_rows), self.initial_features.index_select(0, pos))
        uia = (1.0 - F.cosine_similarity(u, i, dim=-1)).mean()
        return (ranking + self.reg_weight * regulariser + self.cl_weight * cca + self.sim_weight * sim
                + self.ui_cosine_weight * uia)
