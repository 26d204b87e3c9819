"""Demonstration selectors: for each query, ``n`` demonstrations from a pool (indices into the pool).

* ``random``: a seeded random sample per query;
* ``similarity`` (KATE): the ``n`` pool examples with the highest cosine similarity to the query, most similar last
  (closest to the query in the prompt);
* ``diversity``: a greedy k-center cover of the pool (query-independent): the first point is the pool's medoid-like
  centre, each next one the farthest from those chosen.

Embeddings: the offline all-MiniLM-L6-v2 (the ``text`` extra) when installed, else TF-IDF (ours, numpy).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from recx.errors import ConfigError

SELECTORS = ("random", "similarity", "diversity")


def tfidf(texts: list[str], vocabulary: dict[str, int] | None = None, idf: np.ndarray | None = None):
    """``(matrix [N, V] l2-normalised, vocabulary, idf)``: word unigrams, lower-cased, smooth idf."""
    tokens = [re.findall(r"[a-z0-9']+", t.lower()) for t in texts]
    if vocabulary is None:
        df = Counter(w for ts in tokens for w in set(ts))
        vocabulary = {w: i for i, w in enumerate(sorted(df))}
        idf = np.array([math.log((1 + len(texts)) / (1 + df[w])) + 1.0 for w in sorted(df)])
    matrix = np.zeros((len(texts), len(vocabulary)), np.float32)
    for row, ts in enumerate(tokens):
        for w, c in Counter(ts).items():
            if w in vocabulary:
                matrix[row, vocabulary[w]] = c * idf[vocabulary[w]]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12), vocabulary, idf


def embed(pool: list[str], queries: list[str], encoder: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """Unit vectors for pool and queries with MiniLM (``auto`` when installed, or ``minilm``) or TF-IDF."""
    if encoder in ("auto", "minilm"):
        try:
            from recx.data.text import encode_texts

            vectors = encode_texts(pool + queries)
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return vectors[: len(pool)], vectors[len(pool):], "all-MiniLM-L6-v2"
        except Exception:  # noqa: BLE001 - the text extra is optional
            if encoder == "minilm":
                raise
    p, vocab, idf = tfidf(pool)
    q, _, _ = tfidf(queries, vocab, idf)
    return p, q, "tfidf"


def select(kind: str, pool_vectors: np.ndarray, query_vectors: np.ndarray, n: int,
           rng: np.random.Generator) -> np.ndarray:
    """``[Q, n]`` pool indices per query (``n`` capped at the pool size)."""
    if kind not in SELECTORS:
        raise ConfigError(f"unknown selector '{kind}'", field="selector", fix=f"one of {list(SELECTORS)}")
    p, q = len(pool_vectors), len(query_vectors)
    n = min(n, p)
    if kind == "random":
        return np.stack([rng.choice(p, n, replace=False) for _ in range(q)]) if q else np.zeros((0, n), int)
    if kind == "similarity":
        sims = query_vectors @ pool_vectors.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :n]
        return top[:, ::-1]  # most similar last, next to the query
    chosen = [int(np.argmax(pool_vectors @ pool_vectors.mean(0)))]
    distance = 1.0 - pool_vectors @ pool_vectors[chosen[0]]
    while len(chosen) < n:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, 1.0 - pool_vectors @ pool_vectors[nxt])
    return np.tile(np.array(chosen), (q, 1))
