"""Product quantisation of item features into discrete tokens (MOTOR's tokenizer).

Each modality's feature vector is split into ``M`` contiguous sub-vectors; every sub-space gets its own codebook of
``K`` centroids learned by k-means; an item's token ids are the indices of its nearest centroid in each sub-space.
With several modalities an item is ``Σ_m M_m`` tokens. Optionally (``opq=True``) a rotation is learned first so that
the sub-spaces quantise better (optimised PQ: alternate PQ on the rotated data and an orthogonal Procrustes update).

Two backends: ``torch`` (default; batched Lloyd iterations over all sub-spaces at once, chunked distance computations,
seeded, CPU or GPU) and ``faiss`` (``faiss.ProductQuantizer`` / ``faiss.OPQMatrix``). Both report the *relative
distortion* ``Σ‖x − x̂‖² / Σ‖x − x̄‖²`` (0 = lossless, 1 = no better than the mean vector).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from recx.errors import ConfigError


@dataclass
class ModalityQuantizer:
    """A fitted product quantiser for one modality: optional rotation + ``[M, K, d_sub]`` codebooks."""

    codebooks: torch.Tensor  # [M, K, d_sub]
    rotation: torch.Tensor | None  # [d_pad, d_pad] orthogonal, applied as x @ rotation
    dim: int  # original feature dimension (before zero-padding to M · d_sub)
    distortion: float

    @property
    def n_subspaces(self) -> int:
        return self.codebooks.shape[0]

    @property
    def n_centroids(self) -> int:
        return self.codebooks.shape[1]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to ``M · d_sub`` dims and rotate: the space the codebooks live in."""
        x = _pad(x.float(), self.codebooks.shape[0] * self.codebooks.shape[2])
        return x @ self.rotation if self.rotation is not None else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids ``[n, M]`` (int64) of feature rows ``x`` — also for items never seen when fitting."""
        if x.shape[1] != self.dim:
            raise ConfigError(f"features have {x.shape[1]} dimensions, the quantiser was fitted on {self.dim}",
                              fix="give new items the same feature encoder as the training items")
        return _assign(_split(self.prepare(x), self.n_subspaces), self.codebooks)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstructed features ``[n, dim]`` from token ids."""
        parts = self.codebooks[torch.arange(self.n_subspaces), codes]  # [n, M, d_sub]
        x = parts.reshape(codes.shape[0], -1)
        if self.rotation is not None:
            x = x @ self.rotation.T
        return x[:, : self.dim]


def _pad(x: torch.Tensor, width: int) -> torch.Tensor:
    return x if x.shape[1] == width else torch.nn.functional.pad(x, (0, width - x.shape[1]))


def _split(x: torch.Tensor, m: int) -> torch.Tensor:
    """``[n, M·d_sub]`` → ``[M, n, d_sub]``."""
    return x.reshape(x.shape[0], m, -1).transpose(0, 1)


