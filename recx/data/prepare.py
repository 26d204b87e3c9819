"""``recx data download|prepare``: raw files -> verified raw folder -> indexed, split, cached tensors.

Layout under the data directory (``RECX_DATA_DIR``, default ``./data``)::

    <data_dir>/<dataset>/raw/                   files as fetched (checksummed)
    <data_dir>/<dataset>/prepared/<key>/        interactions.pt, meta.json, feat_<modality>.npy

``<key>`` hashes everything that changes the result (the source's options and the split), so a different split
never reads a stale cache, and preparing twice is free. Features are built on demand, per modality, the first time a
model asks for them (the text encoder is slow and optional; an ID-based model never pays for it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from recx.data.download import fetch, is_current, mirror_root
from recx.data.interactions import InteractionData, check_features, load_feature, save_feature
from recx.errors import DataError

DATA_DIR_ENV = "RECX_DATA_DIR"
PREPARE_VERSION = 1  # bump when the prepared layout or indexing rules change


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).expanduser()


def describe(obj: Any) -> dict:
    """A JSON-able description of a configured object: its class and its public attributes."""
    key = obj.cache_key() if hasattr(obj, "cache_key") else {k: v for k, v in vars(obj).items()
                                                              if not k.startswith("_")}
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", **key}


def unverified_fingerprint(source: Any, raw_dir: Path) -> list:
    """Size and mtime of raw files that have no recorded checksum (user-supplied data such as MMRec folders).

    Their content is not pinned by a checksum, so the cache key must change when they do; verified files are pinned
    by their checksum already and need no fingerprint.
    """
    names = sorted({f.name for files in source.file_sets() for f in files if f.checksum is None})
    stats = []
    for name in names:
        path = Path(raw_dir) / name
        if path.is_file():
            st = path.stat()
            stats.append([name, st.st_size, st.st_mtime_ns])
    return stats


def cache_key(source: Any, split: Any, raw_dir: Path | None = None) -> str:
    payload = {"v": PREPARE_VERSION, "source": describe(source), "split": describe(split)}
    if raw_dir is not None:
        payload["unverified_raw_files"] = unverified_fingerprint(source, raw_dir)
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def raw_dir_of(source: Any, data_dir: Path) -> Path:
    return Path(data_dir) / source.name / "raw"


def prepared_dir_of(source: Any, split: Any, data_dir: Path) -> Path:
    raw_dir = raw_dir_of(source, data_dir)
    return Path(data_dir) / source.name / "prepared" / cache_key(source, split, raw_dir)


def has_unverified_files(source: Any) -> bool:
    return any(f.checksum is None for files in source.file_sets() for f in files)


def download(source: Any, data_dir: Path | None = None, *, from_dir: str | Path | None = None,
             mirror: str | Path | None = None, log: Callable[[str], None] = lambda m: None) -> Path:
    """Make one complete set of the source's raw files present and verified; return the raw folder."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    raw_dir = raw_dir_of(source, data_dir)
    file_sets = source.file_sets()
    if not file_sets:
        return raw_dir
    for files in file_sets:  # already there and current? (files given with --from are always copied afresh)
        if from_dir is None and all(is_current(f, raw_dir, mirror_root() if mirror is None else Path(mirror))
                                    for f in files):
            log(f"raw files present in {raw_dir}")
            return raw_dir
    errors = []
    for allow_network in (False, True):  # local copies first, then the network
        for files in file_sets:
            if allow_network and not any(f.url for f in files):
                continue
            try:
                fetch(files, raw_dir, from_dir=from_dir, mirror=mirror, allow_network=allow_network, log=log)
                return raw_dir
            except DataError as exc:
                errors.append(exc.message)
    raise DataError(
        f"could not obtain the raw files of '{source.name}': " + "; ".join(dict.fromkeys(errors)),
        path=raw_dir, fix=getattr(source, "instructions", None),
    )


def prepare(source: Any, split: Any, data_dir: Path | None = None, *, modalities: tuple[str, ...] = (),
            from_dir: str | Path | None = None, mirror: str | Path | None = None, force: bool = False,
            log: Callable[[str], None] = lambda m: None) -> InteractionData:
    """Return the dataset ready for a datamodule, building and caching whatever is missing."""
    from recx.data.indexing import index_raw

    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    unknown = [m for m in modalities if m not in source.modalities]
    if unknown:
        raise DataError(f"dataset '{source.name}' has no modality {unknown}", field="dataset.modalities",
                        fix=f"choose a subset of {list(source.modalities)}")
    fetched: list[Path] = []

    def raw_files() -> Path:
        """The verified raw folder, fetched at most once per call (a --from copy is not repeated)."""
        if not fetched:
            fetched.append(download(source, data_dir, from_dir=from_dir, mirror=mirror, log=log))
        return fetched[0]

    if has_unverified_files(source) or from_dir is not None:
        raw_files()  # unpinned files must be present (and fresh from --from) to know which cache matches them
    out_dir = prepared_dir_of(source, split, data_dir)
    if force or not (out_dir / "interactions.pt").is_file():
        raw_dir = raw_files()
        log(f"reading {source.name} from {raw_dir}")
        raw = source.read(raw_dir)
        frame, user_ids, item_ids = index_raw(raw)
        frame = frame.with_columns(split.assign(frame).alias("split"))
        parts = {}
        for code, name in enumerate(("train", "valid", "test")):
            sub = frame.filter(frame["split"] == code)
            parts[name] = torch.from_numpy(sub.select(["u", "i"]).to_numpy().astype("int64")).reshape(-1, 2)
        data = InteractionData(
            name=source.name, n_users=len(user_ids), n_items=len(item_ids), user_ids=user_ids, item_ids=item_ids,
            meta={"source": describe(source), "split": describe(split), "raw_dir": str(raw_dir),
                  "prepare_version": PREPARE_VERSION, "reader": raw.meta},
            **parts,
        )
        data.validate()
        data.save(out_dir)
        log(f"prepared {source.name}: {data.stats()} -> {out_dir}")
    data = InteractionData.load(out_dir)
    for modality in modalities:
        path = out_dir / f"feat_{modality}.npy"
        if force or not path.is_file():
            raw_dir = raw_files() if source.file_sets() else raw_dir_of(source, data_dir)
            log(f"building '{modality}' features for {source.name}")
            feat = source.feature(modality, raw_dir, data.item_ids)
            check_features(feat, data.n_items, modality)
            save_feature(out_dir, modality, feat)
        data.item_features[modality] = load_feature(out_dir, modality)
    return data.validate()
