"""Multi-round recommendation with a simulated user, batched over users (MAGUS, arXiv 2412.10787 — a reconstruction:
no public code; the protocol follows the research notes).

**The simulated user** holds a target item. Each round the system shows ``k`` items and asks ``m`` queries (word
combinations, nodes of the :class:`~recx.interactive.graph.WordGraph`). The user clicks an item iff it is the target
(success: the session ends), accepts a query iff all its words are words of the target, and rejects the rest.

**Strategies** (one function, switches):

* ``item_only``: the base recommender's ranking, shown items excluded round after round;
* ``magus``: items ranked by ``z(base score) + β · word evidence``; the answers (1) eliminate items that contradict
  them (an accepted node the item lacks, a rejected node the item has) and (2) update word scores by label
  propagation over the graph, ``s ← s + f + α (f P − f N)`` with ``f`` = +1/−1 for accepted/rejected nodes and ``P``/``N``
  the R+/R− adjacencies; the next queries are the unasked nodes whose probability of acceptance under the current
  item distribution (softmax of the scores over the remaining items) is closest to ½ — the most informative guesses;
* ``query_only``: the same without the base recommender (items ranked by word evidence alone);
* ``random_query``: MAGUS with random unasked queries instead of informative ones.

Everything is ``[users, items]`` / ``[users, nodes]`` tensor algebra; the only loops are over rounds and the ``m``
queries of a round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STRATEGIES = ("item_only", "magus", "query_only", "random_query")
NEG = -1e9


@dataclass
class RoundSettings:
    rounds: int = 10
    items_per_round: int = 10
    queries_per_round: int = 3
    temperature: float = 1.0  # of the item distribution used to pick queries


@dataclass
class PropagationWeights:
    beta: float = 1.0  # weight of word evidence in item scores
    alpha: float = 0.5  # weight of one propagation step over the R+/R- edges


def answer_queries(queries: torch.Tensor, target_nodes: torch.Tensor) -> torch.Tensor:
    """``accepted [U, m]``: the user accepts a query iff the target carries every word of it."""
    return target_nodes.gather(1, queries)


def standardise_rows(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per user, z-scores over the valid items (so β means the same for every base model)."""
    n = valid.sum(1, keepdim=True).clamp_min(1)
    x = torch.where(valid, scores, torch.zeros_like(scores))
    mean = x.sum(1, keepdim=True) / n
    var = (torch.where(valid, scores - mean, torch.zeros_like(scores)) ** 2).sum(1, keepdim=True) / n
    return torch.where(valid, (scores - mean) / var.sqrt().clamp_min(1e-9), torch.zeros_like(scores))


def run_rounds(strategy: str, base_scores: torch.Tensor, seen: torch.Tensor, targets: torch.Tensor, graph,
               settings: RoundSettings = RoundSettings(), weights: PropagationWeights = PropagationWeights(),
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The round at which each user's target was shown, ``[U]`` int64 in ``1..rounds``, or ``rounds + 1``.

    ``base_scores [U, I]``: the base recommender's scores; ``seen [U, I]`` bool: items that cannot be the target
    (training items), never shown; ``targets [U]``: the held-out target item of each user.
    """
    if strategy not in STRATEGIES:
        from recx.errors import ConfigError

        raise ConfigError(f"unknown strategy '{strategy}'", field="model.strategies", fix=f"use {list(STRATEGIES)}")
    n_users, n_items = base_scores.shape
    rows = torch.arange(n_users)
    alive = ~seen  # still possible: not seen, not shown, consistent with every answer
    uses_queries = strategy != "item_only"
    node_items = graph.node_items.to(torch.bool)  # [I, N]
    target_nodes = node_items[targets]  # [U, N]
    word_scores = torch.zeros(n_users, graph.n_nodes)
    asked = torch.zeros(n_users, graph.n_nodes, dtype=torch.bool)
    base = standardise_rows(base_scores, alive) if strategy != "query_only" else torch.zeros_like(base_scores)
    found = torch.full((n_users,), settings.rounds + 1, dtype=torch.long)
    k = settings.items_per_round
    for r in range(1, settings.rounds + 1):
        scores = base + weights.beta * (word_scores @ graph.node_items.T) if uses_queries else base
        scores = scores.masked_fill(~alive, NEG)
        shown = scores.topk(min(k, n_items), dim=1).indices
        hit = (shown == targets.unsqueeze(1)).any(1) & (found > settings.rounds)
        found[hit] = r
        alive[rows.unsqueeze(1), shown] = False
        if not uses_queries:
            continue
        candidates = ~asked
        if strategy == "random_query":
            key = torch.rand(n_users, graph.n_nodes, generator=generator)
        else:
            probs = torch.softmax(scores / settings.temperature, dim=1) * alive
            probs = probs / probs.sum(1, keepdim=True).clamp_min(1e-12)
            p_accept = probs @ graph.node_items  # [U, N]
            key = -(p_accept - 0.5).abs()
        queries = key.masked_fill(~candidates, float("-inf")).topk(settings.queries_per_round, dim=1).indices
        accepted = answer_queries(queries, target_nodes)
        asked[rows.unsqueeze(1), queries] = True
        feedback = torch.zeros(n_users, graph.n_nodes)
        feedback[rows.unsqueeze(1), queries] = accepted.float() * 2 - 1
        for j in range(queries.shape[1]):
            has = node_items[:, queries[:, j]].T  # [U, I]: item carries the j-th query's words
            alive &= torch.where(accepted[:, j:j + 1], has, ~has)
        word_scores = word_scores + feedback + weights.alpha * (feedback @ graph.positive - feedback @ graph.negative)
    return found


def success_at(found: torch.Tensor, rounds: int) -> dict[str, float]:
    """``success@T`` (share of users whose target was shown within T rounds) for T = 1..rounds, and the mean
    number of rounds to success with failures counted as ``rounds + 1`` (capped)."""
    out = {f"success@{t}": float((found <= t).float().mean()) for t in range(1, rounds + 1)}
    out["mean_rounds"] = float(found.clamp_max(rounds + 1).float().mean())
    return out
