"""Generated student sequences from a planted skill-mastery model (fast tests, no download).

Skills ``1..K`` have difficulties; a student has an ability; every practice of skill ``k`` raises the student's
mastery of ``k`` (``gain``) and, less, of the next skill in a prerequisite chain (``transfer``). An answer is correct with
probability ``σ(ability + mastery_k − difficulty_k)``. Students practise skills in runs (a skill is repeated a few
times, then the next is drawn near the previous one), as in ASSISTments' skill builders. What a knowledge-tracing
model can learn: skill difficulty, student ability (from earlier answers) and the effect of practice.
"""

from __future__ import annotations

import numpy as np


def generate_students(n_students: int = 400, n_skills: int = 20, length: tuple[int, int] = (30, 80),
                      gain: float = 0.35, transfer: float = 0.15, seed: int = 0):
    """``(skills per student, answers per student)``, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.0, n_skills)
    skills_out, answers_out = [], []
    for _ in range(n_students):
        ability = rng.normal(0.0, 1.0)
        mastery = np.zeros(n_skills)
        n = int(rng.integers(length[0], length[1] + 1))
        skill = int(rng.integers(n_skills))
        seq_s, seq_a = [], []
        while len(seq_s) < n:
            for _ in range(int(rng.integers(2, 6))):
                p = 1.0 / (1.0 + np.exp(-(ability + mastery[skill] - difficulty[skill])))
                seq_s.append(skill + 1)
                seq_a.append(float(rng.random() < p))
                mastery[skill] += gain
                mastery[(skill + 1) % n_skills] += transfer
            skill = int(np.clip(skill + rng.integers(-2, 4), 0, n_skills - 1))
        skills_out.append(np.array(seq_s[:n], dtype=np.int64))
        answers_out.append(np.array(seq_a[:n], dtype=np.float32))
    return skills_out, answers_out
