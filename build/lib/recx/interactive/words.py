"""Items as sets of categorical words (MAGUS: "item = {Brand A, Milk, 2L}, query = {Milk}").

* ml-100k: genres, release decade, and optionally the ``title_tokens`` most frequent title words (lower-cased,
  3+ letters, stop words removed);
* synthetic_mm: the planted cluster and the sign of the first ``latent_words`` latent dimensions (words that carry
  the preference structure by construction);
* any dataset, given ``model.words_file``: a CSV/TSV of ``item_id,word|word|...`` lines (e.g. Amazon categories and
  brand exported from the metadata file, which is not part of the MMRec download).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from recx.errors import ConfigError

STOP_WORDS = frozenset("the and of a an in to for on with from at by la le les der die das el los".split())


@dataclass
class ItemWords:
    """``matrix [n_items, n_words]`` 0/1 float32 (item i has word w) and the word names."""

    matrix: torch.Tensor
    names: list[str]

    @property
    def n_words(self) -> int:
        return len(self.names)

    def of(self, item: int) -> list[str]:
        return [self.names[w] for w in self.matrix[item].nonzero().flatten().tolist()]


def words_from_lists(lists: Sequence[Sequence[str]]) -> ItemWords:
    """Build the 0/1 matrix from one word list per item (vocabulary in first-seen order)."""
    vocab: dict[str, int] = {}
    for words in lists:
        for w in words:
            vocab.setdefault(w, len(vocab))
    matrix = torch.zeros(len(lists), len(vocab))
    for i, words in enumerate(lists):
        if words:
            matrix[i, [vocab[w] for w in words]] = 1.0
    return ItemWords(matrix, list(vocab))


def ml100k_words(items, item_ids: Sequence[str], title_tokens: int = 0) -> ItemWords:
    """Genres, release decade and (``title_tokens`` > 0) frequent title words of each item, in ``item_ids`` order."""
    import polars as pl

    table = pl.DataFrame({"item": [str(i) for i in item_ids]}).join(
        items.with_columns(pl.col("item").cast(pl.Utf8)), on="item", how="left", maintain_order="left")
    genres = table["genres"].to_list() if "genres" in table.columns else [[] for _ in item_ids]
    years = (table["release_year"].cast(pl.Int64, strict=False).to_list() if "release_year" in table.columns
             else [None] * len(item_ids))
    titles = table["title"].to_list() if "title" in table.columns else [""] * len(item_ids)
    tokens = [[t for t in re.findall(r"[a-z]{3,}", (title or "").lower()) if t not in STOP_WORDS] for title in titles]
    frequent = {t for t, _ in Counter(t for ts in tokens for t in set(ts)).most_common(title_tokens)}
    lists = []
    for g, year, ts in zip(genres, years, tokens):
        words = [f"genre:{x}" for x in (g or []) if x != "unknown"]
        if year:
            words.append(f"decade:{year // 10 * 10}s")
        words += sorted(f"title:{t}" for t in set(ts) & frequent)
        lists.append(words)
    return words_from_lists(lists)


def synthetic_words(world: Any, item_ids: Sequence[str], latent_words: int = 4) -> ItemWords:
    """synthetic_mm's planted cluster and latent-dimension signs as words."""
    rows = np.asarray([int(i) for i in item_ids])
    cluster = world.item_cluster.numpy()[rows]
    latent = world.item_latent.numpy()[rows, :latent_words]
    lists = [[f"cluster:{c}", *(f"dim{d}{'+' if v > 0 else '-'}" for d, v in enumerate(lat))]
             for c, lat in zip(cluster, latent)]
    return words_from_lists(lists)


def read_words_file(path, item_ids: Sequence[str]) -> ItemWords:
    """``item_id<sep>word|word|...`` lines (comma or tab; ``#`` comments); items without a line get no words."""
    from recx.errors import DataError, require_file

    p = require_file(path, what="item words file", fix="pass model.words_file=<csv of item_id,word|word|...>")
    known = {str(i): n for n, i in enumerate(item_ids)}
    lists: list[list[str]] = [[] for _ in item_ids]
    matched = 0
    for line_no, line in enumerate(p.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        item, sep, rest = line.replace("\t", ",").partition(",")
        if not sep:
            raise DataError(f"line {line_no}: expected 'item_id,word|word|...', got {line!r}", path=p,
                            fix="one item per line: its id, a comma, then words separated by '|'")
        if item.strip() in known:
            lists[known[item.strip()]] = [w.strip() for w in rest.split("|") if w.strip()]
            matched += 1
    if matched == 0:
        raise DataError("no line of the words file names an item of the dataset", path=p,
                        fix="use the dataset's raw item ids")
    return words_from_lists(lists)


def dataset_words(source: Any, raw_dir, item_ids: Sequence[str], title_tokens: int = 0,
                  latent_words: int = 4, words_file: str | None = None) -> ItemWords:
    """The word sets of a dataset's items, or a clear error when the dataset has no word metadata."""
    from recx.data.sources import MovieLens100K
    from recx.data.synthetic import SyntheticMM

    if words_file:
        return read_words_file(words_file, item_ids)
    if isinstance(source, MovieLens100K):
        return ml100k_words(source.read(raw_dir).items, item_ids, title_tokens)
    if isinstance(source, SyntheticMM):
        return synthetic_words(source.world(), item_ids, latent_words)
    raise ConfigError(f"dataset '{source.name}' has no categorical item words for MAGUS", field="dataset",
                      fix="pass model.words_file=<item_id,word|word|... csv> (e.g. Amazon categories + brand), or use "
                          "ml100k or synthetic_mm")
