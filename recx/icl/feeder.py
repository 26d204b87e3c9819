"""FEEDER (Jin et al., ICML 2025): pre-select a subset of the demonstration pool that is *sufficient* for the pool.

No public code exists; this follows the research notes (§2.2–2.3) and documents every choice the paper leaves open.
Everything is written against a **judge**: ``judge.correct(contexts, queries) -> list[bool]`` says whether the LM,
prompted with the demonstrations ``contexts[k]`` (pool indices, in prompt order), answers ``queries[k]`` correctly.
An LM wrapper is one judge; tests use a fake LM whose rule is known, so selections can be checked by hand.

* **Instance level** (Defs. 1–2): ``d`` is *sufficient* for ``x`` under context ``C`` iff the LM is wrong on ``x`` with
  ``C`` and right with ``C + d``; *necessary* iff right with ``C`` (which holds ``d``) and wrong with ``C − d``.
* **Set level**: ``W_in`` is sufficient for ``W_out`` iff every target ``t`` of ``W_out`` is *covered* by one
  ``shots``-item group of ``W_in`` (its consecutive chunks: ``shots`` = the paper's K; K = 1 checks every member of
  ``W_in`` alone; *our choice*: the paper does not say how a node with more than K items is shown). Two readings of
  "covered" (``sufficiency``):

  - ``def1`` (default): Def. 1 at the set level, with the empty context as the current context C. ``t`` is covered
    iff the LM is **wrong on t zero-shot** and **right with some group**. A target the LM already gets right needs
    no demonstration, so nothing is sufficient for it and the tree keeps it (in its node or a union); a wrong target
    is dropped only where a partner fixes it and is not fixed back. *Our choice* of C = ∅: the tree has no other
    context, and the notes' open question (may ``d`` be its own target) does not arise (a node never judges itself).
  - ``any``: ``t`` is covered iff it is answered right from some group, with no condition on the zero-shot answer
    (recx before issue 18). With a small LM most targets are right from almost any demonstration, nearly every pair
    looks mutually sufficient, and the tree collapses to a handful of items.
* **The tree** (bottom-up): leaves are the singletons, in a seeded shuffled order (*our choice*; adjacent pairing as in
  the notes); each layer pairs neighbours (an odd node is carried up) and keeps the smaller node when each is
  sufficient for the other (the first on a tie), the sufficient one when one is, and the union when neither is;
  ``runs`` (R) repeats it on the survivors. All checks of a layer go to the judge as **one batch**.
* ``def1`` asks the LM the zero-shot question of every pool item once (one batch) and then only the group
  questions of the targets it got wrong, so it costs fewer LM calls than ``any``.
* :class:`CachedJudge` remembers every ``(context, query)`` judgement, so repeated runs and overlapping checks are
  free, and counts the LM calls actually made.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence


class Judge(Protocol):
    def correct(self, contexts: Sequence[tuple[int, ...]], queries: Sequence[int]) -> list[bool]: ...


class CachedJudge:
    """A judge with a memory of ``(context, query)`` judgements; ``calls`` = judgements actually computed."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.memory: dict[tuple[tuple[int, ...], int], bool] = {}
        self.calls = 0
        self.hits = 0

    def correct(self, contexts: Sequence[tuple[int, ...]], queries: Sequence[int]) -> list[bool]:
        keys = [(tuple(c), int(q)) for c, q in zip(contexts, queries)]
        missing = list(dict.fromkeys(k for k in keys if k not in self.memory))
        if missing:
            answers = self.judge.correct([k[0] for k in missing], [k[1] for k in missing])
            self.memory.update(zip(missing, answers))
            self.calls += len(missing)
        self.hits += len(keys) - len(missing)
        return [self.memory[k] for k in keys]


def is_sufficient(judge: Judge, context: tuple[int, ...], candidate: int, target: int) -> bool:
    """Def. 1: wrong on ``target`` with ``context``, right once ``candidate`` is added (at the end)."""
    before, after = judge.correct([tuple(context), tuple(context) + (candidate,)], [target, target])
    return (not before) and after


def is_necessary(judge: Judge, context: tuple[int, ...], candidate: int, target: int) -> bool:
    """Def. 2: right on ``target`` with ``context`` (which holds ``candidate``), wrong once it is removed."""
    without = tuple(c for c in context if c != candidate)
    with_it, without_it = judge.correct([tuple(context), without], [target, target])
    return with_it and not without_it


SUFFICIENCY = ("def1", "any")
#: ``pool`` values: full (select from D_TRAIN) or feeder (from FEEDER's pre-selected D_FEEDER)
POOLS = ("full", "feeder")
ZERO_SHOT: tuple[int, ...] = ()


def check_sufficiency(sufficiency: str) -> str:
    if sufficiency not in SUFFICIENCY:
        from recx.errors import ConfigError

        raise ConfigError(f"unknown sufficiency '{sufficiency}'", field="model.feeder.sufficiency",
                          fix="def1 (wrong zero-shot, right with the demonstration; the paper's Def. 1) or any "
                              "(right with the demonstration)")
    return sufficiency


