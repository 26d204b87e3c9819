"""In-memory learning-to-rank data: ragged query lists stored flat (CSR-style), and the pure functions over them.

Queries have different numbers of documents (MSLR: 1 to ~1,250), so a split keeps every document in one
``[n_docs, n_features]`` matrix and marks query ``q``'s rows with ``offsets[q]:offsets[q+1]``. Every function here is
vectorised over all queries at once (a per-query Python loop over 6,000 MSLR queries per epoch would dominate
training time); padding to ``[B, L, F]`` happens per batch in :func:`pad_batch`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from recx.data.interactions import atomic_write
from recx.data.svmlight import RankingTable
from recx.errors import DataError

SPLITS = ("train", "valid", "test")
NORMALIZATIONS = ("zscore", "minmax", "none")
PREPARED_FILE = "ltr.pt"


def query_index(offsets: torch.Tensor) -> torch.Tensor:
    """The query position of every document row, from CSR ``offsets`` ``[n_queries + 1]``."""
    return torch.repeat_interleave(torch.arange(offsets.numel() - 1), offsets[1:] - offsets[:-1])


@dataclass
class LTRSplit(RankingTable):
    """One split: documents of all queries stored flat, query ``q`` owning rows ``offsets[q]:offsets[q+1]``.

    ``features`` ``[n_docs, n_features]`` float32; ``labels`` ``[n_docs]`` int64 graded relevance (0 = not relevant);
    ``offsets`` ``[n_queries + 1]`` int64, starting at 0 and ending at ``n_docs``; ``qids`` ``[n_queries]`` int64, the
    query ids of the source file (kept for reporting and for joining click logs). Optional per-query context:
    ``history [n_queries, H, n_features]`` + ``history_mask [n_queries, H]`` (STARank's browsing history, e.g. a
    user's previous items on top-N data). ``n_queries``, ``n_docs``, ``n_features`` and ``lengths`` come from
    :class:`~recx.data.svmlight.RankingTable`.
    """

    history: torch.Tensor | None = None
    history_mask: torch.Tensor | None = None

    def doc_queries(self) -> torch.Tensor:
        """The query position (0..n_queries-1) of every document, ``[n_docs]`` int64: the key of segment reductions."""
        return query_index(self.offsets)

    def subset(self, query_index: torch.Tensor | Sequence[int]) -> "LTRSplit":
        """The queries at ``query_index`` (positions, or a boolean mask over queries), in the order given."""
        qi = torch.as_tensor(query_index)
        if qi.dtype == torch.bool:
            qi = qi.nonzero().flatten()
        qi = qi.long()
        lengths = self.lengths[qi]
        offsets = torch.zeros(qi.numel() + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(lengths, 0)
        # row of document j of the new split = old start of its query + (j - new start of its query)
        shift = torch.repeat_interleave(self.offsets[:-1][qi] - offsets[:-1], lengths)
        rows = torch.arange(int(offsets[-1])) + shift
        history = self.history[qi] if self.history is not None else None
        history_mask = self.history_mask[qi] if self.history_mask is not None else None
        return LTRSplit(self.features[rows], self.labels[rows], offsets, self.qids[qi].clone(), history, history_mask)

    def validate(self, name: str = "split") -> "LTRSplit":
        """Check dtypes, shapes, offsets and values; raise a DataError naming the field at fault."""
        f, y, o, q = self.features, self.labels, self.offsets, self.qids
        if f.dim() != 2 or f.dtype != torch.float32:
            raise DataError(f"{name}.features must be float32 [n_docs, n_features], got {tuple(f.shape)} {f.dtype}",
                            field=f"{name}.features")
        if y.dtype != torch.long or y.shape != (f.shape[0],):
            raise DataError(f"{name}.labels must be int64 [{f.shape[0]}], got {tuple(y.shape)} {y.dtype}",
                            field=f"{name}.labels")
        if o.dtype != torch.long or q.dtype != torch.long or o.shape != (q.shape[0] + 1,):
            raise DataError(f"{name}.offsets must be int64 [n_queries + 1] and qids int64 [n_queries], got "
                            f"{tuple(o.shape)} {o.dtype} and {tuple(q.shape)} {q.dtype}", field=f"{name}.offsets")
        if int(o[0]) != 0 or int(o[-1]) != f.shape[0] or bool((o[1:] < o[:-1]).any()):
            raise DataError(f"{name}.offsets must rise from 0 to n_docs={f.shape[0]}", field=f"{name}.offsets")
        if y.numel() and int(y.min()) < 0:
            raise DataError(f"{name}.labels has negative relevance labels", field=f"{name}.labels")
        if not bool(torch.isfinite(f).all()):
            raise DataError(f"{name}.features contain NaN/inf", field=f"{name}.features",
                            fix="check the raw file and the normalisation")
        return self


@dataclass
class LTRData:
    """A prepared LTR dataset: three splits plus a JSON-able ``meta`` (source, normalisation, reader info, ...)."""

    name: str
    train: LTRSplit
    valid: LTRSplit
    test: LTRSplit
    meta: dict = field(default_factory=dict)
    cache_dir: str | None = None  # the prepared folder it was loaded from, if any

    def split(self, name: str) -> LTRSplit:
        if name not in SPLITS:
            raise KeyError(name)
        return getattr(self, name)

    @property
    def n_features(self) -> int:
        return self.train.n_features

    @property
    def max_label(self) -> int:
        return max((int(s.labels.max()) for s in (self.train, self.valid, self.test) if s.n_docs), default=0)

    def stats(self) -> dict[str, Any]:
        """Queries, documents, docs per query and the label histogram of each split (JSON-able)."""
        out: dict[str, Any] = {"features": self.n_features, "max_label": self.max_label}
        for s in SPLITS:
            part = self.split(s)
            lengths = part.lengths
            out[s] = {
                "queries": part.n_queries,
                "docs": part.n_docs,
                "docs_per_query": [int(lengths.min()), round(float(lengths.float().mean()), 1), int(lengths.max())]
                if part.n_queries else [0, 0.0, 0],
                "labels": torch.bincount(part.labels, minlength=self.max_label + 1).tolist(),
            }
        return out

    def validate(self) -> "LTRData":
        for s in SPLITS:
            self.split(s).validate(s)
            if self.split(s).n_features != self.n_features:
                raise DataError(f"{s} has {self.split(s).n_features} features but train has {self.n_features}",
                                field=f"{s}.features")
        if self.train.n_queries == 0:
            raise DataError("the train split has no queries", field="train")
        return self

    def save(self, directory: str | Path) -> None:
        """Write ``ltr.pt`` (tensors) and ``meta.json``, each through a temporary file and a rename."""
        directory = Path(directory)
        payload = {"name": self.name, **{s: vars(self.split(s)) for s in SPLITS}}
        # meta first: ltr.pt is the "prepared" marker, so an interrupted save is rebuilt rather than half-loaded
        atomic_write(directory / "meta.json", lambda f: f.write(json.dumps(self.meta, indent=2, default=str).encode()))
        atomic_write(directory / PREPARED_FILE, lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, directory: str | Path) -> "LTRData":
        directory = Path(directory)
        path = directory / PREPARED_FILE
        fix = "rerun `recx data prepare <dataset> --force`, or delete the folder and prepare again"
        if not path.is_file():
            raise DataError("prepared LTR dataset not found", path=path, fix="run `recx data prepare <dataset>`")
        try:
            payload = torch.load(path, weights_only=True)
            meta = json.loads((directory / "meta.json").read_text())
            splits = {s: LTRSplit(**payload[s]) for s in SPLITS}
            data = cls(name=payload["name"], meta=meta, cache_dir=str(directory), **splits)
        except Exception as exc:  # noqa: BLE001 - any unpickling/JSON/shape failure means a corrupt cache
            raise DataError(f"prepared LTR dataset is unreadable ({exc.__class__.__name__}: {exc})", path=path,
                            fix=fix) from exc
        try:
            return data.validate()
        except DataError as exc:
            raise DataError(f"prepared LTR dataset is inconsistent: {exc.message}", path=path, fix=fix) from exc


# ------------------------------------------------------------------------------------------------ pure functions
def normalize_per_query(split: LTRSplit, method: str = "zscore", exclude: Sequence[int] = ()) -> LTRSplit:
    """Query-level feature normalisation (LETOR's "QueryLevelNorm"), all queries at once.

    Raw LETOR features live on query-dependent scales (BM25 of a long query vs a short one), so rankers compare
    documents within a query after ``zscore`` ((x - mean) / std, population std) or ``minmax`` ((x - min) / (max -
    min)). A feature constant within a query carries no ranking information there and becomes 0 (tested with max ==
    min, which is exact, rather than std == 0, which rounding breaks). Columns in ``exclude`` are kept raw (e.g. a
    popularity signal a model wants on its own [0, 1] scale).
    """
    if method not in NORMALIZATIONS:
        raise DataError(f"unknown normalisation '{method}'", field="normalization",
                        fix=f"choose one of {', '.join(NORMALIZATIONS)}")
    if method == "none" or split.n_docs == 0:
        return split
    x = split.features
    q = split.doc_queries()
    lengths = split.lengths

    def per_query(values: torch.Tensor, reduce: str) -> torch.Tensor:  # [n_docs, F] -> [n_queries, F]
        return torch.segment_reduce(values, reduce, lengths=lengths, axis=0)

    hi, lo = per_query(x, "max"), per_query(x, "min")
    constant = (hi == lo)[q]
    if method == "minmax":
        shifted = x - lo[q]
        scale = (hi - lo)[q]
    else:
        counts = lengths.clamp(min=1).to(x.dtype)[:, None]
        shifted = x - (per_query(x, "sum") / counts)[q]
        scale = (per_query(shifted * shifted, "sum") / counts).sqrt()[q]
    out = torch.where(constant, torch.zeros_like(x), shifted / torch.where(constant, torch.ones_like(scale), scale))
    if len(exclude):
        cols = torch.as_tensor(list(exclude), dtype=torch.long)
        out[:, cols] = x[:, cols]
    return replace(split, features=out)


def pad_batch(split: LTRSplit, query_index: torch.Tensor | Sequence[int], max_length: int | None = None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense ``(features [B, L, F], labels [B, L], mask [B, L] bool)`` for the queries at ``query_index``.

    ``L`` is the longest selected list, capped at ``max_length``. A query longer than ``max_length`` keeps a uniformly
    random subset of ``max_length`` documents (drawn with ``generator``; positives are not favoured), in file order;
    shorter queries keep all their documents in file order. Padding has features 0, label 0 and mask False, so a
    loss or metric must honour ``mask``. Vectorised: random keys per position, the ``L`` smallest win.
    """
    qi = torch.as_tensor(query_index).long().flatten()
    lengths = split.lengths[qi]
    batch = qi.numel()
    longest = int(lengths.max()) if batch else 0
    width = longest if max_length is None else min(longest, int(max_length))
    pos = torch.arange(longest).expand(batch, longest)
    if width < longest:
        too_long = (lengths > width)[:, None]
        keys = torch.rand(batch, longest, generator=generator)
        keys = torch.where(too_long, keys, pos.to(keys.dtype))  # short lists: the first positions, in order
        keys = keys.masked_fill(pos >= lengths[:, None], float("inf"))
        chosen = keys.topk(width, dim=1, largest=False).indices.sort(dim=1).values
    else:
        chosen = pos
    mask = chosen < lengths[:, None]
    if width == 0 or split.n_docs == 0:
        return (torch.zeros(batch, width, split.n_features), torch.zeros(batch, width, dtype=torch.long),
                torch.zeros(batch, width, dtype=torch.bool))
    rows = torch.where(mask, split.offsets[:-1][qi][:, None] + chosen, torch.zeros_like(chosen))
    features = split.features[rows].masked_fill(~mask[..., None], 0.0)
    labels = split.labels[rows].masked_fill(~mask, 0)
    return features, labels, mask


def drop_queries_without_relevant(split: LTRSplit) -> LTRSplit:
    """The queries with at least one label > 0 (an all-zero list gives no gradient to list-wise losses)."""
    if split.n_docs == 0:
        return split
    relevant = torch.zeros(split.n_queries, dtype=torch.long).index_add_(0, split.doc_queries(),
                                                                          (split.labels > 0).long())
    return split.subset(relevant > 0)
