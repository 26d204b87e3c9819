"""Exact inner-product top-K through faiss (``IndexFlatIP``), for models that expose ``user_item_vectors()``.

faiss never materialises the ``[users, items]`` score matrix, but it cannot exclude a different item set per query
(a ``SearchParameters`` selector applies to the whole search call). So each chunk of users is searched with an
over-fetch of ``k + max seen count in the chunk``: whatever a user has seen, at least ``k`` unseen items remain among
the candidates. Seen candidates are dropped with one vectorised membership test -- the seen CSR flattened to sorted keys
``user * n_items + item``, probed with ``searchsorted`` -- and the deterministic rule of
:func:`recx.scoring.topk.topk_deterministic` (score descending, then item id ascending, ``-1`` for missing) is applied
to the remaining candidates. If the k-th kept score equals the smallest fetched score, tied items may lie beyond what
faiss returned; those rows are searched again with a doubled over-fetch until the tie is covered (or every item is
fetched), so the result is exactly the torch backend's rule applied to faiss's float32 scores.

faiss is imported lazily (it is optional at run time and its import costs time); vectors are scored in float32. With
``device`` on CUDA the flat index is built on the GPU (``faiss.index_cpu_to_gpu``; the ``gpu`` extra installs
``faiss-gpu-cu12``); a faiss without GPU support is refused with a ConfigError rather than silently searched on the CPU.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from recx.errors import ConfigError
from recx.scoring.topk import MISSING, _check_k, _concat, check_ranker_args, chunk_size_for, order_candidates


def import_faiss() -> Any:
    """``import faiss``, or a ConfigError that says how to install it or avoid it."""
    try:
        import faiss  # noqa: PLC0415 - optional dependency, imported on use
    except ImportError as exc:
        raise ConfigError(
            "the faiss scorer needs the faiss package, which is not importable",
            field="metric.scorer",
            fix="install it with `pip install -c constraints.txt faiss-cpu`, "
                "or use the torch backend (metric.scorer=torch)",
        ) from exc
    return faiss


def gpu_resources(faiss: Any) -> Any:
    """faiss's GPU resources, or a ConfigError when this faiss build has no GPU support."""
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        raise ConfigError(
            "metric.scorer=faiss on a CUDA device needs a GPU build of faiss, and the installed faiss has none "
            "(or sees no GPU)", field="metric.scorer",
            fix="install the `gpu` extra (pip install -c constraints.txt -e '.[gpu]': faiss-gpu-cu12, in place of "
                "faiss-cpu), or use metric.scorer=torch, which runs on the GPU as it is")
    return faiss.StandardGpuResources()


def gpu_device_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _as_float32_numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to(device="cpu", dtype=torch.float32).numpy())


