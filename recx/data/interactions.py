"""The two data containers every top-N component speaks.

* :class:`RawDataset` is what a format reader returns: interactions keyed by the source's own (raw) ids, in a polars
  frame, plus an optional item table with side information. Nothing is indexed or split yet, unless the source ships
  its own split (MMRec's ``x_label``, LATTICE's three JSON files), in which case a ``split`` column carries it.
* :class:`InteractionData` is what models and datamodules read: contiguous integer ids, the train/valid/test pairs as
  ``[n, 2]`` int64 tensors, and per-modality item features as ``[n_items, d]`` float32 tensors. It validates itself and
  saves/loads atomically so that an interrupted ``prepare`` never leaves a half-written cache behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recx.errors import DataError
from recx.files import use_umask

if TYPE_CHECKING:  # the readers build these frames; loading prepared tensors needs no polars (~0.15 s of start-up)
    import polars as pl

SPLITS = ("train", "valid", "test")
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


@dataclass
class RawDataset:
    """Interactions as a source ships them.

    ``interactions`` has columns ``user`` and ``item`` (raw ids, any dtype), optional ``timestamp`` (float) and
    ``rating``, and optional ``split`` (0 train, 1 valid, 2 test) when the source fixes the split itself.
    ``items`` (optional) has an ``item`` column plus side information; when given, its row order defines the item
    catalogue (items without interactions still exist, as in MMRec, whose feature rows are indexed by item id).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = {"user", "item"} - set(self.interactions.columns)
        if missing:
            raise DataError(f"interactions lack column(s) {sorted(missing)}", field=",".join(sorted(missing)))
        if self.items is not None and "item" not in self.items.columns:
            raise DataError("item table lacks an 'item' column", field="item")


@dataclass
class InteractionData:
    """Indexed, split interactions and aligned item features: the input of every top-N model.

    ``user_ids[u]`` / ``item_ids[i]`` give the raw id behind internal index ``u`` / ``i`` (as strings), so results can
    be mapped back to the source. ``item_features`` maps a modality name to a ``[n_items, d]`` float32 tensor.
    """

    name: str
    n_users: int
    n_items: int
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    user_ids: list[str]
    item_ids: list[str]
    item_features: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: folder of the prepared cache (derived artefacts such as kNN graphs are stored there); None for in-memory data
    cache_dir: str | None = None

    # ------------------------------------------------------------------ queries
    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise DataError(f"unknown split '{name}'", fix=f"use one of {list(SPLITS)}")
        return getattr(self, name)

    def item_popularity(self) -> torch.Tensor:
        """Training interactions per item, ``[n_items]`` int64."""
        return torch.bincount(self.train[:, 1], minlength=self.n_items)

    def seen_csr(self, splits: tuple[str, ...] = ("train",)) -> tuple[torch.Tensor, torch.Tensor]:
        """Items each user interacted with in ``splits``, as CSR ``(indptr [n_users+1], indices)``.

        Duplicates are removed and indices are sorted within each row, so the result is canonical.
        """
        pairs = torch.cat([self.split(s) for s in splits]) if splits else torch.empty(0, 2, dtype=torch.long)
        return pairs_to_csr(pairs, self.n_users, self.n_items)

    def stats(self) -> dict[str, Any]:
        n = {s: int(self.split(s).shape[0]) for s in SPLITS}
        total = sum(n.values())
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": total,
            **{f"{s}_interactions": v for s, v in n.items()},
            "density": total / max(1, self.n_users * self.n_items),
            "modalities": {k: list(v.shape) for k, v in self.item_features.items()},
        }

    # --------------------------------------------------------------- validation
    def validate(self) -> "InteractionData":
        """Check shapes, id ranges and feature values; raise a DataError naming the field at fault."""
        for s in SPLITS:
            t = self.split(s)
            if t.dtype != torch.long or t.dim() != 2 or t.shape[1] != 2:
                raise DataError(f"{s} pairs must be an int64 tensor of shape [n, 2], got {tuple(t.shape)} {t.dtype}",
                                field=s)
            if t.numel():
                if int(t[:, 0].min()) < 0 or int(t[:, 0].max()) >= self.n_users:
                    raise DataError(f"{s} has user ids outside [0, {self.n_users})", field=f"{s}.user")
                if int(t[:, 1].min()) < 0 or int(t[:, 1].max()) >= self.n_items:
                    raise DataError(f"{s} has item ids outside [0, {self.n_items})", field=f"{s}.item")
        if self.train.shape[0] == 0:
            raise DataError("the train split is empty", field="train",
                            fix="check the split ratios and the minimum interactions per user")
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise DataError("id maps do not match n_users/n_items", field="user_ids/item_ids")
        for name, feat in self.item_features.items():
            check_features(feat, self.n_items, name)
        return self

    # ------------------------------------------------------------------- saving
    def save(self, directory: str | Path) -> None:
        """Write ``interactions.pt`` + ``meta.json`` (+ one ``feat_<name>.npy`` per modality), each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "train": self.train,
            "valid": self.valid,
            "test": self.test,
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
        }
        atomic_write(directory / "interactions.pt", lambda f: torch.save(payload, f))
        for name, feat in self.item_features.items():
            save_feature(directory, name, feat)
        atomic_write(directory / "meta.json", lambda f: f.write(json.dumps(self.meta, indent=2, default=str).encode()))

    @classmethod
    def load(cls, directory: str | Path, modalities: tuple[str, ...] = ()) -> "InteractionData":
        directory = Path(directory)
        path = directory / "interactions.pt"
        try:
            payload = torch.load(path, weights_only=True)
        except FileNotFoundError as exc:
            raise DataError("prepared dataset not found", path=path, fix="run `recx data prepare <dataset>`") from exc
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt cache
            raise DataError(f"prepared dataset is unreadable ({exc.__class__.__name__})", path=path,
                            fix="delete the folder and run `recx data prepare <dataset>` again") from exc
        meta_path = directory / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        data = cls(meta=meta, cache_dir=str(directory), **payload)
        for name in modalities:
            data.item_features[name] = load_feature(directory, name)
        return data


# ---------------------------------------------------------------------- helpers
def pairs_to_csr(pairs: torch.Tensor, n_rows: int, n_cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicated, row-sorted CSR ``(indptr, indices)`` of ``[n, 2]`` (row, col) pairs."""
    if pairs.numel() == 0:
        return torch.zeros(n_rows + 1, dtype=torch.long), torch.empty(0, dtype=torch.long)
    keys = torch.unique(pairs[:, 0].long() * n_cols + pairs[:, 1].long())  # sorted, unique
    rows = keys // n_cols
    counts = torch.bincount(rows, minlength=n_rows)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, keys % n_cols


