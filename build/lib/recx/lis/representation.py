"""Item representations whose AIS LIS reports: raw features, a model's learned item vectors, or a user's file.

Spec strings (:func:`resolve_representation`):

* ``model`` — the trained recommender's item vectors (``item_representations()``; MOTOR's token-derived vectors for
  ``model=motor``);
* ``feature:<modality>`` — a dataset modality as prepared by recx (``feature:text``, ``feature:image``, ...);
  ``features`` expands to every modality the dataset declares;
* a path: ``.npy`` ``[rows, d]`` indexed by the raw (integer) item id, MMRec's convention for ``*_feat.npy``; or
  ``.npz`` with ``item_ids`` (raw ids) and ``vectors`` ``[n, d]`` for any id scheme. Items the file lacks get a zero
  vector (they contribute no similarity) and are counted in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from recx.data.interactions import InteractionData
from recx.errors import ConfigError, DataError

FeatureLoader = Callable[[str], torch.Tensor]


def expand_representations(specs: list[str], modalities: list[str]) -> list[str]:
    """Replace ``features`` by ``feature:<m>`` for every dataset modality; drop duplicates, keep order."""
    out: list[str] = []
    for spec in specs:
        for item in ([f"feature:{m}" for m in modalities] if str(spec) == "features" else [str(spec)]):
            if item not in out:
                out.append(item)
    return out


def representation_name(spec: str) -> str:
    spec = str(spec)
    if spec.startswith("feature:"):
        return spec.split(":", 1)[1]
    return spec if spec == "model" else Path(spec).stem


def load_vectors_file(path: str | Path, data: InteractionData) -> tuple[torch.Tensor, dict]:
    """Item vectors ``[n_items, d]`` aligned to the dataset from an ``.npy``/``.npz`` file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("representation file not found", path=path,
                        fix="give an .npy [rows, d] indexed by raw item id, or an .npz with item_ids and vectors")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the representation file ({exc})", path=path,
                        fix="save it with numpy.save / numpy.savez") from exc
    if isinstance(archive, np.lib.npyio.NpzFile):
        if "item_ids" not in archive.files or "vectors" not in archive.files:
            raise DataError(f"the .npz holds {archive.files}, not item_ids + vectors", path=path,
                            fix="np.savez(path, item_ids=..., vectors=...)")
        ids = [str(x) for x in archive["item_ids"].tolist()]
        vectors = np.asarray(archive["vectors"], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise DataError(f"vectors {vectors.shape} do not match {len(ids)} item_ids", path=path, field="vectors")
        row_of = {raw: r for r, raw in enumerate(ids)}
    else:
        vectors = np.asarray(archive, dtype=np.float32)
        if vectors.ndim != 2:
            raise DataError(f"expected a [rows, d] array, got shape {vectors.shape}", path=path)
        try:
            row_of = {raw: int(raw) for raw in data.item_ids}
        except ValueError as exc:
            raise DataError(f"dataset '{data.name}' has non-integer item ids, so .npy rows cannot be matched",
                            path=path, fix="save an .npz with item_ids and vectors instead") from exc
    if not np.isfinite(vectors).all():
        raise DataError("representation file contains NaN/inf", path=path, field="vectors",
                        fix="replace or drop the broken rows before computing AIS")
    rows = np.array([row_of.get(raw, -1) for raw in data.item_ids])
    present = (rows >= 0) & (rows < vectors.shape[0])
    out = np.zeros((data.n_items, vectors.shape[1]), dtype=np.float32)
    out[present] = vectors[rows[present]]
    report = {"file": str(path), "dim": int(vectors.shape[1]), "items_missing": int((~present).sum())}
    if not present.any():
        raise DataError(f"the file covers none of the {data.n_items} items of '{data.name}'", path=path,
                        fix="index rows by the dataset's raw item ids")
    return torch.from_numpy(out), report


def resolve_representation(spec: str, data: InteractionData, *, net=None,
                           load_feature: FeatureLoader | None = None) -> tuple[torch.Tensor, dict]:
    """A representation spec → ``(vectors [n_items, d], report)``."""
    spec = str(spec)
    if spec == "model":
        if net is None:
            raise ConfigError("representation 'model' needs a trained model", field="representation",
                              fix="give ckpt=<run>/checkpoints/best.ckpt, or use feature:<modality> or a file")
        try:
            vectors = net.item_representations()
        except NotImplementedError as exc:
            raise ConfigError(f"{type(net).__name__} has no item representations", field="representation",
                              fix="drop 'model' from the representations for this model") from exc
        return vectors.detach().float(), {"source": type(net).__name__, "dim": int(vectors.shape[1])}
    if spec.startswith("feature:"):
        modality = spec.split(":", 1)[1]
        if load_feature is None:
            raise ConfigError(f"cannot load modality '{modality}' here", field="representation")
        vectors = load_feature(modality)
        return vectors.float(), {"modality": modality, "dim": int(vectors.shape[1])}
    if Path(spec).suffix in (".npy", ".npz") or Path(spec).exists():
        return load_vectors_file(spec, data)
    raise ConfigError(f"unknown representation '{spec}'", field="representation",
                      fix="use model, features, feature:<modality>, or a path to an .npy/.npz of item vectors")
