"""MAGUS's relational graph over words and word pairs, estimated from co-occurrence in interactions.

Nodes are the single words plus the most frequent word pairs (present together in at least ``min_items`` items, at
most ``max_pairs``): the candidate queries. Two nodes are related by

* a **positive** edge (R+, mutual improvement) when users who interact with one also interact with the other more
  than chance, a **negative** edge (R−, mutual inhibition) when less, and no edge (R⊥, independence) otherwise.

"More than chance" is measured per user: ``x_u[n]`` = the share of the user's training items that carry node ``n``;
the edge weight is the Pearson correlation of ``x[:, a]`` and ``x[:, b]`` across users, kept when ``|corr| > threshold``.
Both adjacencies are row-normalised so one propagation step is an average over related nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recx.interactive.words import ItemWords


@dataclass
class WordGraph:
    node_items: torch.Tensor  # [n_items, n_nodes] 1 when the item carries every word of the node
    node_words: torch.Tensor  # [n_nodes, n_words]
    positive: torch.Tensor  # [n_nodes, n_nodes] row-normalised R+ weights
    negative: torch.Tensor  # [n_nodes, n_nodes] row-normalised R- weights
    names: list[str]

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    def stats(self) -> dict:
        return {"nodes": self.n_nodes, "words": int(self.node_words.shape[1]),
                "pairs": int((self.node_words.sum(1) == 2).sum()),
                "positive_edges": int((self.positive > 0).sum()), "negative_edges": int((self.negative > 0).sum())}


def row_normalise(a: torch.Tensor) -> torch.Tensor:
    return a / a.sum(1, keepdim=True).clamp_min(1e-12)


def build_word_graph(words: ItemWords, train_pairs: torch.Tensor, n_users: int, min_items: int = 10,
                     max_pairs: int = 200, threshold: float = 0.1) -> WordGraph:
    """Nodes (words + frequent pairs), their items, and R+/R− edges from the users' training interactions."""
    w = words.matrix
    co = w.T @ w  # items sharing both words
    upper = torch.triu(co, diagonal=1)
    count = upper.flatten()
    keep = (count >= min_items).nonzero().flatten()
    keep = keep[count[keep].argsort(descending=True)][:max_pairs]
    a, b = keep // w.shape[1], keep % w.shape[1]
    pairs = torch.zeros(len(keep), w.shape[1])
    pairs[torch.arange(len(keep)), a] = 1.0
    pairs[torch.arange(len(keep)), b] = 1.0
    node_words = torch.cat([torch.eye(w.shape[1]), pairs])
    node_items = ((w @ node_words.T) >= node_words.sum(1)).float()
    names = list(words.names) + [f"{words.names[i]} & {words.names[j]}" for i, j in zip(a.tolist(), b.tolist())]

    users, items = train_pairs[:, 0], train_pairs[:, 1]
    profile = torch.zeros(n_users, node_items.shape[1]).index_add_(0, users, node_items[items])
    profile = profile / torch.bincount(users, minlength=n_users).clamp_min(1).unsqueeze(1)
    centred = profile - profile.mean(0)
    std = centred.pow(2).mean(0).sqrt().clamp_min(1e-9)
    corr = (centred.T @ centred) / n_users / (std.unsqueeze(0) * std.unsqueeze(1))
    corr.fill_diagonal_(0.0)
    positive = row_normalise(torch.where(corr > threshold, corr, torch.zeros_like(corr)))
    negative = row_normalise(torch.where(corr < -threshold, -corr, torch.zeros_like(corr)))
    return WordGraph(node_items, node_words, positive, negative, names)
