"""The MMRec toolbox layout (github.com/enoche/MMRec, ``data/<name>/``).

* ``<name>.inter``: tab-separated, header ``userID itemID rating timestamp x_label``. MMRec reads only ``userID``,
  ``itemID`` and ``x_label`` (0 train, 1 valid, 2 test), so only those are required here; ``rating``/``timestamp``
  are carried when present. Ids are already 0-based integers.
* ``image_feat.npy`` ``[n_items, 4096]`` and ``text_feat.npy`` ``[n_items, 384]``: row ``i`` belongs to item id
  ``i``. Either may be absent (a model needs at least one modality, which the model checks, not the reader).

MMRec sets ``n_items = max(itemID) + 1`` over the whole file, so items without interactions still own a feature row;
we do the same and, when a feature file is present and has more rows, take its row count (the extra rows are items
that never occur in the interactions; they are kept so that item ``i`` stays feature row ``i``). With
``filter_out_cod_start_users: True`` (its default) MMRec drops valid/test rows of users without a training row; we
do the same and record the number of dropped rows and users in ``RawDataset.meta``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recx.data.interactions import RawDataset, check_features
from recx.data.tables import first_line, parse_column, read_table
from recx.errors import DataError

MODALITIES = ("image", "text")
REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
_INTER_FIX = "the first line must be the header 'userID<TAB>itemID<TAB>rating<TAB>timestamp<TAB>x_label'"


def mmrec_files(name: str) -> list[str]:
    """The file names of an MMRec dataset folder: the interactions first, then the optional feature files."""
    return [f"{name}.inter", *(feature_file(m) for m in MODALITIES)]


def feature_file(modality: str) -> str:
    if modality not in MODALITIES:
        raise DataError(f"MMRec has no modality '{modality}'", field="modality", fix=f"use one of {list(MODALITIES)}")
    return f"{modality}_feat.npy"


def read_mmrec(directory: str | Path, name: str) -> RawDataset:
    """Read ``<directory>/<name>.inter`` as a :class:`RawDataset` with MMRec's own split in a ``split`` column.

    ``user``/``item`` are the file's Int64 ids; the item table is ``item = 0 .. n_items-1`` (see the module
    docstring for ``n_items``). ``meta`` records ``n_items``, which feature files exist, and the cold-start rows
    dropped.
    """
    directory = Path(directory)
    inter_path = directory / f"{name}.inter"
    if not inter_path.is_file():
        expected = mmrec_files(name)
        present = [f for f in expected if (directory / f).is_file()]
        missing = [f for f in expected if f not in present]
        where = "the folder does not exist" if not directory.is_dir() else f"present: {present or 'none'}"
        raise DataError(
            f"MMRec dataset '{name}' is incomplete: missing {missing} ({where})", path=directory, field=name,
            fix=f"an MMRec folder holds {expected[0]} (required) and {expected[1]} / {expected[2]} (at least one "
                f"for multimodal models); get them from the MMRec data links (github.com/enoche/MMRec)",
        )
    table = read_table(inter_path, separator="\t", has_header=True, what=f"{name}.inter", fix=_INTER_FIX)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{name}.inter header (line 1) lacks column(s) {missing}", path=inter_path,
                        field=",".join(missing), fix=_INTER_FIX)
    if table.height == 0:
        raise DataError(f"{name}.inter has a header but no interactions", path=inter_path, fix=_INTER_FIX)
    what = f"{name}.inter"
    columns = [
        parse_column(table, "userID", "id", path=inter_path, what=what).alias("user"),
        parse_column(table, "itemID", "id", path=inter_path, what=what).alias("item"),
    ]
    for column in ("rating", "timestamp"):
        if column in table.columns:
            columns.append(parse_column(table, column, "float", path=inter_path, what=what,
                                        fix=f"'{column}' must be numeric on every line, or drop the column"))
    label = parse_column(table, "x_label", "int", path=inter_path, what=what,
                         fix="x_label is 0 (train), 1 (valid) or 2 (test)")
    bad = ~label.is_in([0, 1, 2])
    if bad.any():
        raise DataError(f"{what} line {first_line(table, bad)}: x_label {label.filter(bad)[0]} is not 0, 1 or 2",
                        path=inter_path, field="x_label", fix="x_label is 0 (train), 1 (valid) or 2 (test)")
    columns.append(label.cast(pl.Int8).alias("split"))
    interactions, dropped_rows, dropped_users = drop_cold_start_users(pl.DataFrame(columns))

    n_items = int(interactions["item"].max()) + 1 if interactions.height else 0
    n_items_inter = n_items
    features = {}
    for modality in MODALITIES:
        path = directory / feature_file(modality)
        if path.is_file():
            rows = _feature_shape(path)[0]
            features[modality] = rows
            n_items = max(n_items, rows)
    items = pl.DataFrame({"item": pl.int_range(0, n_items, eager=True, dtype=pl.Int64)})
    meta = {
        "format": "mmrec",
        "inter_path": str(inter_path),
        "rows": interactions.height,
        "n_items": n_items,
        "n_items_in_inter": n_items_inter,
        "feature_rows": features,
        "cold_start_rows_dropped": dropped_rows,
        "cold_start_users_dropped": dropped_users,
    }
    return RawDataset(interactions, items, meta=meta)


def drop_cold_start_users(frame: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """Drop valid/test rows (``split`` 1/2) of users with no train row, as MMRec's ``filter_out_cod_start_users``.

    Such users cannot be scored by an ID-based model (their embedding is never trained). Returns the kept frame
    (row order preserved), the number of dropped rows and of users who lost them.
    """
    has_train = (pl.col("split") == 0).any().over("user")
    kept = frame.filter(has_train)
    dropped = frame.height - kept.height
    users = frame.filter(~has_train)["user"].n_unique() if dropped else 0
    return kept, dropped, users


def _feature_shape(path: Path) -> tuple[int, ...]:
    """The array shape from an ``.npy`` header, without reading the data."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path.name} is not a readable .npy array ({exc})", path=path,
                        fix="regenerate the feature file with numpy.save") from exc
    return tuple(array.shape)


def load_mmrec_feature(directory: str | Path, modality: str, *, n_items: int | None = None) -> np.ndarray:
    """Load ``<directory>/<modality>_feat.npy`` as a float32 ``[rows, d]`` array, checked.

    Checks: the file exists and is a numeric 2-D array, every value is finite (the first bad row is named; MMRec
    fills items without an image with the mean vector, so NaNs point at a broken extraction) and, when ``n_items``
    is given (the catalogue size of :func:`read_mmrec`), that there is exactly one row per item.
    """
    directory = Path(directory)
    path = directory / feature_file(modality)
    if not path.is_file():
        raise DataError(f"MMRec {modality} features not found", path=path, field=modality,
                        fix=f"put {path.name} next to the .inter file, or drop '{modality}' from the modalities")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path.name} is not a readable .npy array ({exc})", path=path, field=modality,
                        fix="regenerate the feature file with numpy.save (no pickled objects)") from exc
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{path.name} holds {array.dtype} values, not numbers", path=path, field=modality,
                        fix="save a float32 matrix [n_items, d]")
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{path.name} must be a 2-D [n_items, d] matrix, got shape {tuple(array.shape)}",
                        path=path, field=modality, fix="row i holds the feature vector of item id i")
    array = np.ascontiguousarray(array, dtype=np.float32)
    check_features(array, array.shape[0] if n_items is None else n_items, modality, path=path)
    return array
