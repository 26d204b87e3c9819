"""Feed-forward rankers and their losses: ListNet, ListMLE, LambdaRank (labels or naive clicks), IPS-ListNet and
DLA (unbiased learning from clicks). One scoring tower, :class:`~recx.ltr.models.base.DocumentMLP`; the classes
differ only in the loss, so a comparison between them is a comparison between losses.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from recx.ltr.losses import lambdarank_loss, listmle_loss, listnet_loss, masked_log_softmax, softmax_cross_entropy
from recx.ltr.models.base import DocumentMLP, LTRModel


class RandomRanker(LTRModel):
    """The chance baseline: a fixed pseudo-random score per (query batch position, document position) — nothing to
    train. Any model worth its name must beat it on true-label NDCG."""

    learns_from = "either"

    def __init__(self, n_features: int, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def score(self, batch):
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand(batch["mask"].shape, generator=g)

    def loss(self, batch):
        return None


class MLPRanker(LTRModel):
    """A per-document MLP scorer; subclasses choose the loss."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.1) -> None:
        super().__init__()
        self.tower = DocumentMLP(n_features, hidden, 1, dropout)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.tower(batch["features"])


class ListNet(MLPRanker):
    """ListNet (Cao et al., ICML 2007): top-1 cross-entropy. ``target``: ``normalized`` (gain / Σ gain, the softmax
    loss ULTRA trains with) or ``softmax`` (the paper's softmax of the labels). On clicks it is the naive ranker."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.1,
                 target: str = "normalized") -> None:
        super().__init__(n_features, hidden, dropout)
        self.target = target

    def loss(self, batch):
        return listnet_loss(self.score(batch), batch["targets"], batch["mask"], self.target)


class ListMLE(MLPRanker):
    """ListMLE (Xia et al., ICML 2008): Plackett-Luce likelihood of the target-sorted list, ties shuffled."""

    def loss(self, batch):
        return listmle_loss(self.score(batch), batch["targets"], batch["mask"])


class LambdaRank(MLPRanker):
    """LambdaRank (Burges et al., NIPS 2006): ΔNDCG-weighted pairwise logistic loss; ``k`` = NDCG cut-off."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.1,
                 sigma: float = 1.0, k: int | None = 10) -> None:
        super().__init__(n_features, hidden, dropout)
        self.sigma, self.k = sigma, k

    def loss(self, batch):
        return lambdarank_loss(self.score(batch), batch["targets"], batch["mask"], self.sigma, self.k)


class IPSListNet(MLPRanker):
    """Inverse-propensity-scored softmax loss (Joachims et al., WSDM 2017; ULTRA's IPW): each click weighs
    ``e_0 / e_k`` (the top rank's examination over the clicked rank's), capped at ``max_weight``, with the click
    model's propensities (known, as in ULTRA's simulation setting)."""

    learns_from = "clicks"

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.1,
                 max_weight: float | None = None) -> None:
        super().__init__(n_features, hidden, dropout)
        self.max_weight = max_weight

    def loss(self, batch):
        propensity = batch["propensity"].clamp_min(1e-6)
        weights = propensity[:, :1] / propensity
        if self.max_weight:
            weights = weights.clamp_max(self.max_weight)
        return softmax_cross_entropy(self.score(batch), batch["targets"] * weights, batch["mask"])


class DLA(MLPRanker):
    """Dual Learning Algorithm (Ai et al., SIGIR 2018), as in ULTRA: a ranker and a propensity model learned together.

    The propensity model is one logit per display rank. Each side is trained with the softmax loss on clicks,
    re-weighted by the other side's current estimate (stop-gradient): the ranker by ``p_0 / p_k`` (inverse
    propensity), the propensity model by ``r_0 / r_k`` (inverse relevance, from the ranker's softmax). Both weights
    are capped at ``max_weight`` (ULTRA: uncapped, -1). Learned propensities are reported by :meth:`propensities`.

    The ten propensity logits learn with ``propensity_lr`` (ULTRA trains everything with lr 0.05): at the ranker's
    Adam rate (1e-3) they would barely move in a CPU-sized budget, and the ranker would meanwhile fit the position bias.
    """

    learns_from = "clicks"

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.1,
                 max_positions: int = 10, max_weight: float | None = None, propensity_lr: float = 0.05) -> None:
        super().__init__(n_features, hidden, dropout)
        self.propensity_logits = nn.Parameter(torch.zeros(max_positions))
        self.max_weight = max_weight
        self.propensity_lr = propensity_lr

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Parameter groups for the optimiser: the ranker at ``lr``, the propensity logits at ``propensity_lr``."""
        return [{"params": list(self.tower.parameters()), "lr": lr},
                {"params": [self.propensity_logits], "lr": self.propensity_lr}]

    def _cap(self, w: torch.Tensor) -> torch.Tensor:
        return w.clamp_max(self.max_weight) if self.max_weight else w

    def propensities(self) -> torch.Tensor:
        """Estimated examination per rank, relative to rank 0 (1.0 at the top)."""
        p = torch.softmax(self.propensity_logits, 0)
        return (p / p[0]).detach()

    def loss(self, batch):
        mask, clicks = batch["mask"], batch["targets"]
        positions = batch["positions"].clamp_max(self.propensity_logits.numel() - 1)
        relevance_logits = self.score(batch)
        propensity_logits = self.propensity_logits[positions]
        with torch.no_grad():
            p = masked_log_softmax(propensity_logits, mask).exp()
            r = masked_log_softmax(relevance_logits, mask).exp()
            top = positions == 0
            p0 = (p * top).sum(-1, keepdim=True).clamp_min(1e-9)
            ipw = self._cap(p0 / p.clamp_min(1e-9))
            r0 = (r * top).sum(-1, keepdim=True).clamp_min(1e-9)
            irw = self._cap(r0 / r.clamp_min(1e-9))
        ranker = softmax_cross_entropy(relevance_logits, clicks * ipw, mask)
        examiner = softmax_cross_entropy(propensity_logits, clicks * irw, mask)
        return ranker + examiner
