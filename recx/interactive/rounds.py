"""Multi-round recommendation with a simulated user, batched over users (MAGUS, arXiv 2412.10787 — a reconstruction:
no public code; the protocol follows the research notes).

**The simulated user** (:class:`UserModel`) holds a target item. Each round the system shows ``k`` items and asks
``m`` queries (word combinations, nodes of the :class:`~recx.interactive.graph.WordGraph`). The user clicks an item iff
it is the target (success: the session ends). A query's true answer is "yes" iff all its words are words of the
target. The *noisy* user (the default evaluation setting) says "don't know" with probability δ (``unknown_rate``) and
otherwise gives the true answer flipped with probability ε (``error_rate``); the *exact* user (ε = δ = 0) always answers
truly. The noise is a counter-based hash of (seed, stream, round, user, node): deterministic per (seed, round, user),
independent of the batch and of the strategy (two strategies asking a user the same node in the same round get the
same answer).

**What an answer tells the system** — the likelihood of the answer under each candidate item ``i``:
``P(yes | i) = 1 − ε`` if ``i`` carries the node, ``ε`` otherwise; "don't know" has the same probability δ under every
item, so it carries no evidence. An item contradicting an answer therefore gets the log-likelihood ratio
``log(ε / (1 − ε))`` added to its score (soft evidence); with ε = 0 that is −∞, i.e. exact elimination, which is what
the exact user gets (a wrong answer can never eliminate the target when ε > 0).

**Strategies** (one function, switches):

* ``item_only``: the base recommender's ranking, shown items excluded round after round;
* ``magus``: items ranked by ``w_base · z(base score) + (word scores @ items) + answer log-likelihoods`` where the
  word scores are the answers propagated one step over the graph, ``s = β F + α₊ F P − α₋ F N`` (``F`` = sum of the
  answer vectors, +1 yes / −1 no / 0 don't know; ``P``/``N`` the R+/R− adjacencies); the next queries are the unasked
  nodes whose probability of acceptance under the current item distribution (softmax of the scores over the remaining
  items) is closest to ½ — the most informative guesses;
* ``query_only``: the same without the base recommender (items ranked by word evidence alone);
* ``random_query``: MAGUS with random unasked queries instead of informative ones;
* ``no_graph``: MAGUS with α₊ = α₋ = 0 (answers act only on the items and nodes they name) — the ablation of the
  graph.

The item scores are linear in the weights ``θ = (w_base, β, α₊, α₋)`` once a session's answers are fixed, so the
weights are *learned* (:func:`session_loss`, ``recipe.fit_weights``): the cross-entropy of the target under the
round's item distribution, summed over rounds and users still searching, is differentiable in θ while the shown items
and queries (argmax choices) are held fixed for one rollout.

Everything is ``[users, items]`` / ``[users, nodes]`` tensor algebra; the only loops are over rounds and the ``m``
queries of a round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STRATEGIES = ("item_only", "magus", "query_only", "random_query", "no_graph")
NEG = -1e9
USER_KINDS = ("noisy", "exact")


@dataclass
class RoundSettings:
    rounds: int = 10
    items_per_round: int = 10
    queries_per_round: int = 3
    temperature: float = 1.0  # of the item distribution used to pick queries


@dataclass
class PropagationWeights:
    """Item score = ``base · z(base score) + ((β F + α₊ F P − α₋ F N) @ items)`` + answer log-likelihoods, with ``F``
    the summed answers (+1 yes / −1 no / 0 don't know) over the asked nodes and ``P``/``N`` the R+/R− adjacencies.

    ``alpha`` and ``alpha_neg`` are the propagation weights (how much an answer about a node moves its R+ / R−
    neighbours); ``beta`` weighs the answered nodes themselves — for the noisy user on top of the likelihood weight
    ``log((1 − ε) / ε)`` that the soft evidence already gives them, so β is the learned correction of the trust in
    answers; ``base`` weighs the base recommender.
    """

    beta: float = 1.0
    alpha: float = 0.5
    alpha_neg: float | None = None  # None: the same as alpha
    base: float = 1.0

    def theta(self) -> torch.Tensor:
        """``(base, β, α₊, α₋)``: the item score is linear in these once a session's answers are fixed."""
        neg = self.alpha if self.alpha_neg is None else self.alpha_neg
        return torch.tensor([self.base, self.beta, self.alpha, neg], dtype=torch.float32)

    @classmethod
    def from_theta(cls, theta: torch.Tensor) -> "PropagationWeights":
        base, beta, pos, neg = (float(v) for v in theta.detach())
        return cls(beta=beta, alpha=pos, alpha_neg=neg, base=base)

    def as_dict(self) -> dict[str, float]:
        neg = self.alpha if self.alpha_neg is None else self.alpha_neg
        return {"base": round(self.base, 4), "beta": round(self.beta, 4), "alpha": round(self.alpha, 4),
                "alpha_neg": round(neg, 4)}


@dataclass
class UserModel:
    """The simulated user's answers to queries: flipped with probability ``error_rate`` (ε), "don't know" with
    probability ``unknown_rate`` (δ); ``seed`` and ``stream`` (e.g. 0 = validation, 1 = test) key the noise."""

    error_rate: float = 0.0
    unknown_rate: float = 0.0
    seed: int = 0
    stream: int = 0

    @classmethod
    def from_config(cls, cfg: dict, seed: int = 0, stream: int = 0) -> "UserModel":
        from recx.errors import ConfigError

        kind = cfg.get("kind", "noisy")
        if kind not in USER_KINDS:
            raise ConfigError(f"unknown user kind '{kind}'", field="model.user.kind", fix=f"use one of {USER_KINDS}")
        if kind == "exact":
            return cls(0.0, 0.0, seed, stream)
        eps, unknown = float(cfg.get("error_rate", 0.0)), float(cfg.get("unknown_rate", 0.0))
        if not 0.0 <= eps < 0.5:
            raise ConfigError(f"error rate {eps} is outside [0, 0.5)", field="model.user.error_rate",
                              fix="a probability below 0.5 (at 0.5 answers carry no information)")
        if not 0.0 <= unknown < 1.0:
            raise ConfigError(f"unknown rate {unknown} is outside [0, 1)", field="model.user.unknown_rate",
                              fix="a probability below 1")
        return cls(eps, unknown, seed, stream)

    @property
    def exact(self) -> bool:
        return self.error_rate == 0.0 and self.unknown_rate == 0.0

    @property
    def contradiction_log_ratio(self) -> float:
        """``log(ε / (1 − ε))``: what an answer adds to the log-score of an item it contradicts (−∞ when ε = 0)."""
        return -math.inf if self.error_rate == 0.0 else math.log(self.error_rate / (1.0 - self.error_rate))

    def describe(self) -> dict:
        return {"kind": "exact" if self.exact else "noisy", "error_rate": self.error_rate,
                "unknown_rate": self.unknown_rate, "seed": self.seed, "stream": self.stream}


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, constant below 2^31 so int64 products never overflow)."""
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    return (x >> 16) ^ x


def hash_uniform(*keys) -> torch.Tensor:
    """Uniform [0, 1) numbers that depend only on the integer keys (tensors broadcast): counter-based randomness."""
    h = torch.zeros((), dtype=torch.int64)
    for i, k in enumerate(keys):
        k = torch.as_tensor(k, dtype=torch.int64) & 0xFFFFFFFF
        h = _mix32(h ^ _mix32(k + (i + 1) * 0x3C6EF372 & 0xFFFFFFFF))
    return h.double() / 2.0 ** 32


def answer_queries(queries: torch.Tensor, target_nodes: torch.Tensor) -> torch.Tensor:
    """``accepted [U, m]``: the true answer — yes iff the target carries every word of the query."""
    return target_nodes.gather(1, queries)


def user_answers(queries: torch.Tensor, target_nodes: torch.Tensor, user: UserModel, round_: int,
                 user_ids: torch.Tensor) -> torch.Tensor:
    """``[U, m]`` float answers of the simulated user: +1 yes, −1 no, 0 don't know."""
    truth = answer_queries(queries, target_nodes).float() * 2 - 1
    if user.exact:
        return truth
    ids = user_ids.unsqueeze(1)
    flip = hash_uniform(user.seed, user.stream, round_, ids, queries, 0) < user.error_rate
    unknown = hash_uniform(user.seed, user.stream, round_, ids, queries, 1) < user.unknown_rate
    return torch.where(unknown, torch.zeros_like(truth), torch.where(flip, -truth, truth))


