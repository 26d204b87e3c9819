"""HeartLang's networks (Jin et al., ICLR 2025; research notes §1.4–1.7), written for recx.

* :class:`ECGFormer` (the paper's ST-ECGFormer): token embedding by a 3-wide circular ``Conv1d`` **along the token
  axis** (each word mixes a beat with its neighbours, as in the public code), + lead (spatial) and time (temporal)
  embeddings, a CLS token, learned positions, a pre-LN transformer, a final LayerNorm. The transformer is the
  public code's: attention with ``qkv`` without bias and an inner width of ``heads × dim_head`` (``dim_head`` = 64 at
  the paper size; ``model/size=tiny`` scales it to 16 like its other widths), an MLP ``LN–Linear–GELU–Linear``
  with dropout after each, residuals around both; the token convolution is Kaiming-initialised as there.
  **Deliberate difference**:
  padding tokens are masked out of attention (a key mask); the public code attends to them.
* :class:`VQHBR`: encoder → ``Linear–Tanh–Linear`` → ``z / ‖z‖``; nearest code of an l2-normalised **EMA codebook**
  (k-means init, cosine, on the first batch; decay 0.99; unused codes keep their value); straight-through estimator;
  decoder → ``Linear–Tanh–Linear`` → the 96-sample beat. Loss ``MSE(x̂, x) + β·MSE(sg(z_q), z)`` on real tokens only;
  no codebook loss (EMA only). :meth:`VQHBR.codes` gives the ECG "words".
* :class:`HeartLang`: the backbone with a mask token on 50 % of the **real** tokens and a linear head predicting the
  quantizer's code at each masked position (cross-entropy). **Deliberate difference**: padding is never masked or
  predicted (the public code masks uniformly over all 256 positions and predicts the zero-beat's code there).
* :class:`LinearProbe`: the frozen backbone's CLS vector → ``Linear(d, C)``, BCE multi-label.

Sizes are configs (``conf/model/size/{paper,tiny}.yaml``): paper = 768 wide, VQ encoder 4 / decoder 2 layers,
HeartLang 12 layers, codebook 8192 × 128; tiny = CPU tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Pre-LN multi-head self-attention as in the public ST-ECGFormer: ``qkv`` **without bias**, an inner width of
    ``heads × dim_head`` (64 per head, not the model width divided by the heads), softmax(QKᵀ/√dim_head) with dropout
    on the weights, and an output projection back to the model width (none when one head is as wide as the model)."""

    def __init__(self, dim: int, heads: int, dim_head: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Identity() if heads == 1 and dim_head == dim else nn.Sequential(nn.Linear(inner, dim),
                                                                                        nn.Dropout(dropout))
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, N, dim]``; ``keep [B, N]`` bool: the keys that may be attended to (padding excluded)."""
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        mask = None if keep is None else keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))


class FeedForward(nn.Sequential):
    """Pre-LN MLP: LayerNorm → Linear → GELU → Dropout → Linear → Dropout (the public code's order)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim), nn.Dropout(dropout))


class Transformer(nn.Module):
    """``depth`` residual blocks ``x + attention(x)`` then ``x + mlp(x)``."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([Attention(dim, heads, dim_head, dropout),
                                                   FeedForward(dim, mlp, dropout)]) for _ in range(depth))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        for attention, mlp in self.layers:
            x = x + attention(x, keep)
            x = x + mlp(x)
        return x


class ECGFormer(nn.Module):
    def __init__(self, in_dim: int = 96, dim: int = 768, depth: int = 12, heads: int = 8, mlp: int = 1024,
                 dropout: float = 0.1, max_len: int = 256, n_leads: int = 16, n_times: int = 16,
                 dim_head: int = 64) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.embed.weight, mode="fan_in", nonlinearity="leaky_relu")  # as the public code
        self.leads = nn.Embedding(n_leads, dim)
        self.times = nn.Embedding(n_times, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.zeros(1, max_len + 1, dim))
        nn.init.trunc_normal_(self.positions, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.encoder = Transformer(dim, depth, heads, dim_head, mlp, dropout)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dim = dim

    def forward(self, tokens: torch.Tensor, leads: torch.Tensor, times: torch.Tensor, mask: torch.Tensor,
                replace: torch.Tensor | None = None, replacement: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, 1 + L, dim]`` (CLS first). ``replace [B, L]`` marks tokens whose embedding becomes ``replacement``
        (HeartLang's mask token)."""
        x = self.embed(tokens.transpose(1, 2)).transpose(1, 2)
        if replace is not None:
            x = torch.where(replace.unsqueeze(-1), replacement.to(x.dtype), x)
        x = x + self.leads(leads.clamp_max(self.leads.num_embeddings - 1)) + \
            self.times(times.clamp_max(self.times.num_embeddings - 1))
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.positions[:, : x.shape[1] + 1]
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        return self.norm(self.encoder(self.dropout(x), keep))


def l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


class EMACodebook(nn.Module):
    """l2-normalised codes updated by an exponential moving average of their assigned vectors (no gradient)."""

    def __init__(self, n_codes: int, dim: int, decay: float = 0.99, kmeans_iters: int = 10) -> None:
        super().__init__()
        self.register_buffer("codes", l2norm(torch.randn(n_codes, dim)))
        self.register_buffer("initialised", torch.tensor(False))
        self.decay, self.kmeans_iters = decay, kmeans_iters

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor) -> None:
        """Spherical k-means (cosine) on the first batch's vectors; too few vectors → sampled with replacement."""
        n = self.codes.shape[0]
        g = torch.Generator(device="cpu").manual_seed(0)
        pick = torch.randint(0, z.shape[0], (n,), generator=g).to(z.device)
        centres = z[pick].clone()
        for _ in range(self.kmeans_iters):
            assign = (z @ centres.T).argmax(1)
            sums = torch.zeros_like(centres).index_add_(0, assign, z)
            counts = torch.bincount(assign, minlength=n).unsqueeze(1)
            centres = torch.where(counts > 0, l2norm(sums), centres)
        self.codes.copy_(centres)
        self.initialised.fill_(True)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.codes.T).argmax(-1)  # unit vectors: max cosine = min distance

    @torch.no_grad()
    def update(self, z: torch.Tensor, index: torch.Tensor) -> None:
        sums = torch.zeros_like(self.codes).index_add_(0, index, z)
        counts = torch.bincount(index, minlength=self.codes.shape[0]).unsqueeze(1)
        used = counts.squeeze(1) > 0
        target = l2norm(sums[used] / counts[used])
        self.codes[used] = l2norm(self.decay * self.codes[used] + (1 - self.decay) * target)


