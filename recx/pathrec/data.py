"""Student interaction sequences for knowledge tracing, and their readers.

Concept (skill) ids are ``1..n_skills``; 0 is padding. Two raw formats:

* the ASSIST "three lines per student" CSV (DKVMN / pykt style): a line with the sequence length, a line of skill ids,
  a line of 0/1 answers — validated line by line (length matches, ids are positive integers, answers are 0/1);
* the official ASSISTments 2009 skill-builder CSV (``user_id, skill_id, correct, order_id, ...``): rows sorted by
  ``order_id`` per user, rows without a skill dropped, skills re-indexed ``1..K`` in first-seen order.

Long sequences are cut into consecutive chunks of at most ``max_len`` (nothing is thrown away); chunks shorter than
``min_len`` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recx.errors import DataError, require_file


@dataclass
class KTSequences:
    """Padded sequences: ``skills [N, T]`` int64 (0 = padding), ``answers [N, T]`` float32, ``lengths [N]``."""

    skills: torch.Tensor
    answers: torch.Tensor
    lengths: torch.Tensor
    n_skills: int

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        return torch.arange(self.skills.shape[1]).unsqueeze(0) < self.lengths.unsqueeze(1)

    def subset(self, index: torch.Tensor) -> "KTSequences":
        return KTSequences(self.skills[index], self.answers[index], self.lengths[index], self.n_skills)

    def stats(self) -> dict:
        m = self.mask
        return {"sequences": len(self), "interactions": int(m.sum()), "skills": self.n_skills,
                "correct_rate": round(float(self.answers[m].mean()), 4) if m.any() else None}


def from_lists(skill_lists: list[np.ndarray], answer_lists: list[np.ndarray], n_skills: int, max_len: int = 200,
               min_len: int = 2) -> KTSequences:
    """Cut every student's sequence into chunks of ``max_len`` and pad them into tensors."""
    chunks = [(s[i:i + max_len], a[i:i + max_len]) for s, a in zip(skill_lists, answer_lists)
              for i in range(0, len(s), max_len)]
    chunks = [(s, a) for s, a in chunks if len(s) >= min_len]
    width = max((len(s) for s, _ in chunks), default=0)
    skills = np.zeros((len(chunks), width), dtype=np.int64)
    answers = np.zeros((len(chunks), width), dtype=np.float32)
    lengths = np.zeros(len(chunks), dtype=np.int64)
    for n, (s, a) in enumerate(chunks):
        skills[n, :len(s)], answers[n, :len(a)], lengths[n] = s, a, len(s)
    return KTSequences(torch.from_numpy(skills), torch.from_numpy(answers), torch.from_numpy(lengths), n_skills)


def read_three_line_csv(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(skills per student, answers per student)`` from the three-lines-per-student format."""
    p = require_file(path, what="ASSIST sequence file", fix="point the dataset at the three-line CSV files")
    text = p.read_text()
    lines = text.splitlines()
    if text.strip() and not text.endswith("\n"):
        from recx.data.tables import raise_truncated

        raise_truncated(p, "ASSIST sequence file", len(lines), "each student takes exactly 3 lines")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 3:
        raise DataError(f"{len(lines)} lines is not a multiple of 3 (length / skills / answers per student)", path=p,
                        fix="the file is truncated or has stray lines; each student takes exactly 3 lines")
    skills, answers = [], []
    for start in range(0, len(lines), 3):
        n_line, s_line, a_line = lines[start:start + 3]
        try:
            n = int(n_line.strip().rstrip(","))
        except ValueError:
            raise DataError(f"line {start + 1}: expected a sequence length, got {n_line.strip()[:40]!r}", path=p,
                            fix="line 1 of each student block is its number of interactions") from None
        try:
            s = np.array([int(x) for x in s_line.strip().rstrip(",").split(",")], dtype=np.int64)
            a = np.array([int(x) for x in a_line.strip().rstrip(",").split(",")], dtype=np.int64)
        except ValueError:
            raise DataError(f"lines {start + 2}-{start + 3}: skill ids and answers must be integers", path=p,
                            fix="comma-separated integers") from None
        if len(s) != n or len(a) != n:
            raise DataError(f"line {start + 1}: length {n} but {len(s)} skills and {len(a)} answers", path=p,
                            fix="the three lines of a student must agree")
        if n and s.min() < 1:
            raise DataError(f"line {start + 2}: skill ids must be >= 1 (0 is padding), found {int(s.min())}", path=p,
                            fix="shift skill ids to start at 1")
        if n and not np.isin(a, (0, 1)).all():
            raise DataError(f"line {start + 3}: answers must be 0 or 1", path=p, fix="1 = correct, 0 = wrong")
        skills.append(s)
        answers.append(a.astype(np.float32))
    if not skills:
        raise DataError("no student in the file", path=p, fix="check the file")
    return skills, answers


def read_skill_builder_csv(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """The official ASSISTments 2009 skill-builder CSV: per user, by ``order_id``; skills re-indexed from 1."""
    import polars as pl

    p = require_file(path, what="skill-builder CSV", fix="pass the official skill_builder_data.csv")
    with open(p, "rb") as f:  # a file cut off mid-line: its last row would be read with a partial value
        f.seek(0, 2)
        size = f.tell()
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                from recx.data.tables import raise_truncated

                raise_truncated(p, "skill-builder CSV", sum(1 for _ in open(p, "rb")), "a comma-separated file")
    try:
        frame = pl.read_csv(p, infer_schema_length=10000, encoding="utf8-lossy", ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise DataError(f"cannot read the CSV ({exc.__class__.__name__})", path=p, fix="a comma-separated file") from exc
    missing = {"user_id", "skill_id", "correct", "order_id"} - set(frame.columns)
    if missing:
        raise DataError(f"missing column(s) {sorted(missing)}", path=p,
                        fix="the official skill-builder file has user_id, skill_id, correct, order_id")
    frame = frame.drop_nulls(["user_id", "skill_id", "correct", "order_id"]).filter(pl.col("correct").is_in([0, 1]))
    frame = frame.sort(["user_id", "order_id"])
    codes, index = np.unique(frame["skill_id"].cast(pl.Utf8).to_numpy(), return_inverse=True)
    first_seen = np.argsort(np.unique(index, return_index=True)[1])  # re-index in first-seen order
    remap = np.empty_like(first_seen)
    remap[first_seen] = np.arange(len(first_seen))
    skill = remap[index] + 1
    users = frame["user_id"].to_numpy()
    correct = frame["correct"].to_numpy().astype(np.float32)
    cuts = np.flatnonzero(np.diff(users)) + 1
    skills = np.split(skill, cuts)
    answers = np.split(correct, cuts)
    return skills, answers, {"skill_ids": codes[first_seen].tolist()}


@dataclass
class KTData:
    """Train / valid / test student sequences of one dataset (valid: a seeded share of the training students)."""

    name: str
    train: KTSequences
    valid: KTSequences
    test: KTSequences
    n_skills: int
    meta: dict

    def stats(self) -> dict:
        return {"skills": self.n_skills, **{s: getattr(self, s).stats() for s in ("train", "valid", "test")}}


def split_students(skills: list[np.ndarray], answers: list[np.ndarray], fraction: float, seed: int):
    """Whole students to the second part (``fraction`` of them), chosen with a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(skills))
    n = max(1, round(fraction * len(skills)))
    pick, rest = set(order[:n].tolist()), order[n:]
    first = ([skills[i] for i in sorted(rest)], [answers[i] for i in sorted(rest)])
    second = ([skills[i] for i in sorted(pick)], [answers[i] for i in sorted(pick)])
    return first, second
