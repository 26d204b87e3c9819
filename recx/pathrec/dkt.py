"""DKT (Piech et al., NeurIPS 2015) as SRC's simulator: ``x_t = [Emb(q_t); y_{t−1}]`` → LSTM → MLP → ``P(y_t = 1)``.

The official SRC simulator (``KTScripts/PredictModel.py``) feeds the concept of step ``t`` with the answer of step
``t − 1`` and predicts the answer of step ``t``; its MLP head uses BatchNorm, replaced here by plain ReLU layers with
dropout (a batch statistic has no meaning in the environment's one-step rollouts). Trained with BCE on next-answer
correctness over the training students, early-stopped on validation AUC (the LightningModule is
:class:`recx.pathrec.family.DKTModule`); frozen afterwards.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from recx.metrics.classification import binary_accuracy, binary_auc
from recx.pathrec.data import KTSequences


class DKT(nn.Module):
    def __init__(self, n_skills: int, embed: int = 128, hidden: int = 128, mlp: Sequence[int] = (256, 64, 16),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.n_skills = n_skills
        self.embedding = nn.Embedding(n_skills + 1, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed + 1, hidden, batch_first=True)
        layers: list[nn.Module] = []
        width = hidden
        for h in mlp:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, skills: torch.Tensor, previous: torch.Tensor, state=None):
        """``logits [B, T]`` of answering each ``skills[:, t]`` correctly, given ``previous[:, t]`` = the answer (or
        predicted probability) of step ``t − 1``; and the LSTM state after the last step."""
        x = torch.cat([self.embedding(skills), previous.unsqueeze(-1)], -1)
        out, state = self.lstm(x, state)
        return self.head(out).squeeze(-1), state


def shifted_answers(answers: torch.Tensor) -> torch.Tensor:
    """``y_{t−1}`` for every step (0 before the first)."""
    return torch.cat([answers.new_zeros(answers.shape[0], 1), answers[:, :-1]], 1)


@torch.no_grad()
def evaluate_dkt(model: DKT, data: KTSequences, batch_size: int = 256) -> dict[str, float]:
    """AUC and accuracy over every real interaction of ``data`` (on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for start in range(0, len(data), batch_size):
        part = data.subset(torch.arange(start, min(start + batch_size, len(data))))
        answers, mask = part.answers.to(device), part.mask.to(device)
        logits, _ = model(part.skills.to(device), shifted_answers(answers))
        probs.append(torch.sigmoid(logits)[mask].cpu())
        labels.append(answers[mask].cpu())
    p, y = torch.cat(probs), torch.cat(labels)
    return {"auc": binary_auc(p, y), "accuracy": binary_accuracy(p, y), "interactions": int(y.numel())}
