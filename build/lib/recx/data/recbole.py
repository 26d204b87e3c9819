"""RecBole atomic files (``.inter``, ``.item``, ``.user``).

An atomic file is tab-separated with one header line of ``name:type`` fields. RecBole knows four types: ``token``
(a categorical id, kept as a string: "007" and "7" are different tokens), ``float``, ``token_seq`` and ``float_seq``
(space-separated sequences). We read every cell as text first and cast column by column, so that a bad value is
reported with its file, 1-based line number and column instead of a polars parse trace.

The MovieLens files RecBole ships name the movie ``movie_title`` (a ``token_seq``, i.e. the title split on spaces)
and the genres ``class`` (also a ``token_seq``); :func:`movielens_items` adds the ``title``/``genres`` columns that
the GroupLens reader yields too, so feature builders see one schema whichever copy of MovieLens was used.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recx.data.interactions import RawDataset
from recx.data.tables import LINE, first_line, read_table
from recx.errors import DataError

ATOMIC_TYPES = ("token", "float", "token_seq", "float_seq")
INTER_COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "timestamp", "rating": "rating"}


def _read_atomic_lines(path: str | Path) -> pl.DataFrame:
    """:func:`read_atomic`, keeping the :data:`LINE` column."""
    path = Path(path)
    fix = "an atomic file is tab-separated with a first line of 'name:type' fields, e.g. 'user_id:token'"
    frame = read_table(path, separator="\t", has_header=True, what="RecBole atomic file", fix=fix)
    renames, casts = {}, []
    for header in (c for c in frame.columns if c != LINE):
        name, sep, kind = header.strip().rpartition(":")
        if not sep or not name:
            raise DataError(f"header field '{header}' (line 1) has no ':type' suffix", path=path, field=header,
                            fix=f"write it as '{header}:<type>' with type one of {list(ATOMIC_TYPES)}")
        if kind not in ATOMIC_TYPES:
            raise DataError(f"header field '{header}' (line 1) has unknown type '{kind}'", path=path, field=name,
                            fix=f"use one of {list(ATOMIC_TYPES)}")
        if name in renames.values():
            raise DataError(f"column '{name}' appears twice in the header (line 1)", path=path, field=name,
                            fix="give every column a distinct name")
        renames[header] = name
        casts.append((name, kind))
    frame = frame.rename(renames)
    columns = []
    for name, kind in casts:
        if kind == "token":
            columns.append(frame[name])
        elif kind == "float":
            columns.append(_parse_nullable_float(frame, name, path))
        else:
            tokens = frame[name].fill_null("").str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
            if kind == "float_seq":
                numbers = tokens.list.eval(pl.element().cast(pl.Float64, strict=False))
                bad = numbers.list.eval(pl.element().is_null() | ~pl.element().is_finite()).list.any()
                if bad.any():
                    row = frame.filter(bad)
                    raise DataError(
                        f"line {int(row[LINE][0])}: '{row[name][0]}' in column '{name}' is not a list of numbers",
                        path=path, field=name, fix="a float_seq cell holds space-separated finite numbers",
                    )
                tokens = numbers
            columns.append(tokens.alias(name))
    return pl.DataFrame([*columns, frame[LINE]])


def _parse_nullable_float(frame: pl.DataFrame, name: str, path: Path) -> pl.Series:
    """A RecBole ``float`` column: empty cells stay null (RecBole fills them later); anything else must parse."""
    text = frame[name].str.strip_chars()
    values = text.cast(pl.Float64, strict=False)
    bad = (text.is_not_null() & (text != "")) & (values.is_null() | ~values.is_finite().fill_null(False))
    if bad.any():
        row = frame.filter(bad)
        raise DataError(f"line {int(row[LINE][0])}: '{row[name][0]}' in column '{name}' is not a finite number",
                        path=path, field=name, fix=f"'{name}' is declared ':float'; fix the value or the type")
    return values.alias(name)


def read_atomic(path: str | Path) -> pl.DataFrame:
    """Read one RecBole atomic file into a frame whose column names have the ``:type`` suffix stripped.

    ``token`` → Utf8, ``float`` → Float64 (empty cells null), ``token_seq`` → List(Utf8) and ``float_seq`` →
    List(Float64), both split on spaces (repeated spaces do not make empty tokens).
    """
    return _read_atomic_lines(path).drop(LINE)


def movielens_items(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the shared MovieLens item columns ``title`` (Utf8) and ``genres`` (List(Utf8)) where the source has them.

    RecBole's MovieLens ``.item`` calls them ``movie_title`` (token_seq) and ``class`` (ML-100K) or ``genre``
    (ML-1M); the GroupLens reader produces ``title``/``genres`` directly. Original columns are kept; a frame
    without any of these columns is returned unchanged.
    """
    columns = set(frame.columns)
    added = []
    if "title" not in columns and "movie_title" in columns:
        title = pl.col("movie_title")
        if isinstance(frame.schema["movie_title"], pl.List):
            title = title.list.join(" ")
        added.append(title.fill_null("").alias("title"))
    if "genres" not in columns:
        source = next((c for c in ("class", "genre") if c in columns), None)
        if source is not None:
            genres = pl.col(source)
            if not isinstance(frame.schema[source], pl.List):
                genres = genres.fill_null("").str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
            added.append(genres.cast(pl.List(pl.Utf8)).alias("genres"))
    return frame.with_columns(added) if added else frame