class FaissTopK:
    """Exact top-K by inner product with per-user seen-item exclusion; same results contract as ``TorchTopK``.

    Arguments mirror :class:`recx.scoring.topk.TorchTopK`. ``device`` says where the returned tensors go (default:
    CPU) and, when it is a CUDA device, where faiss searches (GPU faiss). ``memory_budget_mb`` bounds the users searched per call the same way.
    """

    def __init__(self, k: int, seen_indptr: torch.Tensor | None = None, seen_indices: torch.Tensor | None = None,
                 memory_budget_mb: float = 256, device: torch.device | str | None = None,
                 n_items: int | None = None) -> None:
        self.k = check_ranker_args(k, seen_indptr, seen_indices, memory_budget_mb)
        self.faiss = import_faiss()
        self.memory_budget_mb = memory_budget_mb
        self.device = torch.device(device) if device is not None else None
        # on a CUDA device the index lives on the GPU (the `gpu` extra: faiss-gpu-cu12); a CPU-only faiss says so
        self.on_gpu = self.device is not None and self.device.type == "cuda"
        self._gpu_resources = gpu_resources(self.faiss) if self.on_gpu else None
        self.n_items = n_items
        if seen_indptr is not None:
            seen_indptr, seen_indices = seen_indptr.long().cpu(), seen_indices.long().cpu()
            self.seen_counts = seen_indptr[1:] - seen_indptr[:-1]
        self.seen_indptr, self.seen_indices = seen_indptr, seen_indices
        self._keys: tuple[int, torch.Tensor] | None = None  # (n_items, sorted seen keys)
        self._index: tuple[torch.Tensor, int, Any] | None = None  # (item_vecs, its version, IndexFlatIP)

    # ----------------------------------------------------------------- caches
    def _seen_keys(self, n_items: int) -> torch.Tensor:
        """Sorted ``user * n_items + item`` of every seen pair (CSR rows are sorted, so no sort is needed)."""
        if self._keys is None or self._keys[0] != n_items:
            rows = torch.repeat_interleave(torch.arange(self.seen_counts.numel()), self.seen_counts)
            self._keys = (n_items, rows * n_items + self.seen_indices)
        return self._keys[1]

    def _index_for(self, item_vecs: torch.Tensor):
        """One ``IndexFlatIP`` per item matrix, reused while the same tensor is passed unchanged (eval batches)."""
        cached = self._index
        if cached is not None and cached[0] is item_vecs and cached[1] == item_vecs._version:
            return cached[2]
        index = self.faiss.IndexFlatIP(int(item_vecs.shape[1]))
        if self.on_gpu:
            index = self.faiss.index_cpu_to_gpu(self._gpu_resources, gpu_device_index(self.device), index)
        index.add(_as_float32_numpy(item_vecs))
        self._index = (item_vecs, item_vecs._version, index)  # holding the tensor keeps the identity check sound
        return index

    # ---------------------------------------------------------------- ranking
    def _search(self, index, queries: np.ndarray, fetch: int) -> tuple[torch.Tensor, torch.Tensor]:
        distances, labels = index.search(queries, fetch)
        return torch.from_numpy(distances), torch.from_numpy(labels)

    @torch.no_grad()
    def _rank_chunk(self, index, queries: np.ndarray, users: torch.Tensor,
                    n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.k
        if self.seen_indptr is not None:
            n_seen = self.seen_counts[users]
        else:
            n_seen = torch.zeros(users.numel(), dtype=torch.long)
        fetch = min(n_items, k + int(n_seen.max()) if n_seen.numel() else k)
        values, items = self._search(index, queries, fetch)
        out_values = torch.empty(users.numel(), k)
        out_items = torch.empty(users.numel(), k, dtype=torch.long)
        pending = torch.arange(users.numel())
        while True:
            v, it = self._filter(values, items, users[pending], n_items)
            v, it = order_candidates(v, it)
            kth = v[:, k - 1]
            # tied items may lie beyond the fetched list when the k-th kept score equals the smallest fetched one
            unsure = (fetch < n_items) & torch.isfinite(kth) & (kth <= values[:, -1])
            done = ~unsure
            out_values[pending[done]] = v[done, :k]
            out_items[pending[done]] = it[done, :k]
            if not bool(unsure.any()):
                break
            pending = pending[unsure]
            fetch = min(n_items, 2 * fetch)
            values, items = self._search(index, queries[pending.numpy()], fetch)
        out_items = out_items.masked_fill(out_values == float("-inf"), MISSING)
        return out_items, out_values

    def _filter(self, values: torch.Tensor, items: torch.Tensor, users: torch.Tensor,
                n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates with seen (and padding ``-1``) entries turned into ``(-inf, n_items)`` so they sort last."""
        drop = items < 0
        if self.seen_indptr is not None:
            keys = self._seen_keys(n_items)
            if keys.numel():
                query = users.unsqueeze(1) * n_items + items
                pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
                drop |= keys[pos] == query
        values = values.masked_fill(drop, float("-inf"))
        items = items.masked_fill(drop, n_items)  # a placeholder id larger than any real one
        return values, items

    @torch.no_grad()
    def rank_vectors(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor, users: torch.Tensor,
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(users_chunk, items [b,k], values [b,k])`` in the order of ``users``."""
        n_items = int(item_vecs.shape[0])
        _check_k(self.k, n_items)
        self.n_items = n_items
        users = torch.as_tensor(users, dtype=torch.long)
        users_cpu = users.cpu()
        if self.seen_indptr is not None and users_cpu.numel():
            n_rows = self.seen_counts.numel()
            if int(users_cpu.min()) < 0 or int(users_cpu.max()) >= n_rows:
                raise ValueError(f"user ids must lie in [0, {n_rows}) to look up seen items")
        index = self._index_for(item_vecs)
        chunk = chunk_size_for(n_items, self.memory_budget_mb)
        for begin in range(0, users_cpu.numel(), chunk):
            batch = users_cpu[begin:begin + chunk]
            queries = _as_float32_numpy(user_vecs[batch.to(user_vecs.device)])
            items, values = self._rank_chunk(index, queries, batch, n_items)
            if self.device is not None:
                items, values = items.to(self.device), values.to(self.device)
            yield users[begin:begin + chunk], items, values

    @torch.no_grad()
    def rank_all_vectors(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor,
                         users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All of :meth:`rank_vectors` concatenated: ``(items [U,k], values [U,k])``."""
        return _concat(self.rank_vectors(user_vecs, item_vecs, users), self.k)

    def rank(self, score_fn, users):
        raise ConfigError("the faiss scorer ranks inner-product models only (user_item_vectors()), not score_fn",
                          field="metric.scorer", fix="use the torch backend (metric.scorer=torch) for this model")

    rank_all = rank
