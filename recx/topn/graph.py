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
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense (with autograd) is what we use
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return adj.to_sparse_csr()


class _SymmetricSparseMatmul(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``, whose gradient w.r.t. ``X`` is ``Aᵀ G = A G``.

    torch's generic sparse backward transposes ``A`` on every call; with a symmetric normalised adjacency that
    transpose is the matrix itself, so reusing it makes LightGCN-style propagation several times cheaper to train.
    """

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return adjacency @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adjacency @ grad


def symmetric_spmm(adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Propagate ``dense`` over a symmetric sparse ``adjacency`` (e.g. :func:`normalized_bipartite_adjacency`)."""
    return _SymmetricSparseMatmul.apply(adjacency, dense)


def lightgcn_propagate(adjacency: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN's layer combination: ``mean(E, ÂE, Â²E, …, Â^L E)`` over a symmetric normalised adjacency."""
    layers = [ego]
    x = ego
    for _ in range(n_layers):
        x = symmetric_spmm(adjacency, x)
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
