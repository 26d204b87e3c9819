"""List-wise ranking losses on padded slates, vectorised over queries (no Python loop over queries or documents).

Shapes: ``scores [B, L]``, ``targets [B, L]`` (graded labels or clicks), ``mask [B, L]`` bool (True = a real
document). Every loss ignores padded documents and returns the mean over the queries that carry signal.
"""

from __future__ import annotations

import torch

NEG_INF = -1e30  # finite: a true -inf makes 0·(-inf) = nan in masked sums


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the real documents of each slate (padded entries come out as a large negative number)."""
    return torch.log_softmax(scores.masked_fill(~mask, NEG_INF), dim=-1)


def plackett_luce_nll(scores: torch.Tensor, order: torch.Tensor, mask: torch.Tensor,
                      top_k: int | None = None) -> torch.Tensor:
    """Negative Plackett-Luce log-likelihood of the permutation ``order`` per query ``[B]``.

    ``order [B, L]``: document indices, best first, with every padded document after the real ones. The PL
    probability factorises stage-wise: ``P(π) = Π_t exp(s_{π_t}) / Σ_{u ≥ t} exp(s_{π_u})``, so with the scores
    gathered in ``π`` order the denominators are a reversed cumulative logsumexp — one pass, no loop over stages.
    ``top_k`` keeps the first ``k`` stages: the likelihood of the top-k prefix (itself a PL likelihood).
    """
    ordered = scores.gather(1, order)
    real = mask.gather(1, order)
    ordered = ordered.masked_fill(~real, NEG_INF)
    log_denominators = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    stage = (log_denominators - ordered) * real
    if top_k is not None:
        stage = stage[:, :top_k]
    return stage.sum(-1)


def ideal_order(targets: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Documents sorted by target, best first, ties in random order (ListMLE's convention), padding last."""
    noise = torch.rand(targets.shape, generator=generator, device="cpu").to(targets.device)
    key = targets.float() + 0.5 * noise  # targets are integers (labels, clicks): noise only reorders ties
    key = key.masked_fill(~mask, float("-inf"))
    return key.argsort(dim=-1, descending=True, stable=True)


def listmle_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                 generator: torch.Generator | None = None, top_k: int | None = None) -> torch.Tensor:
    """ListMLE (Xia et al., 2008): PL likelihood of a target-sorted permutation, ties shuffled; mean over queries."""
    return plackett_luce_nll(scores, ideal_order(targets, mask, generator), mask, top_k).mean()


def softmax_cross_entropy(scores: torch.Tensor, target_weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ_q Σ_j w_qj · (−log softmax(s_q)_j) / Σ_q Σ_j w_qj``: the list-wise softmax loss.

    With ``w`` = clicks this is ULTRA's softmax loss; with ``w`` = clicks / propensity it is its IPW estimator;
    normalising by the total weight keeps the step size independent of how many clicks a batch holds.
    """
    w = target_weights * mask
    total = w.sum()
    if total <= 0:
        return scores.sum() * 0.0
    return -(w * masked_log_softmax(scores, mask)).sum() / total


def listnet_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                 target: str = "normalized") -> torch.Tensor:
    """ListNet (Cao et al., 2007): cross-entropy between a target top-1 distribution and ``softmax(scores)``.

    ``target="softmax"``: the paper's ``softmax(targets)``; ``"normalized"``: ``gain / Σ gain`` with gain ``2^r − 1``
    for graded labels (0/1 clicks are their own gain) — zero-gain queries carry no signal and are skipped.
    """
    log_p = masked_log_softmax(scores, mask)
    if target == "softmax":
        q = torch.softmax(targets.float().masked_fill(~mask, NEG_INF), dim=-1)
        return -(q * log_p * mask).sum(-1).mean()
    gain = (torch.pow(2.0, targets.float()) - 1.0) * mask
    totals = gain.sum(-1, keepdim=True)
    useful = totals.squeeze(-1) > 0
    if not useful.any():
        return scores.sum() * 0.0
    q = gain / totals.clamp_min(1e-12)
    return -(q * log_p).sum(-1)[useful].mean()


def lambdarank_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, sigma: float = 1.0,
                    k: int | None = None) -> torch.Tensor:
    """LambdaRank (Burges et al., 2006) as a loss: pairwise logistic loss weighted by ``|ΔNDCG|``.

    For every pair with ``t_i > t_j``: ``|ΔNDCG@k(i↔j)| · log(1 + exp(−σ(s_i − s_j)))``, with ΔNDCG the change in
    NDCG from swapping the two documents in the current ranking (gain ``2^t − 1``). The gradient of this loss is the
    LambdaRank lambda. ``[B, L, L]`` pairs per batch: callers cap the slate length.
    """
    t = targets.float()
    n = scores.shape[1]
    order = scores.detach().masked_fill(~mask, float("-inf")).argsort(dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=scores.device).expand_as(order))
    discount = 1.0 / torch.log2(ranks.float() + 2.0)
    if k is not None:
        discount = discount * (ranks < k)
    gain = (torch.pow(2.0, t) - 1.0) * mask
    ideal_gain = gain.sort(dim=-1, descending=True).values
    ideal_discount = 1.0 / torch.log2(torch.arange(n, device=scores.device, dtype=torch.float) + 2.0)
    if k is not None:
        ideal_discount = ideal_discount * (torch.arange(n, device=scores.device) < k)
    idcg = (ideal_gain * ideal_discount).sum(-1).clamp_min(1e-12)
    delta = ((gain.unsqueeze(2) - gain.unsqueeze(1)) * (discount.unsqueeze(2) - discount.unsqueeze(1))).abs()
    delta = delta / idcg.view(-1, 1, 1)
    pairs = (t.unsqueeze(2) > t.unsqueeze(1)) & mask.unsqueeze(2) & mask.unsqueeze(1)
    margin = sigma * (scores.unsqueeze(2) - scores.unsqueeze(1))
    loss = torch.nn.functional.softplus(-margin) * delta * pairs
    return loss.sum() / scores.shape[0]
