"""User–item graph utilities shared by graph-based top-N models."""

from __future__ import annotations

import warnings

import torch


def normalized_bipartite_adjacency(pairs: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Symmetrically normalised adjacency ``D^-1/2 A D^-1/2`` of the user–item graph, as a sparse CSR tensor.

    Nodes are users ``0..n_users-1`` followed by items ``n_users..n_users+n_items-1``; edges are the (deduplicated)
    training pairs in both directions; no self loops (LightGCN). Isolated nodes keep degree 0 and get no edges.
    """
    keys = torch.unique(pairs[:, 0].long() * n_items + pairs[:, 1].long())
    users, items = keys // n_items, keys % n_items + n_users
    rows = torch.cat([users, items])
    cols = torch.cat([items, users])
    n = n_users + n_items
    degree = torch.bincount(rows, minlength=n).float()
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[degree == 0] = 0.0
    values = inv_sqrt[rows] * inv_sqrt[cols]
    return to_csr(torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce())


class _SparseMatmul(torch.autograd.Function):
    """``A @ X`` for a constant sparse ``A`` whose transpose ``Aᵀ`` is given: the gradient w.r.t. ``X`` is ``Aᵀ G``.

    torch's generic sparse backward transposes ``A`` on every call; passing the transpose once (or ``A`` itself when
    it is symmetric, as a normalised adjacency is) makes graph propagation several times cheaper to train.
    """

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, transpose: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.transpose = transpose
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.transpose @ grad


def sparse_matmul(matrix: torch.Tensor, transpose: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` with a cheap backward, for a constant sparse ``matrix`` and its precomputed ``transpose``."""
    return _SparseMatmul.apply(matrix, transpose, dense)


def symmetric_spmm(adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Propagate ``dense`` over a symmetric sparse ``adjacency`` (e.g. :func:`normalized_bipartite_adjacency`)."""
    return _SparseMatmul.apply(adjacency, adjacency, dense)


def users_from_items(adjacency: torch.Tensor, items: torch.Tensor, n_users: int) -> torch.Tensor:
    """User vectors as the normalised user–item adjacency's user rows applied to item vectors: ``Â [0; items]``
    (each user the degree-normalised sum of their items; used by content lines that have no user parameters)."""
    padded = torch.cat([items.new_zeros(n_users, items.shape[1]), items])
    return symmetric_spmm(adjacency, padded)[:n_users]


def to_csr(coo: torch.Tensor) -> torch.Tensor:
    """COO → CSR (CSR @ dense is the fast path on CPU), without torch's "CSR support is in beta" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return coo.to_sparse_csr()


def transpose_csr(matrix: torch.Tensor) -> torch.Tensor:
    """The transpose of a CSR matrix, as CSR."""
    return to_csr(matrix.to_sparse_coo().t().coalesce())


def bipartite_aggregation_adjacency(pairs: torch.Tensor, n_users: int, n_items: int,
                                    aggregation: str = "mean") -> torch.Tensor:
    """The user–item graph as a sparse CSR ``[U+I, U+I]`` aggregation matrix (users first, then items).

    ``"sum"``: the 0/1 adjacency ``A`` (deduplicated training pairs, both directions, no self loops);
    ``"mean"``: ``D⁻¹A``, each row divided by its node's degree, so ``(D⁻¹A) x`` averages the neighbours of each node
    (rows of isolated nodes stay empty). Not symmetric for ``mean``: propagate with :func:`sparse_matmul`.
    """
    from recx.errors import ConfigError

    if aggregation not in ("mean", "sum"):
        raise ConfigError(f"unknown aggregation '{aggregation}'", field="model.aggregation", fix="use mean or sum")
    keys = torch.unique(pairs[:, 0].long() * n_items + pairs[:, 1].long())
    users, items = keys // n_items, keys % n_items + n_users
    rows, cols = torch.cat([users, items]), torch.cat([items, users])
    n = n_users + n_items
    values = torch.ones(rows.shape[0])
    if aggregation == "mean":
        values = 1.0 / torch.bincount(rows, minlength=n).float()[rows]
    return to_csr(torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce())


def random_walk_self_loop_adjacency(pairs: torch.Tensor, n_users: int, n_items: int) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """``D⁻¹(A + I)`` of the user–item graph (NGCF's random-walk normalisation with self loops, which LATTICE's
    official code and MMRec feed their LightGCN), as CSR, with its transpose (it is not symmetric)."""
    keys = torch.unique(pairs[:, 0].long() * n_items + pairs[:, 1].long())
    users, items = keys // n_items, keys % n_items + n_users
    n = n_users + n_items
    loops = torch.arange(n)
    rows, cols = torch.cat([users, items, loops]), torch.cat([items, users, loops])
    values = 1.0 / torch.bincount(rows, minlength=n).float()[rows]
    matrix = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce()
    return to_csr(matrix), to_csr(matrix.t().coalesce())


def lightgcn_propagate(adjacency: torch.Tensor, ego: torch.Tensor, n_layers: int,
                       transpose: torch.Tensor | None = None) -> torch.Tensor:
    """LightGCN's layer combination: ``mean(E, ÂE, Â²E, …, Â^L E)``; ``Â`` symmetric unless its ``transpose`` is
    given (then the backward uses it)."""
    layers = [ego]
    x = ego
    for _ in range(n_layers):
        x = symmetric_spmm(adjacency, x) if transpose is None else sparse_matmul(adjacency, transpose, x)
        layers.append(x)
    return torch.stack(layers).mean(0)


def train_adjacency(data) -> torch.Tensor:
    """The normalised user–item adjacency of ``data``'s training pairs, built once per dataset object.

    Several models (and plug-ins wrapping them) in one process share it; it is derived data, never checkpointed.
    """
    cache = data.__dict__.setdefault("_derived", {})
    if "train_adjacency" not in cache:
        cache["train_adjacency"] = normalized_bipartite_adjacency(data.train, data.n_users, data.n_items)
    return cache["train_adjacency"]


def sample_edges_by_degree(pairs: torch.Tensor, n_users: int, n_items: int, keep_ratio: float,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep ``keep_ratio`` of the user–item edges, sampled without replacement ∝ ``1/sqrt(d_u · d_i)``.

    FREEDOM's degree-sensitive edge pruning: edges between high-degree nodes are the likeliest to be dropped, so
    training does not over-smooth towards popular items. Returns the kept ``[m, 2]`` pairs.
    """
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    n_keep = max(1, int(round(keep_ratio * pairs.shape[0])))
    if n_keep >= pairs.shape[0]:
        return pairs
    d_u = torch.bincount(pairs[:, 0], minlength=n_users).float()
    d_i = torch.bincount(pairs[:, 1], minlength=n_items).float()
    probs = (d_u[pairs[:, 0]] * d_i[pairs[:, 1]]).pow(-0.5)
    kept = torch.multinomial(probs, n_keep, replacement=False, generator=generator)
    return pairs[kept]
