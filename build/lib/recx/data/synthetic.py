"""``synthetic_mm``: a generated multimodal dataset with planted structure.

Why: ``recx train`` must work on a fresh machine with no download, and every model needs data on which "it learns" is
a checkable claim. The generator plants three signals, each of which a different kind of model can exploit:

* **collaborative**: users and items come from ``n_clusters`` latent clusters; a user prefers items whose latent vector
  is close to hers (``u·v``), so ID-based CF (BPR, LightGCN) beats popularity;
* **popularity**: items have log-normal popularity, so Pop is a real (non-trivial) baseline;
* **content**: two item "modalities" are noisy functions of the item latent vector (``image`` a non-linear one,
  ``text`` a linear one), so a model that reads features can place items it has barely seen in training.

Cold-ish items: a fraction ``cold_item_fraction`` of items is "released late": most of their interactions carry
timestamps in the last ``1 - cold_release`` of the timeline, so a per-user temporal split leaves them with few training
interactions but many held-out ones. That is where features must beat IDs.

Everything is vectorised (one ``torch.multinomial`` over all users) and fully determined by ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recx.data.interactions import RawDataset
from recx.errors import ConfigError, DataError


@dataclass
class PlantedWorld:
    """The hidden truth behind one generated dataset (useful to tests and to LIS/AIS oracles)."""

    user_latent: torch.Tensor  # [n_users, latent_dim]
    item_latent: torch.Tensor  # [n_items, latent_dim]
    user_cluster: torch.Tensor  # [n_users]
    item_cluster: torch.Tensor  # [n_items]
    item_log_popularity: torch.Tensor  # [n_items]
    cold_items: torch.Tensor  # [n_items] bool
    features: dict[str, torch.Tensor]  # modality -> [n_items, d]
    interactions: torch.Tensor  # [n, 2] (user, item)
    timestamps: torch.Tensor  # [n] float in [0, 1)


def generate_world(
    n_users: int = 1000,
    n_items: int = 800,
    n_clusters: int = 8,
    latent_dim: int = 16,
    interactions_per_user: int = 40,
    min_interactions: int = 8,
    affinity_temperature: float = 0.7,
    popularity_sigma: float = 0.8,
    cold_item_fraction: float = 0.05,
    cold_release: float = 0.9,
    cold_early_share: float = 0.03,
    image_dim: int = 64,
    text_dim: int = 32,
    feature_noise: float = 0.3,
    seed: int = 0,
) -> PlantedWorld:
    """Sample a planted world; see the module docstring for what each knob plants."""
    if n_items < interactions_per_user or interactions_per_user < min_interactions or min_interactions < 3:
        raise ConfigError(
            "synthetic sizes must satisfy 3 <= min_interactions <= interactions_per_user <= n_items",
            field="dataset.source", fix="lower interactions_per_user or raise n_items",
        )
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, latent_dim, generator=g)
    item_cluster = torch.randint(n_clusters, (n_items,), generator=g)
    user_cluster = torch.randint(n_clusters, (n_users,), generator=g)
    item_latent = centres[item_cluster] + 0.6 * torch.randn(n_items, latent_dim, generator=g)
    user_latent = centres[user_cluster] + 0.6 * torch.randn(n_users, latent_dim, generator=g)
    log_pop = popularity_sigma * torch.randn(n_items, generator=g)

    # Interaction counts per user: Poisson-like spread around the mean, clipped to [min, 2*mean].
    counts = torch.poisson(torch.full((n_users,), float(interactions_per_user)), generator=g).long()
    counts = counts.clamp(min_interactions, min(n_items, 2 * interactions_per_user))
    logits = (user_latent @ item_latent.T) / (latent_dim**0.5 * affinity_temperature) + log_pop
    probs = torch.softmax(logits, dim=1)
    picks = torch.multinomial(probs, int(counts.max()), replacement=False, generator=g)
    keep = torch.arange(picks.shape[1]).unsqueeze(0) < counts.unsqueeze(1)
    users = torch.arange(n_users).unsqueeze(1).expand_as(picks)[keep]
    items = picks[keep]

    cold = torch.zeros(n_items, dtype=torch.bool)
    n_cold = int(round(cold_item_fraction * n_items))
    cold[torch.randperm(n_items, generator=g)[:n_cold]] = True
    # Warm interactions happen any time in [0, 1); a cold item's interactions mostly after its release, in
    # [cold_release, 1): among each user's most recent ones, so a per-user temporal split holds most of them out.
    times = torch.rand(items.shape[0], generator=g, dtype=torch.float64)
    late = cold[items] & (torch.rand(items.shape[0], generator=g) >= cold_early_share)
    times[late] = cold_release + (1 - cold_release) * torch.rand(int(late.sum()), generator=g, dtype=torch.float64)

    features = {
        "image": _modality(item_latent, image_dim, feature_noise, g, nonlinear=True),
        "text": _modality(item_latent, text_dim, feature_noise, g, nonlinear=False),
        # The planted truth itself, as a "modality": an oracle for tests and for LIS/AIS upper bounds.
        "latent": item_latent.clone(),
    }
    return PlantedWorld(
        user_latent=user_latent, item_latent=item_latent, user_cluster=user_cluster, item_cluster=item_cluster,
        item_log_popularity=log_pop, cold_items=cold, features=features,
        interactions=torch.stack([users, items], 1), timestamps=times,
    )


def _modality(latent: torch.Tensor, dim: int, noise: float, g: torch.Generator, *, nonlinear: bool) -> torch.Tensor:
    """A noisy view of the item latent factors: ``f(v W) + noise`` with unit-scale signal."""
    w = torch.randn(latent.shape[1], dim, generator=g) / latent.shape[1] ** 0.5
    signal = latent @ w
    if nonlinear:
        signal = torch.tanh(signal)
    signal = signal / signal.std().clamp_min(1e-8)
    return (signal + noise * torch.randn(signal.shape, generator=g)).float()


@dataclass
class SyntheticMM:
    """Dataset source for the generated multimodal data (``conf/dataset/synthetic_mm.yaml``).

    Constructor arguments are those of :func:`generate_world`; nothing is downloaded.
    """

    n_users: int = 1000
    n_items: int = 800
    n_clusters: int = 8
    latent_dim: int = 16
    interactions_per_user: int = 40
    min_interactions: int = 8
    affinity_temperature: float = 0.7
    popularity_sigma: float = 0.8
    cold_item_fraction: float = 0.05
    cold_release: float = 0.9
    cold_early_share: float = 0.03
    image_dim: int = 64
    text_dim: int = 32
    feature_noise: float = 0.3
    seed: int = 0

    name = "synthetic_mm"
    modalities = ("image", "text", "latent")
    instructions = "nothing to download: synthetic_mm is generated"

    def file_sets(self) -> list:
        return []

    def cache_key(self) -> dict:
        return asdict(self)

    def world(self) -> PlantedWorld:
        cached = getattr(self, "_world", None)
        if cached is None:
            cached = generate_world(**asdict(self))
            object.__setattr__(self, "_world", cached)
        return cached

    def read(self, raw_dir: Path | None = None) -> RawDataset:
        w = self.world()
        frame = pl.DataFrame({
            "user": w.interactions[:, 0].numpy(),
            "item": w.interactions[:, 1].numpy(),
            "timestamp": w.timestamps.numpy(),
        })
        items = pl.DataFrame({"item": np.arange(self.n_items), "cold": w.cold_items.numpy()})
        return RawDataset(frame, items, meta={"generator": "recx.data.synthetic.generate_world", **asdict(self)})

    def feature(self, modality: str, raw_dir: Path | None, item_ids: list[str]) -> np.ndarray:
        w = self.world()
        if modality not in w.features:
            raise DataError(f"synthetic_mm has no modality '{modality}'", field="dataset.modalities",
                            fix=f"choose from {sorted(w.features)}")
        rows = np.asarray([int(i) for i in item_ids])
        return w.features[modality].numpy()[rows]
