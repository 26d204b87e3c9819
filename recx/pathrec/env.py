"""The learning environment around a frozen DKT, as SRC's official code defines it (research notes §4.1), batched.

* ``begin(targets, initial_logs)``: run DKT over the initial logs from an empty state, **feeding back its own
  predicted probability** as the previous answer at every step (the simulated student's answers are the model's
  beliefs, not samples); then ``E_s = exam(targets)``.
* ``step(path)``: continue from that state over the recommended path, self-fed the same way; returns the per-step
  predicted probabilities (the KT auxiliary targets). Like every call of the official ``PredictModel.learn``, the
  rollout's label slot starts from 0 at the path's first step (the last initial log's probability is not carried
  over). It may be called several times after one ``begin`` (e.g. the sampled and the greedy path of the same
  episode); each call sets ``E_e``.
* ``exam(targets, state)``: for every target concept, **one** DKT step from the given state with that concept and a
  previous answer of 0; no state is carried from one target to the next; the mean over targets.
* ``reward()``: ``E_p = (E_e − E_s) / (E_sup − E_s + 1e-9)`` with ``E_sup = 1``.
* ``episode_rewards(targets, initial_logs, path)``: ``E_p`` of whole episodes without touching the current one (the
  rule baseline scores candidates on fresh episodes).
"""

from __future__ import annotations

import torch

from recx.pathrec.dkt import DKT


class KTEnvironment:
    def __init__(self, dkt: DKT, e_sup: float = 1.0) -> None:
        self.dkt = dkt.eval()
        for p in self.dkt.parameters():
            p.requires_grad_(False)
        self.e_sup = e_sup
        self.targets: torch.Tensor | None = None
        self.state = None
        self.initial_probs: torch.Tensor | None = None
        self.e_start: torch.Tensor | None = None
        self.e_end: torch.Tensor | None = None

    @torch.no_grad()
    def rollout(self, skills: torch.Tensor, state, last: torch.Tensor):
        """Self-fed DKT over ``skills [B, n]``: ``(probs [B, n], state, last prob [B])``."""
        probs = []
        for t in range(skills.shape[1]):
            logits, state = self.dkt(skills[:, t:t + 1], last.unsqueeze(1), state)
            last = torch.sigmoid(logits[:, 0])
            probs.append(last)
        return torch.stack(probs, 1), state, last

    @torch.no_grad()
    def exam(self, targets: torch.Tensor, state) -> torch.Tensor:
        """Mean over targets of P(correct) after one DKT step per target from ``state``: ``[B]``."""
        b, k = targets.shape
        h, c = state
        expanded = (h.repeat_interleave(k, dim=1), c.repeat_interleave(k, dim=1))  # [layers, B*k, H]
        logits, _ = self.dkt(targets.reshape(-1, 1), torch.zeros(b * k, 1), expanded)
        return torch.sigmoid(logits[:, 0]).view(b, k).mean(1)

    def rollout_from_zero_label(self, skills: torch.Tensor, state):
        """``rollout`` with the label slot of the first step at 0, as every official ``learn()`` call starts."""
        return self.rollout(skills, state, torch.zeros(skills.shape[0]))

    def empty_state(self, batch: int):
        hidden = self.dkt.lstm.hidden_size
        return torch.zeros(1, batch, hidden), torch.zeros(1, batch, hidden)

    @torch.no_grad()
    def begin(self, targets: torch.Tensor, initial_logs: torch.Tensor) -> torch.Tensor:
        self.initial_probs, self.state, _ = self.rollout_from_zero_label(initial_logs, self.empty_state(len(targets)))
        self.targets = targets
        self.e_start = self.exam(targets, self.state)
        return self.e_start

    @torch.no_grad()
    def step(self, path: torch.Tensor) -> torch.Tensor:
        probs, state, _ = self.rollout_from_zero_label(path, self.state)
        self.e_end = self.exam(self.targets, state)
        return probs

    def reward(self) -> torch.Tensor:
        return self.learning_effect(self.e_start, self.e_end)

    def learning_effect(self, e_start: torch.Tensor, e_end: torch.Tensor) -> torch.Tensor:
        return (e_end - e_start) / (self.e_sup - e_start + 1e-9)

    @torch.no_grad()
    def episode_rewards(self, targets: torch.Tensor, initial_logs: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        """``E_p [B]`` of the episodes ``(targets, initial_logs)`` under ``path``; the current episode is kept."""
        _, start, _ = self.rollout_from_zero_label(initial_logs, self.empty_state(len(targets)))
        _, end, _ = self.rollout_from_zero_label(path, start)
        return self.learning_effect(self.exam(targets, start), self.exam(targets, end))
