"""Learning-path episodes: target concepts, initial logs and the candidate set, batched.

* ``official`` (SRC's ``Scripts/utils.py::get_data``): ``n_targets`` random concepts as targets, ``n_initial`` random
  concepts as initial logs;
* ``students``: real students' histories — the last ``n_initial`` concepts of the first 60 % of a student's sequence
  are the initial logs, ``n_targets`` concepts drawn from the de-duplicated concepts of the rest are the targets.

Candidate sets (``path_type``, the paper's p0..p3, ``generate_path``): p0 = concepts ``1..n`` in random order; p1 = a
random block ``[k·n + 1, (k + 1)·n]``; p2 = ``n`` random distinct concepts; p3 = all concepts (the policy chooses ``n``).
Concept ids are ``1..n_skills``.
"""

from __future__ import annotations

import torch

from recx.errors import ConfigError
from recx.pathrec.data import KTSequences

PATH_TYPES = (0, 1, 2, 3)


def candidate_sets(batch: int, n_skills: int, path_type: int, length: int, generator: torch.Generator) -> torch.Tensor:
    if path_type not in PATH_TYPES:
        raise ConfigError(f"unknown path type p{path_type}", field="model.path_type", fix="use 0, 1, 2 or 3")
    if path_type != 3 and length > n_skills:
        raise ConfigError(f"path length {length} exceeds the {n_skills} concepts", field="model.path_length")
    keys = torch.rand(batch, n_skills if path_type == 3 else length, generator=generator)
    if path_type == 0:
        return keys.argsort(1) + 1
    if path_type == 1:
        block = torch.randint(0, n_skills // length, (batch, 1), generator=generator)
        return block * length + keys.argsort(1) + 1
    if path_type == 2:
        return torch.rand(batch, n_skills, generator=generator).argsort(1)[:, :length] + 1
    return keys.argsort(1) + 1


def official_episodes(batch: int, n_skills: int, n_targets: int = 3, n_initial: int = 10,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets [B, n_targets], initial_logs [B, n_initial])``: distinct random targets, random logs."""
    targets = torch.rand(batch, n_skills, generator=generator).argsort(1)[:, :n_targets] + 1
    initial = torch.randint(1, n_skills + 1, (batch, n_initial), generator=generator)
    return targets, initial


def student_episodes(students: KTSequences, batch: int, n_targets: int = 3, n_initial: int = 10,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Episodes from real histories (students with at least ``n_initial / 0.6`` interactions)."""
    eligible = (students.lengths * 0.6).long() >= n_initial
    pool = eligible.nonzero().flatten()
    if pool.numel() == 0:
        raise ConfigError(f"no student has {n_initial} initial logs in the first 60 % of the sequence",
                          field="model.n_initial", fix="lower model.n_initial or use episodes=official")
    chosen = pool[torch.randint(0, pool.numel(), (batch,), generator=generator)]
    cut = (students.lengths[chosen] * 0.6).long()
    offsets = cut.unsqueeze(1) - n_initial + torch.arange(n_initial)
    initial = students.skills[chosen].gather(1, offsets)
    later = students.skills[chosen]
    position = torch.arange(later.shape[1]).unsqueeze(0)
    in_rest = (position >= cut.unsqueeze(1)) & (position < students.lengths[chosen].unsqueeze(1))
    present = torch.zeros(batch, students.n_skills + 1)
    present.scatter_(1, later * in_rest, 1.0)
    present[:, 0] = 0.0  # padding
    keys = torch.rand(batch, students.n_skills + 1, generator=generator) + present * 2.0  # present concepts first
    targets = keys.argsort(1, descending=True)[:, :n_targets]
    fallback = present.sum(1, keepdim=True) < torch.arange(1, n_targets + 1).unsqueeze(0)  # too few distinct ones
    targets = torch.where(fallback & (targets == 0), torch.randint(1, students.n_skills + 1, targets.shape,
                                                                   generator=generator), targets)
    return targets, initial