def read_recbole_interactions(inter_path: str | Path, item_path: str | Path | None = None) -> RawDataset:
    """Read a RecBole ``.inter`` file (and optionally its ``.item`` file) as a :class:`RawDataset`.

    ``user_id`` → ``user`` and ``item_id`` → ``item`` (tokens, Utf8), ``timestamp`` and ``rating`` (Float64) when
    present; other ``.inter`` columns are not carried (recx treats interactions as implicit feedback). The item
    table is ``item`` + every other ``.item`` column in file order (the catalogue order), passed through
    :func:`movielens_items`. Ids are RecBole tokens, so they are checked for presence, not sign.
    """
    inter_path = Path(inter_path)
    frame = _read_atomic_lines(inter_path)
    missing = [c for c in ("user_id", "item_id") if c not in frame.columns]
    if missing:
        raise DataError(f"the .inter header (line 1) lacks column(s) {missing}", path=inter_path,
                        field=",".join(missing), fix="the header must name 'user_id:token' and 'item_id:token'")
    if frame.height == 0:
        raise DataError("the .inter file has a header but no interactions", path=inter_path,
                        fix="the file must hold one interaction per line after the header")
    for column in ("user_id", "item_id"):
        absent = frame[column].is_null()
        if absent.any():
            raise DataError(f"line {first_line(frame, absent)} has no '{column}'", path=inter_path, field=column,
                            fix="every interaction needs a user and an item token")
    for column in ("timestamp", "rating"):
        if column in frame.columns:
            absent = frame[column].is_null()
            if absent.any():
                raise DataError(f"line {first_line(frame, absent)} has no '{column}'", path=inter_path,
                                field=column, fix=f"give '{column}' on every line or drop the column")
    keep = [c for c in INTER_COLUMNS if c in frame.columns]
    interactions = frame.select(
        [pl.col(c).cast(pl.Utf8 if c.endswith("_id") else pl.Float64).alias(INTER_COLUMNS[c]) for c in keep]
    )
    items = None
    if item_path is not None:
        item_path = Path(item_path)
        table = _read_atomic_lines(item_path)
        if "item_id" not in table.columns:
            raise DataError("the .item header (line 1) lacks 'item_id'", path=item_path, field="item_id",
                            fix="the first column of a .item file is 'item_id:token'")
        absent = table["item_id"].is_null()
        if absent.any():
            raise DataError(f"line {first_line(table, absent)} has no 'item_id'", path=item_path, field="item_id",
                            fix="every line of the .item file needs its item token")
        duplicated = table["item_id"].is_duplicated()
        if duplicated.any():
            raise DataError(f"item '{table.filter(duplicated)['item_id'][0]}' is listed more than once "
                            f"(line {first_line(table, duplicated)})", path=item_path, field="item_id",
                            fix="each item appears once in the .item file")
        items = movielens_items(
            table.drop(LINE).rename({"item_id": "item"}).with_columns(pl.col("item").cast(pl.Utf8))
        )
    meta = {"format": "recbole", "inter_path": str(inter_path), "rows": interactions.height}
    if item_path is not None:
        meta["item_path"] = str(item_path)
    return RawDataset(interactions, items, meta=meta)
