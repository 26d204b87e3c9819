"""Delimited-text helpers shared by the format readers (RecBole atomic, GroupLens, MMRec).

Every cell is read as text first and cast column by column, so that a bad value is reported with its file, 1-based
line number and column (and a fix) instead of a polars parse trace.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recx.errors import DataError

LINE = "__line__"  # the 1-based source line of each row, kept while parsing for error messages

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
    check_field_counts(data, separator, path=path, what=what, fix=fix,
                       expected=None if has_header or names is None else len(names))
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


def check_field_counts(data: bytes, separator: str, *, path: Path, what: str, fix: str | None,
                       expected: int | None = None) -> None:
    """Every non-blank line holds the same number of fields as the first (or ``expected``): a DataError naming the
    first line with fewer or more fields, e.g. the partial last line of a file cut off mid-line. Vectorised (numpy
    over the bytes), so it costs milliseconds on million-line files."""
    import numpy as np

    if len(separator.encode()) != 1:
        return
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    truncated = not data.endswith(b"\n")
    if truncated:
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    seps = np.concatenate(([0], np.cumsum(raw == separator.encode()[0])))
    fields = seps[ends] - seps[starts] + 1
    length = ends - starts
    if length.size:  # a line of only "\r" (CRLF files) is blank too
        last_char = raw[np.maximum(ends - 1, 0)]
        blank = (length == 0) | ((length == 1) & (last_char == 13))
    else:
        blank = length == 0
    fields, numbers = fields[~blank], np.flatnonzero(~blank) + 1
    if not fields.size:
        return
    want = int(expected if expected is not None else fields[0])
    bad = np.flatnonzero(fields != want)
    if not bad.size:
        if truncated and not blank[-1]:
            raise_truncated(path, what, int(numbers[-1]), fix)
        return
    line, got = int(numbers[bad[0]]), int(fields[bad[0]])
    cut = " (the file ends mid-line: it looks truncated)" if truncated and bad[0] == fields.size - 1 else ""
    raise DataError(f"{what} line {line} has {got} field{'' if got == 1 else 's'}, expected {want}{cut}", path=path,
                    fix=fix or f"each line must hold {want} {separator!r}-separated fields; "
                                "re-download or repair the file")


def raise_truncated(path: Path, what: str, line: int, fix: str | None = None) -> None:
    """A text file whose last line has no newline was most likely cut off mid-line (a copy or download that
    stopped): its last value may be a prefix of the real one, so it is refused rather than read."""
    raise DataError(f"{what} line {line} does not end with a newline: the file looks truncated (cut off mid-line)",
                    path=path, fix=(fix + "; " if fix else "") + "re-download or re-copy the file (if it is complete, "
                    "add the missing newline at its end)")


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
