"""Small neural building blocks shared by the multimodal top-N models."""

from __future__ import annotations

import torch
from torch import nn

from recx.errors import ConfigError


class Projector(nn.Module):
    """Maps a modality's raw features to the model's embedding space: Linear, or a 2-layer MLP with ``hidden``.

    MMRec models use a single Linear layer (VBPR, FREEDOM, BM3, LATTICE) or ``Linear → LeakyReLU → Linear`` (MMGCN,
    GRCN, DualGNN); ``hidden`` selects the second form.

    ``init``: ``xavier_normal`` (recx: Xavier-normal weights, zero biases) or ``torch`` (``nn.Linear``'s own
    initialisation, Kaiming-uniform weights and ``U(±1/√fan_in)`` biases, which MMRec's LATTICE keeps).
    """

    INITS = ("xavier_normal", "torch")

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.0,
                 activation: str = "leaky_relu", init: str = "xavier_normal") -> None:
        super().__init__()
        if init not in self.INITS:
            raise ConfigError(f"unknown projection init '{init}'", field="model.projection_init",
                              fix=f"use one of {list(self.INITS)}")
        act = {"leaky_relu": nn.LeakyReLU(), "relu": nn.ReLU(), "tanh": nn.Tanh()}[activation]
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden:
            layers += [nn.Linear(in_dim, hidden), act, nn.Linear(hidden, out_dim)]
        else:
            layers += [nn.Linear(in_dim, out_dim)]
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if init == "xavier_normal" and isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
