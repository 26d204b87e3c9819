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
