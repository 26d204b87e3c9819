"""InfoRank-style unbiased ranking from clicks (after Jin et al., WWW 2024, arXiv 2401.12553) — a reconstruction.

No public code exists; the abstract fixes three things, which this model implements:

1. **Examination factorisation**: ``P(c = 1 | x, k) = σ(o) · σ(r)``, with one *observation* logit ``o`` that absorbs
   both position bias and popularity bias, and one *relevance* logit ``r`` from the user–item (query–document)
   features. Trained with BCE on clicks; documents are ranked by ``r``.
2. **A shared attention encoder** over the slate's features (``SlateAttention``): each document's representation
   sees the others, the "latent correlations within user-item features".
3. **A conditional-mutual-information penalty** ``λ · I(ô; r̂ | x)`` so the relevance estimate carries no
   information about observation once the context is known.

Our choices (not the paper's, which are not public):

* the observation tower sees the display rank (one-hot) and the document's popularity (when the dataset names a
  popularity feature) — plus, with ``observation_sees_features``, the encoded document;
* the estimator is **CLUB** (Cheng et al., ICML 2020), a variational *upper* bound: a Gaussian ``q_φ(r̂ | ô)`` is fit by
  maximum likelihood on the batch's (ô, r̂) pairs (detached, its own loss term), and
  ``Î = E_joint[log q(r̂|ô)] − E_shuffled[log q(r̂|ô')]`` with ``ô'`` taken from *another document of the same query*.
  Shuffling within the query is how we condition on ``x`` (the query context): the bound measures the dependence
  between ô and r̂ that remains among documents sharing that context.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from recx.ltr.models.base import DocumentMLP, LTRModel, SlateAttention


class GaussianCritic(nn.Module):
    """``q(r̂ | ô) = N(μ(ô), σ²(ô))``: CLUB's variational conditional, a small MLP on the scalar ``ô``."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def log_likelihood(self, o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        mu, log_var = self.net(o.unsqueeze(-1)).unbind(-1)
        log_var = log_var.clamp(-6.0, 6.0)
        return -0.5 * ((r - mu) ** 2 / log_var.exp() + log_var)


def shuffle_within_query(values: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
    """Each real document gets the value of a random real document of the same query (padding keeps its own)."""
    noise = torch.rand(values.shape, generator=generator, device="cpu").to(values.device)
    noise = noise.masked_fill(~mask, 2.0)  # padded entries sort last
    perm = noise.argsort(dim=-1)  # a random order of the real documents, padding after
    n_real = mask.sum(-1, keepdim=True).clamp_min(1)
    # document j takes the value at a random real slot: perm[(rank_j + 1) mod n_real] is a derangement-like shift
    ranks = torch.empty_like(perm)
    ranks.scatter_(1, perm, torch.arange(values.shape[1], device=values.device).expand_as(perm))
    partner = perm.gather(1, (ranks + 1) % n_real)
    shuffled = values.gather(1, partner)
    return torch.where(mask, shuffled, values)


def standardise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(x − mean) / std`` over the batch's real documents."""
    real = x[mask]
    return (x - real.mean()) / real.std().clamp_min(1e-6) if real.numel() > 1 else x - x.detach()


class InfoRank(LTRModel):
    learns_from = "clicks"

    def __init__(self, n_features: int, dim: int = 64, hidden: Sequence[int] = (128,), dropout: float = 0.1,
                 heads: int = 2, attention_layers: int = 1, max_positions: int = 10, cmi_weight: float = 0.1,
                 observation_sees_features: bool = False, use_popularity: bool = True) -> None:
        super().__init__()
        self.embed = DocumentMLP(n_features, hidden, dim, dropout)
        self.encoder = SlateAttention(dim, heads, attention_layers, dropout)
        self.relevance = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        extra = dim if observation_sees_features else 0
        self.observation = nn.Sequential(nn.Linear(max_positions + 1 + extra, dim), nn.ReLU(), nn.Linear(dim, 1))
        self.critic = GaussianCritic()
        self.max_positions, self.cmi_weight = max_positions, cmi_weight
        self.observation_sees_features, self.use_popularity = observation_sees_features, use_popularity

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(self.embed(batch["features"]), batch["mask"])

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.relevance(self.encode(batch)).squeeze(-1)

    def observation_logits(self, batch: dict[str, torch.Tensor], encoded: torch.Tensor) -> torch.Tensor:
        positions = batch["positions"].clamp_max(self.max_positions - 1)
        parts = [nn.functional.one_hot(positions, self.max_positions).float()]
        popularity = batch.get("popularity") if self.use_popularity else None
        parts.append((popularity if popularity is not None else torch.zeros_like(positions, dtype=torch.float))
                     .unsqueeze(-1))
        if self.observation_sees_features:
            parts.append(encoded)
        return self.observation(torch.cat(parts, -1)).squeeze(-1)

    def terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss's parts: click BCE, the CLUB estimate of I(ô; r̂ | x), and the critic's own fitting loss."""
        mask = batch["mask"]
        encoded = self.encode(batch)
        r = self.relevance(encoded).squeeze(-1)
        o = self.observation_logits(batch, encoded)
        log_p_click = nn.functional.logsigmoid(o) + nn.functional.logsigmoid(r)
        # log(1 - σ(o)σ(r)) computed stably from log p
        log_p_none = torch.log1p(-log_p_click.exp().clamp_max(1 - 1e-6))
        clicks = batch["targets"]
        bce = -((clicks * log_p_click + (1 - clicks) * log_p_none) * mask).sum() / mask.sum().clamp_min(1)
        real = mask.float()
        n = real.sum().clamp_min(1)
        # the critic reads standardised logits: the towers cannot shrink the bound by rescaling their outputs
        o_std, r_std = standardise(o, mask), standardise(r, mask)
        critic_fit = -(self.critic.log_likelihood(o_std.detach(), r_std.detach()) * real).sum() / n
        for p in self.critic.parameters():
            p.requires_grad_(False)  # the bound's gradient goes to the towers only
        joint = self.critic.log_likelihood(o_std, r_std)
        marginal = self.critic.log_likelihood(shuffle_within_query(o_std, mask), r_std)
        for p in self.critic.parameters():
            p.requires_grad_(True)
        # mutual information is >= 0: a negative estimate only means the critic lags, and carries no signal
        cmi = torch.relu(((joint - marginal) * real).sum() / n)
        return {"bce": bce, "cmi": cmi, "critic": critic_fit}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        t = self.terms(batch)
        return t["bce"] + self.cmi_weight * t["cmi"] + t["critic"]
