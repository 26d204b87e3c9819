"""Reader of SVMlight / LETOR ranking files: ``label qid:N i:v j:v ... # optional comment``, one document a line.

Speed: a full MSLR-WEB10K fold holds ~720k lines of 136 ``i:v`` tokens (~100M tokens), far too many for a Python loop
over tokens. Each line is split once into label, qid and the feature text; the feature text of a block of lines is
then parsed by one ``np.fromstring`` call after ``:`` becomes a space, and scattered into a dense block. The fast path
only checks counts (every token holds exactly one ``:`` with a number on each side), index ranges and finiteness; when
a block fails a check, a slow token-by-token pass over the offending line(s) finds the exact token to report, so
every error names the file, the 1-based line number and the token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import re
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from recx.errors import DataError, require_file

BLOCK_LINES = 20_000  # lines parsed per numpy call: bounds the temporary text and float64 arrays
_TWO_COLONS = re.compile(r":[^\s:]*:")
_WHITESPACE = "\t\r\n\v\f"
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_INFERRED_FEATURES = 1 << 20
FORMAT_FIX = "each line must read `<label> qid:<int> <index>:<value> ... [# comment]`, indices 1-based integers"


def read_svmlight(path: str | Path, n_features: int | None = None, *, drop_last_query: bool = False,
                  info: dict[str, Any] | None = None) -> "RankingTable":
    """Read one SVMlight/LETOR file into an :class:`RankingTable`.

    Missing feature indices are 0 (sparse lines are allowed). ``n_features``: the width of the feature matrix; an
    index above it is an error; ``None`` infers the largest index seen. Comments (``#`` to end of line) and blank
    lines are skipped. The documents of one query must be contiguous, as LETOR files are: a qid that comes back
    after another qid is an error. ``drop_last_query``: drop the final query, with a warning, for files known to be
    a line-prefix sample whose last query is cut off. ``info``, if given, receives what was read and dropped.
    """
    path = require_file(path, what="SVMlight/LETOR file", fix="check the path, or run `recx data download <dataset>`")
    labels: list[str] = []
    qids: list[int] = []
    line_nos: list[int] = []
    blocks: list[np.ndarray] = []
    rests: list[str] = []
    line_no = 0
    last = ""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            last = line
            if "#" in line:
                line = line.partition("#")[0]
            parts = line.split(None, 2)
            if not parts:
                continue
            if len(parts) < 2 or not parts[1].startswith("qid:"):
                token = parts[1] if len(parts) > 1 else parts[0]
                raise _bad(path, line_no, token, "the second token must be qid:<int>")
            try:
                qids.append(int(parts[1][4:]))
            except ValueError:
                raise _bad(path, line_no, parts[1], "the query id is not an integer") from None
            labels.append(parts[0])
            line_nos.append(line_no)
            rests.append(parts[2] if len(parts) == 3 else "")
            if len(rests) == BLOCK_LINES:
                blocks.append(_parse_block(rests, line_nos[-len(rests):], path, n_features))
                rests = []
        if last and not last.endswith("\n") and last.partition("#")[0].strip():  # the last line was cut off
            from recx.data.tables import raise_truncated

            raise_truncated(path, "SVMlight/LETOR file", line_no, FORMAT_FIX)
    if rests:
        blocks.append(_parse_block(rests, line_nos[-len(rests):], path, n_features))
    if not line_nos:
        raise DataError("no documents in file", path=path, fix=FORMAT_FIX)
    lines = np.asarray(line_nos, dtype=np.int64)
    label_array = _parse_labels(labels, lines, path)
    qid_array = np.asarray(qids, dtype=np.int64)
    width = n_features if n_features is not None else max(b.shape[1] for b in blocks)
    features = np.zeros((len(lines), width), dtype=np.float32)
    row = 0
    for block in blocks:
        features[row:row + block.shape[0], :block.shape[1]] = block
        row += block.shape[0]
    del blocks
    starts = _query_starts(qid_array, lines, path)
    offsets = np.append(starts, len(lines))
    if info is not None:
        info.update(file=str(path), lines=line_no, docs=len(lines), queries=len(starts), n_features=width)
    if drop_last_query:
        dropped_qid, dropped_docs = int(qid_array[starts[-1]]), int(len(lines) - starts[-1])
        warnings.warn(f"{path}: dropped the last query (qid {dropped_qid}, {dropped_docs} docs): the file is a "
                      "line-prefix sample, so that query is likely cut off", stacklevel=2)
        offsets = offsets[:-1]
        if info is not None:
            info["dropped"] = {"qid": dropped_qid, "docs": dropped_docs}
    n_docs = int(offsets[-1])
    if n_docs < len(lines):  # copies, so that saving the split does not save the dropped rows' storage too
        features, label_array = features[:n_docs].copy(), label_array[:n_docs].copy()
    return RankingTable(
        features=torch.from_numpy(features),
        labels=torch.from_numpy(label_array),
        offsets=torch.from_numpy(offsets.astype(np.int64)),
        qids=torch.from_numpy(qid_array[starts[:len(offsets) - 1]]),
    )


@dataclass
class RankingTable:
    """A ranking file's content, queries stored flat: query ``q`` owns rows ``offsets[q]:offsets[q+1]``.

    The learning-to-rank family wraps it as :class:`recx.ltr.data.LTRSplit` (same fields); this module stays below
    the families in the import order.
    """

    features: torch.Tensor  # [n_docs, n_features] float32
    labels: torch.Tensor  # [n_docs] int64
    offsets: torch.Tensor  # [n_queries + 1] int64
    qids: torch.Tensor  # [n_queries] int64

    @property
    def n_docs(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_queries(self) -> int:
        return int(self.qids.shape[0])

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]


# ------------------------------------------------------------------------------------------------------ helpers
def _bad(path: Path, line_no: int, token: str, why: str) -> DataError:
    return DataError(f"line {line_no}: bad token {token!r}: {why}", path=path, fix=FORMAT_FIX)


def _parse_labels(labels: list[str], lines: np.ndarray, path: Path) -> np.ndarray:
    """Labels as int64; a label that is not a non-negative integer is reported with its line."""
    try:
        values = np.asarray(labels, dtype=np.float64)
    except ValueError:  # the slow path, only to name the first bad label
        values = np.empty(len(labels))
        for k, (token, line_no) in enumerate(zip(labels, lines.tolist())):
            try:
                values[k] = float(token)
            except ValueError:
                raise _bad(path, line_no, token, "the relevance label is not a number") from None
    bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        k = int(np.argmax(bad))
        raise _bad(path, int(lines[k]), labels[k], "the relevance label must be a non-negative integer grade")
    return values.astype(np.int64)


def _query_starts(qids: np.ndarray, lines: np.ndarray, path: Path) -> np.ndarray:
    """First document of each run of equal qids; a qid with two runs means the file is not grouped by query."""
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
    run_qids = qids[starts]
    _, first = np.unique(run_qids, return_index=True)
    if len(first) < len(starts):
        seen = np.zeros(len(starts), dtype=bool)
        seen[first] = True
        k = int(starts[np.argmin(seen)])  # first run that repeats an earlier qid
        raise DataError(f"line {int(lines[k])}: qid {int(qids[k])} appears again after other queries",
                        path=path, fix="the documents of a query must be on consecutive lines; sort the file by qid "
                                       "(stably, keeping the document order) before reading it")
    return starts


def _parse_block(rests: list[str], line_nos: list[int], path: Path, n_features: int | None) -> np.ndarray:
    """Dense ``[len(rests), width]`` float32 features of a block of lines (``rests``: text after the qid)."""
    text = " ".join(rests)
    for ch in _WHITESPACE:
        if ch in text:
            text = text.replace(ch, " ")
    colons = np.fromiter((r.count(":") for r in rests), dtype=np.int64, count=len(rests))
    total = int(colons.sum())
    # Every ":" must sit inside a token (never beside a space), and no token may hold two: then 2 * total numbers
    # parsed means exactly one number on each side of each ":".
    ok = not (text.startswith(":") or text.rstrip().endswith(":") or " :" in text or ": " in text
              or _TWO_COLONS.search(text))
    numbers = np.empty(0)
    if ok:
        try:
            numbers = np.fromstring(text.replace(":", " "), dtype=np.float64, sep=" ")
        except ValueError:
            ok = False
    if not ok or numbers.size != 2 * total:
        _diagnose(rests, line_nos, path, n_features)
    index, value = numbers[0::2], numbers[1::2]
    with np.errstate(over="ignore"):
        value32 = value.astype(np.float32)
    limit = n_features if n_features is not None else np.inf
    bad = (index < 1) | (index > limit) | (index != np.floor(index)) | ~np.isfinite(value32)
    rows = np.repeat(np.arange(len(rests)), colons)
    if bad.any():
        k = int(rows[np.argmax(bad)])
        _diagnose([rests[k]], [line_nos[k]], path, n_features)
    width = n_features if n_features is not None else (int(index.max()) if index.size else 0)
    if width > MAX_INFERRED_FEATURES:
        k = int(rows[np.argmax(index)])
        raise _bad(path, line_nos[k], f"{int(index.max())}:...", f"a feature index above {MAX_INFERRED_FEATURES} "
                   "makes a dense matrix too large; pass n_features if the data really is that wide")
    cols = index.astype(np.int64) - 1
    flat = rows * width + cols
    repeats = np.bincount(flat, minlength=len(rests) * width) > 1 if flat.size else np.zeros(0, dtype=bool)
    if repeats.any():
        k = int(np.argmax(repeats)) // max(width, 1)
        _diagnose([rests[k]], [line_nos[k]], path, n_features)
    dense = np.zeros((len(rests), width), dtype=np.float32)
    dense[rows, cols] = value32
    return dense


def _diagnose(rests: list[str], line_nos: list[int], path: Path, n_features: int | None) -> NoReturn:
    """Token-by-token check of a few lines (the slow path): raise a DataError at the first bad token."""
    for rest, line_no in zip(rests, line_nos):
        seen: set[int] = set()
        for token in rest.split():
            left, sep, right = token.partition(":")
            if not sep or ":" in right:
                raise _bad(path, line_no, token, "a feature must be <index>:<value> with a single ':'")
            try:
                index = int(left)
            except ValueError:
                raise _bad(path, line_no, token, "the feature index is not an integer") from None
            try:
                value = float(right)
            except ValueError:
                raise _bad(path, line_no, token, "the feature value is not a number") from None
            if index < 1:
                raise _bad(path, line_no, token, "feature indices start at 1")
            if n_features is not None and index > n_features:
                raise _bad(path, line_no, token, f"the feature index exceeds n_features={n_features}")
            if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise _bad(path, line_no, token, "the feature value is not finite (in float32)")
            if index in seen:
                raise _bad(path, line_no, token, "the feature index appears twice on the line")
            seen.add(index)
    raise DataError(f"lines {line_nos[0]}-{line_nos[-1]}: malformed feature tokens", path=path, fix=FORMAT_FIX)
