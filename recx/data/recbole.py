"""RecBole atomic files (``.inter``, ``.item``, ``.user``), plus the delimited-text helpers the other readers share.

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
from recx.errors import DataError

LINE = "__line__"  # the 1-based source line of each row, kept while parsing for error messages
ATOMIC_TYPES = ("token", "float", "token_seq", "float_seq")
INTER_COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "timestamp", "rating": "rating"}


# ------------------------------------------------------------------------------------------- delimited-text helpers
def read_table(
    path: str | Path,
    *,
    separator: str = "\t",
    has_header: bool = True,
    names: list[str] | None = None,
    encoding: str = "utf8",
    what: str = "file",
    fix: str | None = None,
) -> pl.DataFrame:
    """Read a delimited text file with every cell as a string, plus a :data:`LINE` column (1-based line numbers).

    No quoting is applied (titles in MovieLens contain quote characters; none of these formats quotes fields).
    Blank lines are skipped. ``names`` renames the columns of a header-less file and must match its field count.
    Raises :class:`DataError` for a missing or empty file, undecodable bytes and lines with too many fields.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found", path=path, fix=fix or "check the path and the dataset folder")
    data = path.read_bytes()
    if encoding.lower().replace("-", "") not in ("utf8",):
        try:
            data = data.decode(encoding).encode("utf8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise DataError(f"{what} cannot be decoded as {encoding} ({exc})", path=path, fix=fix) from exc
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (spreadsheet exports) is not part of the header
        data = data[3:]
    if not data.strip():
        raise DataError(f"{what} is empty", path=path, fix=fix or "the file must hold at least one data line")
    if has_header:
        header = [h.strip() for h in data.split(b"\n", 1)[0].decode("utf8", "replace").split(separator)]
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise DataError(f"{what} header (line 1) repeats column(s) {repeated}", path=path, field=repeated[0],
                            fix="give every column a distinct name")
    try:
        frame = pl.read_csv(
            data,
            separator=separator,
            has_header=has_header,
            infer_schema=False,
            quote_char=None,
            row_index_name=LINE,
            row_index_offset=2 if has_header else 1,
        )
    except pl.exceptions.PolarsError as exc:
        raise _diagnose(data, separator, path, what, fix, exc) from exc
    columns = [c for c in frame.columns if c != LINE]
    if has_header and any(c != c.strip() for c in columns):
        frame = frame.rename({c: c.strip() for c in columns})
        columns = [c.strip() for c in columns]
    if names is not None:
        if len(columns) != len(names):
            raise DataError(
                f"{what} has {len(columns)} field(s) per line (line 1), expected {len(names)}: {names}",
                path=path, fix=fix or f"each line must hold {len(names)} {separator!r}-separated fields",
            )
        frame = frame.rename(dict(zip(columns, names)))
        columns = list(names)
    if columns:
        frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in columns]))
    return frame


def _diagnose(data: bytes, separator: str, path: Path, what: str, fix: str | None, exc: Exception) -> DataError:
    """Turn a polars parse failure into a DataError that names the offending line (found by a slow re-scan)."""
    try:
        text = data.decode("utf8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return DataError(f"{what} is not valid UTF-8 at line {line}", path=path, fix="re-encode the file as UTF-8")
    lines = text.splitlines()
    expected = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.count(separator) + 1
        if expected is None:
            expected = fields
        elif fields > expected:
            return DataError(
                f"{what} line {number} has {fields} fields, more than the {expected} of line 1", path=path,
                fix=fix or f"fields are separated by {separator!r}; remove the extra separator(s) on that line",
            )
    return DataError(f"{what} cannot be parsed: {str(exc).splitlines()[0]}", path=path, fix=fix)


def first_line(frame: pl.DataFrame, mask: pl.Series) -> int:
    """The source line of the first row where ``mask`` is true."""
    return int(frame.filter(mask)[LINE][0])


def parse_column(
    frame: pl.DataFrame,
    column: str,
    kind: str,
    *,
    path: str | Path,
    what: str = "file",
    fix: str | None = None,
) -> pl.Series:
    """Cast a string column of a :func:`read_table` frame to numbers, naming the first bad line.

    ``kind``: ``"id"`` (non-negative integer, Int64), ``"int"`` (Int64) or ``"float"`` (finite, Float64).
    Empty cells are an error too: every reader here needs the numeric columns it asks for on every line.
    """
    text = frame[column].str.strip_chars()
    missing = text.is_null() | (text == "")
    if missing.any():
        line = first_line(frame, missing)
        raise DataError(f"{what} line {line} has no value in column '{column}'", path=path, field=column,
                        fix=fix or f"every line must give '{column}'")
    dtype = pl.Float64 if kind == "float" else pl.Int64
    values = text.cast(dtype, strict=False)
    bad = values.is_null()
    if kind == "float":
        bad = bad | ~values.is_finite().fill_null(False)
    if bad.any():
        row = frame.filter(bad)
        expected = "a finite number" if kind == "float" else "an integer"
        raise DataError(
            f"{what} line {int(row[LINE][0])}: '{row[column][0]}' in column '{column}' is not {expected}",
            path=path, field=column, fix=fix or f"column '{column}' must hold {expected} on every line",
        )
    if kind == "id":
        negative = values < 0
        if negative.any():
            row = frame.filter(negative)
            raise DataError(
                f"{what} line {int(row[LINE][0])}: negative id {row[column][0]} in column '{column}'",
                path=path, field=column, fix=fix or "ids must be non-negative integers",
            )
    return values.alias(column)


# ----------------------------------------------------------------------------------------------- atomic files
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
