"""Item features as models read them: one ``[n_items, d]`` tensor per loaded modality, optionally normalised."""

from __future__ import annotations

import torch
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError


def modality_features(data: InteractionData, feature_norm: str = "none") -> dict[str, torch.Tensor]:
    """The loaded modalities (``dataset.modalities``, in that order) as float tensors, each normalised per ``feature_norm``.

    ``none`` keeps raw values (MMRec), ``standard`` z-scores each column, ``l2`` scales each item to unit norm.
    Raises a ConfigError when the dataset was loaded without features (a feature model on an ID-only dataset).
    """
    if not data.item_features:
        raise ConfigError(
            f"this model reads item features but dataset '{data.name}' was loaded without any",
            field="dataset.modalities", fix="set dataset.modalities (e.g. [image,text]) or use an ID-based model",
        )
    return {name: normalize_features(feat.float(), feature_norm) for name, feat in data.item_features.items()}


def normalize_features(feats: torch.Tensor, feature_norm: str) -> torch.Tensor:
    if feature_norm == "none":
        return feats
    if feature_norm == "standard":
        return (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)
    if feature_norm == "l2":
        return nn.functional.normalize(feats, dim=1)
    raise ConfigError(f"unknown feature_norm '{feature_norm}'", field="model.feature_norm",
                      fix="use none, standard or l2")


#: ``feature_order`` values of :func:`stack_features`
FEATURE_ORDERS = ("modalities", "text_first")


def stack_features(data: InteractionData, feature_norm: str = "none", order: str = "modalities") -> torch.Tensor:
    """All loaded modalities concatenated into one ``[n_items, Σd]`` matrix (VBPR's content vector).

    ``order="modalities"`` keeps ``dataset.modalities`` order; ``"text_first"`` puts text before the others, as
    MMRec's VBPR concatenates ``(text, image)``.
    """
    features = modality_features(data, feature_norm)
    if order == "text_first":
        features = dict(sorted(features.items(), key=lambda kv: kv[0] != "text"))
    elif order not in FEATURE_ORDERS:
        raise ConfigError(f"unknown feature_order '{order}'", field="model.feature_order",
                          fix="use modalities (dataset.modalities order) or text_first (MMRec's VBPR)")
    return torch.cat(list(features.values()), dim=1)


#: MMRec's ``mm_image_weight`` 0.1 (FREEDOM, DRAGON): the item–item graph is 0.1·S_image + 0.9·S_text.
DEFAULT_MODALITY_WEIGHTS = {"image": 0.1, "text": 0.9}


def modality_weights(modalities: list[str], weights: dict[str, float] | None = None,
                     default: float = 1.0) -> list[float]:
    """Weights of the loaded ``modalities`` (names missing from ``weights`` get ``default``), normalised to sum 1.

    With ``image`` and ``text`` loaded this reproduces MMRec's 0.1/0.9; a single modality gets weight 1.
    """
    table = dict(DEFAULT_MODALITY_WEIGHTS if weights is None else weights)
    raw = [float(table.get(m, default)) for m in modalities]
    if any(w < 0 for w in raw) or sum(raw) <= 0:
        raise ConfigError(f"modality weights {dict(zip(modalities, raw))} must be >= 0 with a positive sum",
                          field="model.modality_weights", fix="give every loaded modality a weight >= 0, e.g. "
                                                              "{image: 0.1, text: 0.9}")
    total = sum(raw)
    return [w / total for w in raw]
