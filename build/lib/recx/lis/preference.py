"""Preference data for LIS: item–item co-engagement graphs, from a split of the data or from a user's pair file.

A preference dataset is what an MLLM would be aligned on: pairs of items that the same users engaged with. recx holds
it as a symmetric, non-negative ``[n_items, n_items]`` sparse matrix ``C`` (zero diagonal) and, for scoring, its
degree-normalised form ``W = D^-1/2 C D^-1/2`` (so that a popular item does not dominate every user's profile).

* :func:`period_coengagement` — ``C_p = A_pᵀ A_p`` over the interactions of one period ``p`` (``train``, ``valid`` or
  ``test``): two items are linked as often as users engaged with both *within that period*. Because a user's history
  (train items) and that user's own period-``p`` items are disjoint under recx's splits, a user's own future never
  enters the user's own signal; what leaks from the test period is how *other* users co-engaged items then.
* :func:`pairs_file_graph` — two columns of raw item ids (optional third: weight), CSV/TSV/whitespace.
* :func:`shuffle_graph` — the same graph with item labels permuted: same degrees, no information (a control).
* :func:`resolve_preference` — a spec string (``train``, ``valid``, ``test``, ``shuffled:<spec>``, or a file path).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from recx.data.interactions import InteractionData
from recx.errors import DataError

PERIODS = ("train", "valid", "test")


def _symmetric_sparse(rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """Coalesced COO ``[n, n]`` of ``w`` at ``(r, c)`` and ``(c, r)``, diagonal dropped."""
    off = rows != cols
    rows, cols, weights = rows[off], cols[off], weights[off]
    index = torch.stack([torch.cat([rows, cols]), torch.cat([cols, rows])])
    return torch.sparse_coo_tensor(index, torch.cat([weights, weights]).float(), (n, n), check_invariants=True).coalesce()


def period_coengagement(data: InteractionData, period: str) -> torch.Tensor:
    """``A_pᵀ A_p`` without its diagonal, as coalesced sparse COO ``[n_items, n_items]`` (float32 counts)."""
    if period not in PERIODS:
        raise DataError(f"unknown period '{period}'", field="preference", fix=f"use one of {list(PERIODS)}")
    pairs = torch.unique(data.split(period), dim=0)  # binary engagement
    n = data.n_items
    if pairs.numel() == 0:
        return torch.sparse_coo_tensor(torch.empty(2, 0, dtype=torch.long), torch.empty(0), (n, n), check_invariants=True).coalesce()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's "sparse support is in beta" notices
        a = torch.sparse_coo_tensor(pairs.T, torch.ones(pairs.shape[0]), (data.n_users, n), check_invariants=True).coalesce()
        c = torch.sparse.mm(a.t().coalesce(), a).coalesce()
    index, values = c.indices(), c.values()
    off = index[0] != index[1]
    return torch.sparse_coo_tensor(index[:, off], values[off], (n, n), check_invariants=True).coalesce()


def pairs_file_graph(path: str | Path, data: InteractionData) -> tuple[torch.Tensor, dict]:
    """Read item pairs (raw item ids; optional weight column) into a symmetric co-engagement graph.

    Returns the graph and a report (pairs read, pairs kept, pairs naming items unknown to the dataset).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("preference pair file not found", path=path,
                        fix="give a file of two columns of item ids (optional third column: weight)")
    delimiter = "\t" if path.suffix in (".tsv", ".tab") else ("," if path.suffix == ".csv" else None)
    try:
        table = np.loadtxt(path, dtype=str, delimiter=delimiter, ndmin=2, comments="#")
    except ValueError as exc:
        raise DataError(f"cannot read the pair file ({exc})", path=path,
                        fix="two (or three, with a weight) columns per line, same count on every line") from exc
    if table.shape[0] and not _is_number(table[0, -1]) and table.shape[1] == 3:
        table = table[1:]  # a header line
    if table.shape[0] == 0 or table.shape[1] not in (2, 3):
        raise DataError(f"expected 2 or 3 columns (item, item[, weight]), found {table.shape[1]}", path=path)
    if table.shape[1] == 3:
        try:
            weights = torch.from_numpy(table[:, 2].astype(np.float64)).float()
        except ValueError as exc:
            raise DataError("the third column (weight) must be numeric", path=path, field="weight") from exc
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise DataError("pair weights must be finite and non-negative", path=path, field="weight")
    else:
        weights = torch.ones(table.shape[0])
    index = {raw: i for i, raw in enumerate(data.item_ids)}
    left = np.array([index.get(x, -1) for x in table[:, 0]])
    right = np.array([index.get(x, -1) for x in table[:, 1]])
    known = (left >= 0) & (right >= 0)
    report = {"file": str(path), "pairs_read": int(table.shape[0]), "pairs_kept": int(known.sum()),
              "pairs_with_unknown_items": int((~known).sum())}
    if not known.any():
        raise DataError(f"none of the {table.shape[0]} pairs names items of dataset '{data.name}'", path=path,
                        fix="use the dataset's raw item ids (the ids in its interaction file)")
    keep = torch.from_numpy(known)
    graph = _symmetric_sparse(torch.from_numpy(left)[keep], torch.from_numpy(right)[keep], weights[keep], data.n_items)
    return graph, report


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def shuffle_graph(graph: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Permute item labels: ``Π C Πᵀ`` keeps every degree and weight but breaks which items are linked."""
    n = graph.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    index = graph.indices()
    return torch.sparse_coo_tensor(perm[index], graph.values(), (n, n), check_invariants=True).coalesce()


def normalise_graph(graph: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 C D^-1/2`` as sparse CSR (isolated items keep empty rows)."""
    index, values = graph.indices(), graph.values()
    degree = torch.zeros(graph.shape[0]).index_add_(0, index[0], values)
    inv_sqrt = degree.clamp_min(1e-12).rsqrt()
    weights = values * inv_sqrt[index[0]] * inv_sqrt[index[1]]
    return torch.sparse_coo_tensor(index, weights, graph.shape, check_invariants=True).coalesce().to_sparse_csr()


def resolve_preference(spec: str, data: InteractionData, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """A preference spec → ``(graph C, report)``; see the module docstring for the spec language."""
    spec = str(spec)
    if spec.startswith("shuffled:"):
        graph, report = resolve_preference(spec.split(":", 1)[1], data, seed)
        return shuffle_graph(graph, seed), {**report, "shuffled": True}
    if spec in PERIODS:
        graph = period_coengagement(data, spec)
        return graph, {"period": spec, "pairs": int(graph.values().numel() // 2)}
    if Path(spec).suffix or Path(spec).exists():
        graph, report = pairs_file_graph(spec, data)
        return graph, {**report, "pairs": int(graph.values().numel() // 2)}
    raise DataError(f"unknown preference data '{spec}'", field="preference",
                    fix="use train, valid, test (co-engagement in that period), shuffled:<one of those>, "
                        "or a path to a file of item pairs")


def preference_name(spec: str) -> str:
    """Short display name of a spec: the period, or the file's stem."""
    spec = str(spec)
    if spec.startswith("shuffled:"):
        return "shuffled:" + preference_name(spec.split(":", 1)[1])
    return spec if spec in PERIODS else Path(spec).stem
