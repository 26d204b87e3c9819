"""Negative sampling for pairwise (BPR-style) training, vectorised.

Uniform over the whole catalogue, rejecting items the user interacted with in training (RecBole's and MMRec's rule):
draw for every pair at once, find collisions with one ``searchsorted`` over the sorted ``user*n_items+item`` keys,
redraw only those, repeat. The expected number of rounds is tiny unless users have seen most of the catalogue.
"""

from __future__ import annotations

import torch

from recx.errors import DataError


def pair_keys(pairs: torch.Tensor, n_items: int) -> torch.Tensor:
    """Sorted unique ``user * n_items + item`` keys of ``[n, 2]`` pairs (for membership tests)."""
    return torch.unique(pairs[:, 0].long() * n_items + pairs[:, 1].long())


def contains(sorted_keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Boolean mask: which ``queries`` occur in ``sorted_keys``."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(queries, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, queries).clamp_max(sorted_keys.numel() - 1)
    return sorted_keys[pos] == queries


def sample_negatives(users: torch.Tensor, n_items: int, seen_keys: torch.Tensor, generator: torch.Generator,
                     max_rounds: int = 100, pool: torch.Tensor | None = None) -> torch.Tensor:
    """One negative item per entry of ``users``, never an item the user has seen in training.

    Uniform over all ``n_items``, or over the item ids in ``pool`` when given (MMRec draws from the items that occur
    in training only, so an item seen only in valid/test, or never, is never a negative).
    """
    size = n_items if pool is None else int(pool.numel())

    def draw(shape):
        index = torch.randint(size, shape, generator=generator)
        return index if pool is None else pool[index]

    negatives = draw(users.shape)
    todo = torch.arange(users.shape[0])
    for _ in range(max_rounds):
        clash = contains(seen_keys, users[todo] * n_items + negatives[todo])
        todo = todo[clash]
        if todo.numel() == 0:
            return negatives
        negatives[todo] = draw(todo.shape)
    worst = int(users[todo[0]])
    raise DataError(f"could not sample a negative item for user {worst} in {max_rounds} rounds: "
                    "the user has interacted with (almost) every item", field="train",
                    fix="filter users who saw nearly the whole catalogue, or use a larger item set")
