"""The learning environment around a frozen DKT, as SRC's official code defines it (research notes §4.1), batched.

* ``begin(targets, initial_logs)``: run DKT over the initial logs from an empty state, **feeding back its own
  predicted probability** as the previous answer at every step (the simulated student's answers are the model's
  beliefs, not samples); then ``E_s = exam(targets)``.
* ``step(path)``: continue from that state over the recommended path, self-fed the same way; returns the per-step
  predicted probabilities (the KT auxiliary targets). It may be called several times after one ``begin`` (e.g. the
  sampled and the greedy path of the same episode); each call sets ``E_e``.
* ``exam(targets, state)``: for every target concept, **one** DKT step from the given state with that concept and a
  previous answer of 0; no state is carried from one target to the next; the mean over targets.
* ``reward()``: ``E_p = (E_e − E_s) / (E_sup − E_s + 1e-9)`` with ``E_sup = 1``.
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
        self.last: torch.Tensor | None = None
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

    @torch.no_grad()
    def begin(self, targets: torch.Tensor, initial_logs: torch.Tensor) -> torch.Tensor:
        b = targets.shape[0]
        hidden = self.dkt.lstm.hidden_size
        state = (torch.zeros(1, b, hidden), torch.zeros(1, b, hidden))
        self.initial_probs, self.state, self.last = self.rollout(initial_logs, state, torch.zeros(b))
        self.targets = targets
        self.e_start = self.exam(targets, self.state)
        return self.e_start

    @torch.no_grad()
    def step(self, path: torch.Tensor) -> torch.Tensor:
        probs, state, _ = self.rollout(path, self.state, self.last)
        self.e_end = self.exam(self.targets, state)
        return probs

    def reward(self) -> torch.Tensor:
        return (self.e_end - self.e_start) / (self.e_sup - self.e_start + 1e-9)