def groups_of(node: Sequence[int], shots: int) -> list[tuple[int, ...]]:
    return [tuple(node[i:i + shots]) for i in range(0, len(node), shots)]


def zero_shot(judge: Judge, items: Sequence[int]) -> dict[int, bool]:
    """Is the LM right on each item with no demonstration (the context C = ∅ of Def. 1)? One judge batch."""
    items = list(dict.fromkeys(int(i) for i in items))
    return dict(zip(items, judge.correct([ZERO_SHOT] * len(items), items))) if items else {}


def sufficiency_requests(w_in: Sequence[int], w_out: Sequence[int], shots: int, needs_cover=None):
    """The (context, query) judgements deciding whether ``w_in`` is sufficient for ``w_out``; with
    ``needs_cover`` (``def1``: the zero-shot-wrong targets) only those targets are asked about."""
    targets = w_out if needs_cover is None else [t for t in w_out if t in needs_cover]
    if needs_cover is not None and len(targets) < len(w_out):
        return []  # a zero-shot-right target can never be covered: no need to ask about the others
    return [(g, t) for t in targets for g in groups_of(w_in, shots)]


def decide(answers: dict, w_in: Sequence[int], w_out: Sequence[int], shots: int, needs_cover=None) -> bool:
    """``needs_cover`` None: the ``any`` reading; else the set of zero-shot-wrong items (``def1``)."""
    groups = groups_of(w_in, shots)
    if needs_cover is not None and not all(t in needs_cover for t in w_out):
        return False
    return all(any(answers[(g, t)] for g in groups) for t in w_out)


def needing_cover(judge: Judge, items: Sequence[int], sufficiency: str):
    """``def1``: the items the LM gets wrong zero-shot (only they can be covered); ``any``: None."""
    if check_sufficiency(sufficiency) == "any":
        return None
    return {i for i, ok in zero_shot(judge, items).items() if not ok}


def set_sufficient(judge: Judge, w_in: Sequence[int], w_out: Sequence[int], shots: int = 1,
                   sufficiency: str = "def1") -> bool:
    needs_cover = needing_cover(judge, w_out, sufficiency)
    requests = sufficiency_requests(w_in, w_out, shots, needs_cover)
    answers = dict(zip(requests, judge.correct([r[0] for r in requests], [r[1] for r in requests])))
    return decide(answers, w_in, w_out, shots, needs_cover)


def tree_layer(judge: Judge, nodes: list[list[int]], shots: int, needs_cover=None) -> list[list[int]]:
    """One layer of the tree: neighbours paired, every sufficiency check of the layer in one judge batch.
    ``needs_cover``: see :func:`decide`."""
    pairs = [(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
    requests = list(dict.fromkeys(r for a, b in pairs for r in sufficiency_requests(a, b, shots, needs_cover)
                                  + sufficiency_requests(b, a, shots, needs_cover)))
    answers = dict(zip(requests, judge.correct([r[0] for r in requests], [r[1] for r in requests]))) \
        if requests else {}
    out = []
    for a, b in pairs:
        a_for_b, b_for_a = decide(answers, a, b, shots, needs_cover), decide(answers, b, a, shots, needs_cover)
        if a_for_b and b_for_a:
            out.append(a if len(a) <= len(b) else b)
        elif a_for_b:
            out.append(a)
        elif b_for_a:
            out.append(b)
        else:
            out.append(a + b)
    if len(nodes) % 2:
        out.append(nodes[-1])
    return out


@dataclass
class FeederResult:
    selected: list[int]
    layers: int
    judge_calls: int
    cache_hits: int
    seconds: float
    sizes: list[int] = field(default_factory=list)  # survivors after each run


def feeder_preselect(judge: Judge, pool: Sequence[int], shots: int = 1, runs: int = 1, seed: int = 0,
                     shuffle: bool = True, sufficiency: str = "def1") -> FeederResult:
    """D_FEEDER ⊆ ``pool`` by the bottom-up tree, ``runs`` times (each run starts from the previous survivors);
    ``sufficiency``: ``def1`` (default, the paper's Def. 1) or ``any`` (see the module docstring)."""
    cached = judge if isinstance(judge, CachedJudge) else CachedJudge(judge)
    calls0, hits0 = cached.calls, cached.hits
    started = time.perf_counter()
    survivors = list(pool)
    layers, sizes = 0, []
    rng = random.Random(seed)
    needs_cover = needing_cover(cached, survivors, sufficiency)
    for _ in range(runs):
        order = survivors[:]
        if shuffle:
            rng.shuffle(order)
        nodes = [[i] for i in order]
        while len(nodes) > 1:
            nodes = tree_layer(cached, nodes, shots, needs_cover)
            layers += 1
        survivors = nodes[0] if nodes else []
        sizes.append(len(survivors))
    return FeederResult(sorted(survivors), layers, cached.calls - calls0, cached.hits - hits0,
                        time.perf_counter() - started, sizes)
