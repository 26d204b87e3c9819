"""DKT (Piech et al., NeurIPS 2015) as SRC's simulator: ``x_t = [Emb(q_t); y_{t−1}]`` → LSTM → MLP → ``P(y_t = 1)``.

The official SRC simulator (``KTScripts/PredictModel.py``) feeds the concept of step ``t`` with the answer of step
``t − 1`` and predicts the answer of step ``t``; its MLP head uses BatchNorm, replaced here by plain ReLU layers with
dropout (a batch statistic has no meaning in the environment's one-step rollouts). Trained with BCE on next-answer
correctness over the training students, early-stopped on validation AUC; frozen afterwards.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

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


def train_dkt(model: DKT, train: KTSequences, valid: KTSequences, epochs: int = 30, batch_size: int = 128,
              lr: float = 1e-3, weight_decay: float = 1e-4, patience: int = 5, seed: int = 0,
              log: Callable[[str], None] = print) -> dict:
    """BCE on next-answer correctness (on the model's device); keeps the weights of the best validation AUC.
    Returns the training history."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    best, best_state, history, waited = -1.0, None, [], 0
    for epoch in range(epochs):
        tic = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for index in torch.randperm(len(train), generator=generator).split(batch_size):
            part = train.subset(index)
            answers, mask = part.answers.to(device), part.mask.to(device)
            logits, _ = model(part.skills.to(device), shifted_answers(answers))
            loss = nn.functional.binary_cross_entropy_with_logits(logits[mask], answers[mask])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 20.0)
            opt.step()
            total, count = total + loss.item() * int(mask.sum()), count + int(mask.sum())
        scores = evaluate_dkt(model, valid)
        history.append({"epoch": epoch, "loss": total / max(count, 1), "valid_auc": scores["auc"],
                        "seconds": round(time.perf_counter() - tic, 2)})
        log(f"epoch {epoch:3d} | loss {total / max(count, 1):.4f} | val/auc {scores['auc']:.4f} | "
            f"{time.perf_counter() - tic:.1f}s")
        if scores["auc"] > best:
            best, waited = scores["auc"], 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_valid_auc": best, "best_epoch": max(history, key=lambda h: h["valid_auc"])["epoch"]}
