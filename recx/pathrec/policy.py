"""SRC (Chen et al., AAAI 2023, arXiv 2306.04234): set-to-sequence learning-path recommendation, and the baselines.

SRC, as the official code builds it (research notes §4.2):

* targets ``tgt = W_t · mean_k Emb(T_k)``; the initial logs ``[Emb(h_i); y_i]`` (``y_i`` = the simulator's predicted
  answers) run through an LSTM whose final state starts the decoder;
* the candidate set is read by a one-head, one-block self-attention encoder (no positional encoding) with a residual:
  ``Enc = Attn(X) + X``, ``X = Emb(S)``;
* decoding ``n`` steps: ``h_t = LSTMCell(d_{t−1})``, ``u_tj = vᵀ tanh(W_1 (Enc_j + mean(Enc) + tgt) + W_2 h_t)``
  (the code has no tanh), picked candidates masked (no repeats), ``a_t`` sampled in training and argmax in evaluation,
  ``d_t = Enc[a_t]``;
* REINFORCE on the episode reward ``E_p``: ``−(R − b) Σ_t log π_t(a_t)``, with the baseline ``b`` = none (the public
  code), a moving average of rewards, or the reward of the greedy path (self-critical);
* the knowledge-tracing auxiliary loss the paper describes (computed but not wired into the official training
  loop): a head predicts the simulator's probability of answering each chosen concept correctly (BCE against the
  environment's per-step predictions), weight ``kt_weight`` when ``with_kt``. As in the official ``SRC.construct``,
  the head reads the decoder state **after** it has consumed the chosen concept (``h_{t+1} = LSTMCell(Enc[a_t])``;
  one extra decoder step for the last concept), so the prediction for ``a_t`` sees ``a_t``.

Baselines: :class:`RandomPath` (a random order of the candidates), :class:`RulePath` (``testRule.py``: candidates
ranked ascending by their one-step reward on fresh random episodes, best last), :class:`GRUPath` (a GRU next-concept
model trained on real student sequences, decoded greedily among the candidates).
"""

from __future__ import annotations

import torch
from torch import nn

NEG = -1e9


