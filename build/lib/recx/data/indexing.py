"""Raw ids → contiguous 0-based indices: the step between a format reader and a split.

Rules (they decide which user is ``u = 0``, so they are part of the prepared cache's identity):

* **Users**: sorted unique raw ids. Integer ids sort numerically; string ids that all spell integers (RecBole
  tokens such as ``"196"``) also sort numerically (ties such as ``"7"``/``"007"`` by their text), so the RecBole and
  GroupLens copies of MovieLens index identically; any other ids sort lexicographically.
* **Items**: the order of ``raw.items`` when the reader gives a catalogue (MMRec/LATTICE item ``i`` stays ``i``, and
  items without interactions keep their feature row); an interaction whose item is not in the catalogue is an
  error. Without a catalogue, items follow the user rule.
* **Duplicate (user, item) pairs** keep one row: the earliest by ``timestamp`` when there is one, else the first in
  file order. This is the usual implicit-feedback convention (RecBole and MMRec both drop repeats); the number dropped
  is written to ``raw.meta["duplicates_dropped"]`` (the prepared dataset's meta carries it).

Everything is polars joins and sorts, so a million rows take a fraction of a second.
"""

from __future__ import annotations

import polars as pl

from recx.data.interactions import RawDataset
from recx.errors import DataError

_ROW = "__row__"


def _key(series: pl.Series, what: str) -> pl.Series:
    """A join key for raw ids: Int64 for integer(-valued) ids, else Utf8."""
    dtype = series.dtype
    if dtype.is_integer():
        return series.cast(pl.Int64)
    if dtype.is_float():
        as_int = series.cast(pl.Int64, strict=False)
        if (as_int.is_null() & series.is_not_null()).any() or (as_int.cast(pl.Float64) != series).any():
            example = series.filter(as_int.is_null() | (as_int.cast(pl.Float64) != series))[0]
            raise DataError(f"{what} id {example} is not a whole number", field=what,
                            fix="ids must be integers or strings")
        return as_int
    return series.cast(pl.Utf8)


def _harmonise(a: pl.Series, b: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Give two key series one dtype (integers meet strings as their decimal text)."""
    if a.dtype == b.dtype:
        return a, b
    return a.cast(pl.Utf8), b.cast(pl.Utf8)


def sorted_ids(keys: pl.Series) -> pl.Series:
    """Unique ids in the order the user rule above defines (numeric for integer-like ids, else lexicographic)."""
    unique = keys.unique()
    if unique.dtype == pl.Int64:
        return unique.sort()
    numbers = unique.str.strip_chars().cast(pl.Int64, strict=False)
    frame = pl.DataFrame({"id": unique, "number": numbers})
    if numbers.null_count() == 0:
        return frame.sort(["number", "id"])["id"]
    return frame.sort("id")["id"]


def index_raw(raw: RawDataset) -> tuple[pl.DataFrame, list[str], list[str]]:
    """Map ``raw``'s ids to contiguous indices.

    Returns ``(frame, user_ids, item_ids)``: ``frame`` has Int64 ``u``, ``i`` plus ``timestamp`` (Float64),
    ``rating`` (Float64) and ``split`` (Int8) where the raw data has them, rows in source order less the dropped
    duplicates; ``user_ids[u]`` / ``item_ids[i]`` are the raw ids as strings.
    """
    inter = raw.interactions
    for column in ("user", "item"):
        nulls = inter[column].null_count()
        if nulls:
            raise DataError(f"{nulls} interaction(s) have no {column} id", field=column,
                            fix=f"every interaction needs a {column} id; check the reader's input")
    if inter.height == 0:
        raise DataError("the dataset has no interactions", fix="check the source files and any rating filter")
    user_key = _key(inter["user"], "user")
    item_key = _key(inter["item"], "item")

    users = sorted_ids(user_key)
    user_map = pl.DataFrame({"key": users, "u": pl.int_range(0, users.len(), eager=True, dtype=pl.Int64)})

    if raw.items is not None:
        catalogue = _key(raw.items["item"], "item")
        if catalogue.null_count():
            raise DataError(f"the item table has {catalogue.null_count()} row(s) without an item id", field="item",
                            fix="every catalogue row needs an item id")
        duplicated = catalogue.is_duplicated()
        if duplicated.any():
            raise DataError(f"item id '{catalogue.filter(duplicated)[0]}' appears more than once in the item table "
                            f"({int(duplicated.sum())} duplicated rows)", field="item",
                            fix="each item must appear once in the item table")
        catalogue, item_key = _harmonise(catalogue, item_key)
        items = catalogue
    else:
        items = sorted_ids(item_key)
    item_map = pl.DataFrame({"key": items, "i": pl.int_range(0, items.len(), eager=True, dtype=pl.Int64)})

    extra = [c for c in ("timestamp", "rating") if c in inter.columns]
    columns = [pl.Series("user_key", user_key), pl.Series("item_key", item_key),
               *[inter[c].cast(pl.Float64) for c in extra]]
    if "split" in inter.columns:
        columns.append(inter["split"].cast(pl.Int8))
    frame = pl.DataFrame(columns).with_row_index(_ROW)
    frame = (frame.join(user_map, left_on="user_key", right_on="key", how="left", maintain_order="left")
                  .join(item_map, left_on="item_key", right_on="key", how="left", maintain_order="left"))
    unknown = frame["i"].is_null()
    if unknown.any():
        n_unknown = int(unknown.sum())
        example = frame.filter(unknown)["item_key"][0]
        raise DataError(
            f"{n_unknown} interaction(s) ({frame.filter(unknown)['item_key'].n_unique()} distinct items) refer to "
            f"items missing from the item table, e.g. item '{example}'", field="item",
            fix="use the item file that belongs to these interactions, or add the missing items to it",
        )

    # Only the rows of repeated pairs are sorted: the common case (no repeats) costs one hash pass.
    pair = frame["u"] * items.len() + frame["i"]
    repeated = pair.is_duplicated()
    deduped = frame
    if repeated.any():
        order = ["timestamp", _ROW] if "timestamp" in frame.columns else [_ROW]
        winners = (frame.filter(repeated).sort(order, nulls_last=True)
                        .unique(subset=["u", "i"], keep="first")[_ROW])
        deduped = frame.filter(~repeated | frame[_ROW].is_in(winners.implode()))
    raw.meta["duplicates_dropped"] = frame.height - deduped.height
    out = deduped.select(["u", "i", *extra, *(["split"] if "split" in frame.columns else [])])
    return out, users.cast(pl.Utf8).to_list(), items.cast(pl.Utf8).to_list()
