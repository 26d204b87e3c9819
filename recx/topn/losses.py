"""Losses and regularisers shared by top-N models (written once; models compose them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian Personalised Ranking: ``mean(-log σ(s⁺ - s⁻))`` (Rendle et al., 2009), numerically stable."""
    return F.softplus(neg_scores - pos_scores).mean()


def l2_penalty(*embeddings: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``½ Σ‖e‖² / batch_size`` over the embeddings used in a batch (the LightGCN paper's regulariser).

    Applied to the *ego* (layer-0) embeddings looked up for the batch, so the penalty scales with the batch, not the
    table, as in LightGCN and MMRec. Multiply by ``reg_weight`` at the call site.
    """
    return sum(e.pow(2).sum() for e in embeddings) / (2.0 * batch_size)