def standardise_rows(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per user, z-scores over the valid items (so β means the same for every base model)."""
    n = valid.sum(1, keepdim=True).clamp_min(1)
    x = torch.where(valid, scores, torch.zeros_like(scores))
    mean = x.sum(1, keepdim=True) / n
    var = (torch.where(valid, scores - mean, torch.zeros_like(scores)) ** 2).sum(1, keepdim=True) / n
    return torch.where(valid, (scores - mean) / var.sqrt().clamp_min(1e-9), torch.zeros_like(scores))


def run_rounds(strategy: str, base_scores: torch.Tensor, seen: torch.Tensor, targets: torch.Tensor, graph,
               settings: RoundSettings = RoundSettings(), weights: PropagationWeights = PropagationWeights(),
               generator: torch.Generator | None = None, user: UserModel = UserModel(),
               user_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The round at which each user's target was shown, ``[U]`` int64 in ``1..rounds``, or ``rounds + 1``.

    ``base_scores [U, I]``: the base recommender's scores; ``seen [U, I]`` bool: items that cannot be the target
    (training items), never shown; ``targets [U]``: the held-out target item of each user; ``user``: how the simulated
    user answers; ``user_ids [U]``: the users' ids that key the answer noise (default ``0..U-1``).
    """
    with torch.no_grad():
        return rollout(strategy, base_scores, seen, targets, graph, settings, weights.theta(), generator, user,
                       user_ids)[0]


def rollout(strategy: str, base_scores: torch.Tensor, seen: torch.Tensor, targets: torch.Tensor, graph,
            settings: RoundSettings, theta: torch.Tensor, generator: torch.Generator | None = None,
            user: UserModel = UserModel(), user_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(found [U], loss)``: one batched session; ``loss`` = the mean over rounds of the cross-entropy of the target
    under that round's item distribution, summed over the users still searching (differentiable in ``theta`` when
    it requires grad; the shown items and queries are argmax choices, held fixed)."""
    if strategy not in STRATEGIES:
        from recx.errors import ConfigError

        raise ConfigError(f"unknown strategy '{strategy}'", field="model.strategies", fix=f"use {list(STRATEGIES)}")
    n_users, n_items = base_scores.shape
    rows = torch.arange(n_users)
    user_ids = rows if user_ids is None else user_ids
    alive = ~seen  # still possible: not seen, not shown (and, for the exact user, consistent with every answer)
    uses_queries = strategy != "item_only"
    if strategy == "no_graph":
        theta = theta * torch.tensor([1.0, 1.0, 0.0, 0.0])
    eye = torch.eye(graph.n_nodes)
    node_items = graph.node_items.to(torch.bool)  # [I, N]
    items_of = graph.node_items.T  # [N, I]
    target_nodes = node_items[targets]  # [U, N]
    answers_sum = torch.zeros(n_users, graph.n_nodes)  # F
    evidence = torch.zeros(n_users, n_items)  # answer log-likelihood ratios (noisy user)
    asked = torch.zeros(n_users, graph.n_nodes, dtype=torch.bool)
    base = standardise_rows(base_scores, alive) if strategy != "query_only" else torch.zeros_like(base_scores)
    found = torch.full((n_users,), settings.rounds + 1, dtype=torch.long)
    k = settings.items_per_round
    penalty = user.contradiction_log_ratio
    loss = torch.zeros(())
    for r in range(1, settings.rounds + 1):
        if uses_queries:
            spread = theta[1] * eye + theta[2] * graph.positive - theta[3] * graph.negative  # [N, N]
            scores = theta[0] * base + (answers_sum @ spread) @ items_of + evidence
        else:
            scores = base
        scores = scores.masked_fill(~alive, NEG)
        searching = found > settings.rounds
        if scores.requires_grad and searching.any():
            logp = torch.log_softmax(scores[searching], dim=1)
            loss = loss - logp.gather(1, targets[searching].unsqueeze(1)).sum() / n_users
        scores = scores.detach()
        shown = scores.topk(min(k, n_items), dim=1).indices
        hit = (shown == targets.unsqueeze(1)).any(1) & searching
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
        answers = user_answers(queries, target_nodes, user, r, user_ids)
        asked[rows.unsqueeze(1), queries] = True
        feedback = torch.zeros(n_users, graph.n_nodes)
        feedback[rows.unsqueeze(1), queries] = answers
        answers_sum = answers_sum + feedback
        for j in range(queries.shape[1]):
            has = node_items[:, queries[:, j]].T  # [U, I]: item carries the j-th query's words
            a = answers[:, j:j + 1]
            contradicts = ((a > 0) & ~has) | ((a < 0) & has)
            if math.isinf(penalty):
                alive &= ~contradicts
            else:
                evidence = evidence + contradicts.float() * penalty
    return found, loss / settings.rounds


def success_at(found: torch.Tensor, rounds: int) -> dict[str, float]:
    """``success@T`` (share of users whose target was shown within T rounds) for T = 1..rounds, and the mean
    number of rounds to success with failures counted as ``rounds + 1`` (capped)."""
    out = {f"success@{t}": float((found <= t).float().mean()) for t in range(1, rounds + 1)}
    out["mean_rounds"] = float(found.clamp_max(rounds + 1).float().mean())
    return out
