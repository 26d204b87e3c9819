"""Per-(user, item) signals the LIS light ranker adds to a recommender's score.

Both signals measure how close a candidate item is to the user's history ``H_u`` (the user's training items), written
with the row-normalised history matrix ``H̃ = D_u⁻¹ A_train`` (``[n_users, n_items]``, sparse):

* representation signal (AIS): ``h_E(u, i) = (H̃ Ê)_u · ê_i`` — the mean cosine similarity between the candidate and the
  history items under item vectors ``E`` (``Ê``: rows L2-normalised). ``H̃ Ê`` is one sparse × dense product, then
  each user chunk is one dense matmul.
* preference signal (LIS): ``h_P(u, i) = (H̃ W)_{u,i}`` — the mean normalised co-engagement weight between the
  candidate and the history items, ``W = D^-1/2 C D^-1/2``. Each user chunk is one sparse × sparse product.

A signal is a callable ``users [B] -> [B, n_items]`` on the evaluation device, like a model's ``score``.
"""

from __future__ import annotations

import warnings

import torch

from recx.scoring.topk import seen_pairs


class History:
    """The row-normalised history matrix ``H̃`` of every user, as CSR arrays (kept on ``device``)."""

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, n_items: int, device=None) -> None:
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.indptr, self.indices = indptr.long().to(device), indices.long().to(device)
        self.n_users, self.n_items = indptr.numel() - 1, n_items
        counts = (self.indptr[1:] - self.indptr[:-1]).float()
        self.inverse_length = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
        self.device = device

    def rows(self, users: torch.Tensor) -> torch.Tensor:
        """``H̃[users]`` as sparse CSR ``[B, n_items]`` (built from the CSR arrays directly, no sorting)."""
        users = users.to(self.device)
        r, c = seen_pairs(users, self.indptr, self.indices)
        counts = self.indptr[users + 1] - self.indptr[users]
        crow = torch.zeros(users.numel() + 1, dtype=torch.long, device=self.device)
        crow[1:] = torch.cumsum(counts, 0)
        values = self.inverse_length[users][r]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
            return torch.sparse_csr_tensor(crow, c, values, (users.numel(), self.n_items), check_invariants=True)

    def matrix(self) -> torch.Tensor:
        """``H̃`` for all users (sparse CSR)."""
        return self.rows(torch.arange(self.n_users, device=self.device))


def unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    vectors = vectors.float()
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)


class RepresentationSignal:
    """``h_E(u, i)``: mean cosine between candidate ``i`` and the user's history items under ``vectors``."""

    def __init__(self, history: History, vectors: torch.Tensor) -> None:
        items = unit_rows(vectors.detach()).to(history.device)
        self.items_t = items.T.contiguous()
        self.profiles = torch.sparse.mm(history.matrix(), items)  # [n_users, d]

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        return self.profiles[users.to(self.profiles.device)] @ self.items_t


class PreferenceSignal:
    """``h_P(u, i)``: mean normalised co-engagement weight between candidate ``i`` and the user's history items."""

    def __init__(self, history: History, normalised_graph: torch.Tensor) -> None:
        self.history = history
        self.graph = normalised_graph.to(history.device).to_sparse_csr()

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(self.history.rows(users), self.graph).to_dense()


class CachedSignal:
    """Scores every user once and keeps the dense ``[n_users, n_items]`` matrix when it fits ``budget_mb``.

    The evaluator reads each signal twice (AUC samples, then full ranking); for catalogues that fit (ml100k: 6 MB)
    the second read is free. Larger ones fall through to the wrapped signal, chunk by chunk.
    """

    def __init__(self, signal, n_users: int, n_items: int, chunk: int, budget_mb: float, device) -> None:
        self.signal, self.matrix = signal, None
        if n_users * n_items * 4 <= budget_mb * 2**20:
            users = torch.arange(n_users, device=device)
            self.matrix = torch.cat([signal(users[b:b + chunk]).float() for b in range(0, n_users, chunk)])

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        if self.matrix is None:
            return self.signal(users)
        return self.matrix.index_select(0, users.to(self.matrix.device))
