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


def stack_features(data: InteractionData, feature_norm: str = "none") -> torch.Tensor:
    """All loaded modalities concatenated into one ``[n_items, Σd]`` matrix (VBPR's content vector)."""
    return torch.cat(list(modality_features(data, feature_norm).values()), dim=1)