def check_features(feat: Any, n_items: int, name: str, path: str | Path | None = None) -> None:
    """Raise a DataError unless ``feat`` is a finite ``[n_items, d]`` float matrix."""
    shape = tuple(feat.shape)
    if len(shape) != 2:
        raise DataError(f"features '{name}' must be 2-D [n_items, d], got shape {shape}", field=name, path=path)
    if shape[0] != n_items:
        raise DataError(
            f"features '{name}' have {shape[0]} rows but the dataset has {n_items} items", field=name, path=path,
            fix="row i must hold the features of item id i; regenerate the feature file for this item set",
        )
    values = feat if isinstance(feat, torch.Tensor) else torch.as_tensor(np.asarray(feat))
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad_rows = (~finite).any(dim=1).nonzero().flatten()
        raise DataError(
            f"features '{name}' contain NaN/inf in {bad_rows.numel()} row(s), first at item {int(bad_rows[0])}",
            field=name, path=path, fix="impute missing features (MMRec uses the mean vector) before training",
        )


def save_feature(directory: Path, name: str, feat: torch.Tensor | np.ndarray) -> Path:
    path = Path(directory) / f"feat_{name}.npy"
    array = feat.numpy() if isinstance(feat, torch.Tensor) else np.asarray(feat)
    atomic_write(path, lambda f: np.save(f, array.astype(np.float32, copy=False)))
    return path


def load_feature(directory: Path, name: str) -> torch.Tensor:
    path = Path(directory) / f"feat_{name}.npy"
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except FileNotFoundError as exc:
        raise DataError(f"features '{name}' have not been prepared", path=path,
                        fix="run `recx data prepare <dataset>` with this modality") from exc
    except ValueError as exc:
        raise DataError(f"features '{name}' are unreadable ({exc})", path=path,
                        fix="delete the file and prepare the dataset again") from exc


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file, and a write
    that fails (a full disk) leaves the previous file intact. The file gets the user's umask, like ``open``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        use_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
