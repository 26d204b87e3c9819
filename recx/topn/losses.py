"""Losses and regularisers shared by top-N models (written once; models compose them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recx.errors import ConfigError


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian Personalised Ranking: ``mean(-log σ(s⁺ - s⁻))`` (Rendle et al., 2009), numerically stable."""
    return F.softplus(neg_scores - pos_scores).mean()


#: the regulariser forms a model's ``reg_form`` key accepts (see :func:`l2_penalty`)
REG_FORMS = ("l2", "emb")


def check_reg_form(form: str) -> str:
    """``form`` if it is one of :data:`REG_FORMS`, else a ConfigError naming ``model.reg_form`` (at construction)."""
    if form not in REG_FORMS:
        raise ConfigError(f"unknown regulariser form '{form}'", field="model.reg_form",
                          fix=f"use one of {list(REG_FORMS)} (emb = MMRec's EmbLoss, set by protocol=mmrec)")
    return form


def l2_penalty(*embeddings: torch.Tensor, batch_size: int, form: str = "l2") -> torch.Tensor:
    """The embedding regulariser over the rows used in a batch; multiply by ``reg_weight`` at the call site.

    * ``form="l2"`` (recx's default): ``½ Σ‖e‖² / batch_size``, the LightGCN paper's regulariser, applied to the
      *ego* (layer-0) embeddings looked up for the batch, so the penalty scales with the batch, not the table.
    * ``form="emb"``: MMRec's ``EmbLoss`` (``protocol=mmrec``): the *unsquared* Frobenius norm of each looked-up
      block, summed, divided by the batch size (``Σ‖e‖_F / B``). The same ``reg_weight`` therefore means a different
      penalty in the two forms; MMRec's published ``reg_weight`` grids refer to this one.
    """
    if form == "l2":
        return sum(e.pow(2).sum() for e in embeddings) / (2.0 * batch_size)
    if form == "emb":
        return sum(torch.linalg.vector_norm(e) for e in embeddings) / batch_size
    raise ConfigError(f"unknown regulariser form '{form}'", field="model.reg_form",
                      fix=f"use one of {list(REG_FORMS)} (emb = MMRec's EmbLoss, set by protocol=mmrec)")


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """In-batch InfoNCE: row i of ``anchors`` should match row i of ``positives`` against every other row.

    Cosine similarities divided by ``temperature``; the other rows of the batch are the negatives (SimCLR-style, one
    direction). Used by SLMRec, BM3 variants, AlignRec and DRAGON-style contrastive terms.
    """
    a = F.normalize(anchors, dim=-1)
    p = F.normalize(positives, dim=-1)
    logits = a @ p.T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def negative_cosine(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos(predicted, stop_grad(target)))``: BYOL/BM3's alignment without negatives."""
    return (1.0 - F.cosine_similarity(predicted, target.detach(), dim=-1)).mean()


def gather_triplet(users_all: torch.Tensor, items_all: torch.Tensor,
                   batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch's user, positive-item and negative-item rows of full ``[n, d]`` tables.

    ``index_select`` rather than ``x[idx]``: the latter's backward accumulates repeated indices in a thread-dependent
    order on CPU, which makes identically seeded runs drift apart.
    """
    return (users_all.index_select(0, batch["users"]), items_all.index_select(0, batch["pos"]),
            items_all.index_select(0, batch["neg"]))


def triplet_bpr(u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """BPR of inner-product scores ``⟨u, i⟩`` over ``⟨u, j⟩``."""
    return bpr_loss((u * i).sum(-1), (u * j).sum(-1))


def id_and_preference_bpr(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MMGCN's and GRCN's shared loss: BPR on the propagated vectors + ``reg_weight`` × the L2 of the batch's
    ``[users; items]`` ID rows and of every modality branch's user preference rows.

    Reads ``model.propagate()``, ``model.id_embedding`` (users then items), ``model.branches[m].preference``,
    ``model.modalities``, ``model.n_users`` and ``model.reg_weight``.
    """
    users_all, items_all = model.propagate()
    model.remember_batch_tables(users_all, items_all)  # score_with=last_batch (MMRec's self.result)
    users, pos, neg = batch["users"], batch["pos"], batch["neg"]
    ranking = triplet_bpr(*gather_triplet(users_all, items_all, batch))
    ids = model.id_embedding
    reg = l2_penalty(ids.index_select(0, users), ids.index_select(0, model.n_users + pos),
                     ids.index_select(0, model.n_users + neg),
                     *(model.branches[m].preference.index_select(0, users) for m in model.modalities),
                     batch_size=users.shape[0])
    return ranking + model.reg_weight * reg