def _assign(sub: torch.Tensor, codebooks: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Nearest centroid per sub-space, chunked over items: ``[n, M]``."""
    out = []
    for start in range(0, sub.shape[1], chunk):
        block = sub[:, start:start + chunk]  # [M, b, d]
        dist = torch.cdist(block, codebooks)  # [M, b, K]
        out.append(dist.argmin(-1).T)
    return torch.cat(out)


def _kmeans(sub: torch.Tensor, k: int, iters: int, generator: torch.Generator,
            init: torch.Tensor | None = None) -> torch.Tensor:
    """Batched Lloyd k-means over ``M`` sub-spaces at once: ``[M, n, d]`` → centroids ``[M, K, d]``.

    Initialised from ``k`` distinct random items (the same items in every sub-space, seeded); an empty cluster is
    re-seeded with the point currently worst served by its centroid, so every codebook entry stays in use.
    """
    m, n, d = sub.shape
    centroids = init.clone() if init is not None else sub[:, torch.randperm(n, generator=generator)[:k]].clone()
    for _ in range(iters):
        codes = _assign(sub, centroids).T  # [M, n]
        sums = torch.zeros(m, k, d, dtype=sub.dtype, device=sub.device).scatter_add_(
            1, codes.unsqueeze(-1).expand(m, n, d), sub)
        counts = torch.zeros(m, k, dtype=sub.dtype, device=sub.device).scatter_add_(
            1, codes, torch.ones_like(codes, dtype=sub.dtype))
        centroids = torch.where(counts.unsqueeze(-1) > 0, sums / counts.clamp_min(1).unsqueeze(-1), centroids)
        empty = counts == 0
        if bool(empty.any()):
            err = (sub - centroids.gather(1, codes.unsqueeze(-1).expand(m, n, d))).pow(2).sum(-1)  # [M, n]
            for s in torch.nonzero(empty.any(1)).flatten().tolist():  # few sub-spaces, rare: not a hot loop
                holes = torch.nonzero(empty[s]).flatten()
                worst = err[s].topk(holes.numel()).indices
                centroids[s, holes] = sub[s, worst]
    return centroids


def relative_distortion(x: torch.Tensor, reconstructed: torch.Tensor) -> float:
    x = x.float()
    total = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    return float((x - reconstructed).pow(2).sum() / total)


#: ``tokenizer_backend`` values: torch (batched Lloyd iterations, default) or faiss (faiss's product quantiser)
BACKENDS = ("torch", "faiss")


def fit_quantizer(x: torch.Tensor, n_subspaces: int = 4, n_centroids: int = 256, *, opq: bool = False,
                  opq_iters: int = 4, kmeans_iters: int = 20, seed: int = 0, backend: str = "torch",
                  device: str | torch.device | None = None) -> ModalityQuantizer:
    """Fit a (optimised) product quantiser to feature rows ``x`` ``[n, d]``."""
    n, dim = x.shape
    if n_subspaces < 1 or n_subspaces > dim:
        raise ConfigError(f"cannot split {dim}-d features into {n_subspaces} sub-spaces",
                          field="model.n_subspaces", fix=f"choose 1 <= n_subspaces <= {dim}")
    if not 2 <= n_centroids <= n:
        raise ConfigError(f"{n_centroids} centroids need at least as many items (have {n})", field="model.n_centroids",
                          fix=f"choose 2 <= n_centroids <= {n}")
    if backend == "faiss":
        return _fit_faiss(x, n_subspaces, n_centroids, opq=opq, kmeans_iters=kmeans_iters, seed=seed)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown tokenizer backend '{backend}'", field="model.tokenizer_backend",
                          fix="use torch or faiss")
    g = torch.Generator().manual_seed(seed)
    d_sub = -(-dim // n_subspaces)
    data = _pad(x.float(), n_subspaces * d_sub)
    if device is not None:
        data = data.to(device)
    rotation = torch.eye(data.shape[1], device=data.device) if opq else None
    centroids = None
    for _ in range(opq_iters if opq else 1):
        rotated = data @ rotation if opq else data
        sub = _split(rotated, n_subspaces)
        centroids = _kmeans(sub, n_centroids, kmeans_iters, g, init=centroids)
        if opq:  # orthogonal Procrustes: the rotation that best maps the data onto its reconstruction
            codes = _assign(sub, centroids)
            recon = centroids[torch.arange(n_subspaces, device=data.device), codes].reshape(n, -1)
            u, _, vh = torch.linalg.svd(data.T @ recon, full_matrices=False)
            rotation = u @ vh
    quantizer = ModalityQuantizer(centroids.cpu(), rotation.cpu() if rotation is not None else None, dim, 0.0)
    quantizer.distortion = relative_distortion(x, quantizer.decode(quantizer.encode(x)))
    return quantizer


def _fit_faiss(x: torch.Tensor, m: int, k: int, *, opq: bool, kmeans_iters: int, seed: int) -> ModalityQuantizer:
    from recx.scoring.faiss_backend import import_faiss

    faiss = import_faiss()
    import numpy as np

    dim = x.shape[1]
    d_sub = -(-dim // m)
    data = np.ascontiguousarray(_pad(x.float(), m * d_sub).numpy())
    rotation = None
    if opq:
        mat = faiss.OPQMatrix(m * d_sub, m)
        mat.train(data)
        rotation = torch.from_numpy(faiss.vector_to_array(mat.A).reshape(m * d_sub, m * d_sub).T.copy())
        data = np.ascontiguousarray(mat.apply_py(data))
    nbits = int(np.log2(k))
    if 2 ** nbits != k:
        raise ConfigError("the faiss backend needs a power-of-two number of centroids", field="model.n_centroids",
                          fix="use e.g. 64, 128 or 256, or tokenizer_backend=torch")
    pq = faiss.ProductQuantizer(m * d_sub, m, nbits)
    pq.cp.niter = kmeans_iters
    pq.cp.seed = seed
    pq.train(data)
    codebooks = torch.from_numpy(faiss.vector_to_array(pq.centroids).reshape(m, k, d_sub).copy())
    quantizer = ModalityQuantizer(codebooks, rotation, dim, 0.0)
    quantizer.distortion = relative_distortion(x, quantizer.decode(quantizer.encode(x)))
    return quantizer


@dataclass
class ItemTokens:
    """Every item as token ids over all modalities, plus the quantisers that produced them."""

    codes: torch.Tensor  # [n_items, T] int64, T = Σ_m M_m
    quantizers: dict[str, ModalityQuantizer]

    @property
    def vocabulary_sizes(self) -> list[int]:
        """Codebook size of each token position (position j draws from its own codebook)."""
        return [q.n_centroids for q in self.quantizers.values() for _ in range(q.n_subspaces)]

    def encode(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token ids of new items from their features (same modalities as at fitting time)."""
        missing = [m for m in self.quantizers if m not in features]
        if missing:
            raise ConfigError(f"new items lack modality {missing}", field="new_items",
                              fix=f"give every modality the model was trained with: {list(self.quantizers)}")
        return torch.cat([q.encode(features[m]) for m, q in self.quantizers.items()], dim=1)

    def distortions(self) -> dict[str, float]:
        return {m: q.distortion for m, q in self.quantizers.items()}


def tokenize_items(features: dict[str, torch.Tensor], n_subspaces: int = 4, n_centroids: int = 256, *,
                   opq: bool = False, kmeans_iters: int = 20, seed: int = 0, backend: str = "torch",
                   device=None) -> ItemTokens:
    """Fit one quantiser per modality and encode every item (the number of centroids is capped at n_items)."""
    quantizers = {}
    for name, x in features.items():
        quantizers[name] = fit_quantizer(x, n_subspaces, min(n_centroids, x.shape[0]), opq=opq,
                                         kmeans_iters=kmeans_iters, seed=seed, backend=backend, device=device)
    codes = torch.cat([q.encode(features[m]) for m, q in quantizers.items()], dim=1)
    return ItemTokens(codes, quantizers)


def cached_item_tokens(data, features: dict[str, torch.Tensor], **options) -> ItemTokens:
    """:func:`tokenize_items` for a dataset, cached as ``tokens_<hash>.pt`` next to its prepared data."""
    from recx.data.interactions import atomic_write

    key = hashlib.sha256(json.dumps({"modalities": list(features), "shapes": [list(f.shape) for f in
                                     features.values()], **{k: str(v) for k, v in options.items()}},
                                    sort_keys=True).encode()).hexdigest()[:12]
    path = Path(data.cache_dir) / f"tokens_{key}.pt" if getattr(data, "cache_dir", None) else None
    if path is not None and path.is_file():
        try:
            payload = torch.load(path, weights_only=True)
            quantizers = {m: ModalityQuantizer(**q) for m, q in payload["quantizers"].items()}
            return ItemTokens(payload["codes"], quantizers)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    tokens = tokenize_items(features, **options)
    if path is not None:
        payload = {"codes": tokens.codes, "quantizers": {m: {"codebooks": q.codebooks, "rotation": q.rotation,
                                                             "dim": q.dim, "distortion": q.distortion}
                                                         for m, q in tokens.quantizers.items()}}
        atomic_write(path, lambda f: torch.save(payload, f))
    return tokens