class VQHBR(nn.Module):
    def __init__(self, token_len: int = 96, dim: int = 768, encoder_depth: int = 4, decoder_depth: int = 2,
                 heads: int = 2, mlp: int = 2048, n_codes: int = 8192, code_dim: int = 128, beta: float = 1.0,
                 max_len: int = 256, dropout: float = 0.0, dim_head: int = 64) -> None:
        super().__init__()
        self.encoder = ECGFormer(token_len, dim, encoder_depth, heads, mlp, dropout, max_len, dim_head=dim_head)
        self.to_code = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, code_dim))
        self.codebook = EMACodebook(n_codes, code_dim)
        self.decoder = ECGFormer(code_dim, dim, decoder_depth, heads, mlp, dropout, max_len, dim_head=dim_head)
        self.to_beat = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, token_len))
        self.beta = beta

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.encoder(batch["tokens"], batch["leads"], batch["times"], batch["mask"])[:, 1:]
        return l2norm(self.to_code(h))

    @torch.no_grad()
    def codes(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The ECG word of every token ``[B, L]`` (padding positions: -1)."""
        index = self.codebook.nearest(self.encode(batch))
        return index.masked_fill(~batch["mask"], -1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = batch["mask"]
        z = self.encode(batch)
        real = z[mask]
        if self.training and not bool(self.codebook.initialised):
            self.codebook.kmeans_init(real.detach())
        index = self.codebook.nearest(z)
        z_q = self.codebook.codes[index]
        if self.training:
            self.codebook.update(real.detach(), index[mask])
        z_st = z + (z_q - z).detach()  # straight-through
        recon = self.to_beat(self.decoder(z_st, batch["leads"], batch["times"], mask)[:, 1:])
        rec_loss = F.mse_loss(recon[mask], batch["tokens"][mask])
        commit = F.mse_loss(real, z_q[mask].detach())
        return {"loss": rec_loss + self.beta * commit, "reconstruction": rec_loss, "commitment": commit,
                "index": index.masked_fill(~mask, -1)}


def random_mask(mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L]`` bool: ``round(ratio · n_real)`` of each sentence's real tokens, chosen uniformly (by the lowest
    ``noise``, drawn from ``generator`` unless given: fixed evaluation masks pass a per-sentence table)."""
    if noise is None:
        noise = torch.rand(mask.shape, generator=generator, device="cpu")
    noise = noise.to(mask.device).masked_fill(~mask, 2.0)
    ranks = noise.argsort(1).argsort(1)
    k = (mask.sum(1, keepdim=True).float() * ratio).round().long()
    return (ranks < k) & mask


class HeartLang(nn.Module):
    def __init__(self, token_len: int = 96, dim: int = 768, depth: int = 12, heads: int = 8, mlp: int = 1024,
                 dropout: float = 0.1, n_codes: int = 8192, mask_ratio: float = 0.5, max_len: int = 256,
                 dim_head: int = 64) -> None:
        super().__init__()
        self.backbone = ECGFormer(token_len, dim, depth, heads, mlp, dropout, max_len, dim_head=dim_head)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(dim, n_codes)
        self.mask_ratio = mask_ratio

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The CLS vector ``[B, dim]`` (what the linear probe reads)."""
        return self.backbone(batch["tokens"], batch["leads"], batch["times"], batch["mask"])[:, 0]

    def pretraining_loss(self, batch: dict[str, torch.Tensor], targets: torch.Tensor,
                         generator: torch.Generator | None = None,
                         noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        masked = random_mask(batch["mask"], self.mask_ratio, generator, noise)
        h = self.backbone(batch["tokens"], batch["leads"], batch["times"], batch["mask"], replace=masked,
                          replacement=self.mask_token)[:, 1:]
        logits = self.head(h[masked])
        labels = targets[masked]
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean(), "masked": masked.sum()}


class LinearProbe(nn.Module):
    """A linear head on frozen features (precomputed CLS vectors)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)
