"""The LATTICE JSON layout (github.com/CRIPAC-DIG/LATTICE, ``data/<dataset>/5-core/``).

Three files, ``train.json``, ``val.json`` and ``test.json``, each a JSON object ``{"<user index>": [item indices]}``;
the split is the file a pair comes from. Indices are 0-based integers shared by the three files. An optional
``item2id.json`` (``{"<ASIN>": item index}``) next to the split files (the LATTICE repo keeps it one folder up; copy
it next to them) adds an ``asin`` column to the item table, so side information can be joined by ASIN.

The item catalogue is ``0 .. n_items-1`` with ``n_items = max(item index) + 1`` (or the size of ``item2id.json``
when larger), so internal item ``i`` is LATTICE item ``i``. As for MMRec, valid/test pairs of users without any
training pair are dropped (``meta`` records how many).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from recx.data.interactions import RawDataset
from recx.data.mmrec import drop_cold_start_users
from recx.errors import DataError

SPLIT_FILES = {"train.json": 0, "val.json": 1, "test.json": 2}
_FIX = 'each file is a JSON object {"<user index>": [item index, ...]} with non-negative integer indices'


def read_lattice_json(directory: str | Path) -> RawDataset:
    """Read ``train.json``/``val.json``/``test.json`` of ``directory`` into a :class:`RawDataset` with ``split``.

    Rows come in file order (train, then valid, then test; users and items in the order written), so the first
    occurrence of a duplicated pair is its training one.
    """
    directory = Path(directory)
    missing = [f for f in SPLIT_FILES if not (directory / f).is_file()]
    if missing:
        where = "the folder does not exist" if not directory.is_dir() else \
            f"present: {[f for f in SPLIT_FILES if f not in missing] or 'none'}"
        raise DataError(f"LATTICE JSON files missing: {missing} ({where})", path=directory,
                        fix=f"the folder must hold {list(SPLIT_FILES)}; {_FIX}")
    parts = []
    for file_name, code in SPLIT_FILES.items():
        users, items = _read_split(directory / file_name)
        parts.append(pl.DataFrame({"user": users, "item": items,
                                   "split": np.full(len(users), code, dtype=np.int8)}))
    interactions = pl.concat(parts)
    if interactions.filter(pl.col("split") == 0).height == 0:
        raise DataError("train.json holds no interactions", path=directory / "train.json", fix=_FIX)
    interactions, dropped_rows, dropped_users = drop_cold_start_users(interactions)

    n_items = int(interactions["item"].max()) + 1
    asins = _read_item2id(directory)
    if asins is not None and asins.height:
        n_items = max(n_items, int(asins["item"].max()) + 1)
    items = pl.DataFrame({"item": pl.int_range(0, n_items, eager=True, dtype=pl.Int64)})
    if asins is not None:
        items = items.join(asins, on="item", how="left", maintain_order="left")
    meta = {
        "format": "lattice-json",
        "directory": str(directory),
        "rows": interactions.height,
        "n_items": n_items,
        "cold_start_rows_dropped": dropped_rows,
        "cold_start_users_dropped": dropped_users,
    }
    return RawDataset(interactions, items, meta=meta)


def _load_json(path: Path):
    text = path.read_text(encoding="utf8")
    if not text.strip():
        raise DataError(f"{path.name} is empty", path=path, fix=_FIX)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                        path=path, fix=_FIX) from exc


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split file as parallel ``(user, item)`` int64 arrays."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path.name} holds a JSON {type(data).__name__}, not an object", path=path, fix=_FIX)
    user_keys = list(data)
    users = np.empty(len(user_keys), dtype=np.int64)
    for n, key in enumerate(user_keys):
        try:
            users[n] = int(key)
        except (ValueError, OverflowError):
            raise DataError(f"{path.name}: user key '{key}' is not an integer", path=path, field=key,
                            fix=_FIX) from None
    if users.size and users.min() < 0:
        raise DataError(f"{path.name}: negative user index {int(users.min())}", path=path,
                        field=str(int(users.min())), fix=_FIX)
    lists = list(data.values())
    for key, value in zip(user_keys, lists):
        if not isinstance(value, list):
            raise DataError(f"{path.name}: user '{key}' maps to a JSON {type(value).__name__}, not a list",
                            path=path, field=key, fix=_FIX)
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    flat = [x for v in lists for x in v]
    position = next((n for n, x in enumerate(flat) if type(x) is not int or not 0 <= x < 2**63), None)
    if position is not None:
        owner = user_keys[int(np.searchsorted(np.cumsum(lengths), position, side="right"))]
        raise DataError(f"{path.name}: user '{owner}' lists {flat[position]!r}, not a non-negative item index",
                        path=path, field=str(owner), fix=_FIX)
    items = np.asarray(flat, dtype=np.int64).reshape(-1)
    return np.repeat(users, lengths), items


def _read_item2id(directory: Path) -> pl.DataFrame | None:
    """``item2id.json`` as an ``(asin, item)`` frame, or None when there is none."""
    path = directory / "item2id.json"
    if not path.is_file():
        return None
    data = _load_json(path)
    fix = 'item2id.json is a JSON object {"<ASIN>": item index} with distinct non-negative integer indices'
    if not isinstance(data, dict):
        raise DataError(f"{path.name} holds a JSON {type(data).__name__}, not an object", path=path, fix=fix)
    for asin, index in data.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise DataError(f"{path.name}: '{asin}' maps to {index!r}, not an item index", path=path, field=asin,
                            fix=fix)
    frame = pl.DataFrame({"asin": list(data.keys()), "item": list(data.values())},
                         schema={"asin": pl.Utf8, "item": pl.Int64})
    duplicated = frame["item"].is_duplicated()
    if duplicated.any():
        raise DataError(f"{path.name}: item index {frame.filter(duplicated)['item'][0]} is given to several ASINs",
                        path=path, field="item", fix=fix)
    return frame