class SRCPolicy(nn.Module):
    def __init__(self, n_skills: int, embed: int = 48, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_skills + 1, embed, padding_idx=0)
        self.target_proj = nn.Linear(embed, embed)
        self.log_encoder = nn.LSTM(embed + 1, hidden, batch_first=True)
        self.attention = nn.MultiheadAttention(embed, 1, dropout=dropout, batch_first=True)
        self.cell = nn.LSTMCell(embed, hidden)
        self.w_candidates = nn.Linear(embed, hidden, bias=False)
        self.w_state = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.kt_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def encode(self, targets, initial, initial_answers, candidates):
        x = self.embedding(candidates)
        enc = self.attention(x, x, x, need_weights=False)[0] + x
        tgt = self.target_proj(self.embedding(targets).mean(1))
        keys = self.w_candidates(enc + enc.mean(1, keepdim=True) + tgt.unsqueeze(1))
        _, (h, c) = self.log_encoder(torch.cat([self.embedding(initial), initial_answers.unsqueeze(-1)], -1))
        return enc, keys, (h[0], c[0])

    def forward(self, targets, initial, initial_answers, candidates, length: int, mode: str = "sample",
                actions: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """``(actions [B, n] candidate indices, log_probs [B, n], kt_logits [B, n])``; ``kt_logits[:, t]`` predicts the
        answer to the concept chosen at ``t`` from the decoder state that has consumed it.

        ``mode``: ``sample`` | ``greedy``; with ``actions`` given, their log-probabilities (teacher-forced).
        """
        enc, keys, (h, c) = self.encode(targets, initial, initial_answers, candidates)
        b = candidates.shape[0]
        rows = torch.arange(b)
        available = torch.ones(candidates.shape, dtype=torch.bool)
        previous = enc.new_zeros(b, enc.shape[2])
        chosen, log_probs, kt = [], [], []
        for t in range(length):
            h, c = self.cell(previous, (h, c))
            if t > 0:  # the state after consuming the concept chosen at t − 1: its KT prediction
                kt.append(self.kt_head(h).squeeze(-1))
            u = self.v(torch.tanh(keys + self.w_state(h).unsqueeze(1))).squeeze(-1).masked_fill(~available, NEG)
            log_p = torch.log_softmax(u, -1)
            if actions is not None:
                a = actions[:, t]
            elif mode == "greedy":
                a = log_p.argmax(-1)
            else:
                a = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(-1)
            chosen.append(a)
            log_probs.append(log_p[rows, a])
            available = available.clone()
            available[rows, a] = False
            previous = enc[rows, a]
        if length:  # one more decoder step consumes the last chosen concept (the official head does the same)
            kt.append(self.kt_head(self.cell(previous, (h, c))[0]).squeeze(-1))
        return torch.stack(chosen, 1), torch.stack(log_probs, 1), torch.stack(kt, 1)


class RandomPath:
    """A random order of the candidates, the first ``length`` of them."""

    def __call__(self, candidates: torch.Tensor, length: int, generator: torch.Generator, **_) -> torch.Tensor:
        order = torch.rand(candidates.shape, generator=generator).argsort(1)[:, :length]
        return candidates.gather(1, order)


class RulePath:
    """The rule baseline of the official ``testRule.py``: every candidate is scored by the reward ``E_p`` of a
    one-concept path on a **fresh random episode** of its own (``n_targets`` random targets, ``n_initial`` random
    initial logs — not the episode being planned); the candidates are sorted ascending by that score and the last
    ``length`` kept, so the best-scored concept comes **last** (nearest the exam)."""

    def __init__(self, n_skills: int, n_targets: int = 3, n_initial: int = 10) -> None:
        self.n_skills, self.n_targets, self.n_initial = n_skills, n_targets, n_initial

    def __call__(self, candidates: torch.Tensor, length: int, env, generator: torch.Generator, **_) -> torch.Tensor:
        from recx.pathrec.episodes import official_episodes

        b, s = candidates.shape
        targets, initial = official_episodes(b * s, self.n_skills, self.n_targets, self.n_initial, generator)
        scores = env.episode_rewards(targets, initial, candidates.reshape(-1, 1)).view(b, s)
        order = scores.argsort(1)[:, s - length:]  # ascending: the best-scored concept last
        return candidates.gather(1, order)


class GRUNextConcept(nn.Module):
    """GRU4Rec-style next-concept model: trained with cross-entropy to predict a student's next concept."""

    def __init__(self, n_skills: int, embed: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_skills + 1, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_skills + 1)

    def forward(self, skills: torch.Tensor, state=None):
        out, state = self.gru(self.embedding(skills), state)
        return self.out(out), state


def train_gru(model: GRUNextConcept, sequences, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
              seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for index in torch.randperm(len(sequences), generator=generator).split(batch_size):
            part = sequences.subset(index)
            logits, _ = model(part.skills[:, :-1])
            mask = part.mask[:, 1:]
            loss = nn.functional.cross_entropy(logits[mask], part.skills[:, 1:][mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item(), count + 1
        losses.append(total / max(count, 1))
    return losses


class GRUPath:
    """Greedy decoding of a :class:`GRUNextConcept` among the candidates (no repeats), after the initial logs."""

    def __init__(self, model: GRUNextConcept) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def __call__(self, candidates: torch.Tensor, length: int, initial: torch.Tensor, **_) -> torch.Tensor:
        logits, state = self.model(initial)
        last = logits[:, -1]
        rows = torch.arange(candidates.shape[0])
        available = torch.ones(candidates.shape, dtype=torch.bool)
        path = []
        for _ in range(length):
            scores = last.gather(1, candidates).masked_fill(~available, NEG)
            pick = scores.argmax(1)
            concept = candidates[rows, pick]
            path.append(concept)
            available[rows, pick] = False
            logits, state = self.model(concept.unsqueeze(1), state)
            last = logits[:, -1]
        return torch.stack(path, 1)
