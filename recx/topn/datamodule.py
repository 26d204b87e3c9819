"""The top-N datamodule: prepared interactions in, BPR triplet batches and evaluation user batches out.

Training batches are built per epoch from a generator seeded with ``(seed, epoch)``: a permutation of the training
pairs plus one sampled negative per pair, drawn from the whole catalogue (``negatives=catalogue``, recx) or only from
the items that occur in training (``negatives=train_items``, MMRec: its sampler draws from the training frame's
items), never an item the user saw in training. Because the batches depend on the epoch number only, a run resumed from a
checkpoint sees exactly the batches the uninterrupted run would have seen (``resume=true`` reproduces the metrics).

Evaluation batches are chunks of user ids (only users with held-out items in that split; the others are counted as
skipped). The chunk size comes from the scorer's memory budget, so a ``[chunk, n_items]`` score matrix stays bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from recx.data.interactions import InteractionData, pairs_to_csr
from recx.data.prepare import default_data_dir, prepare
from recx.scoring.topk import chunk_size_for
from recx.errors import ConfigError
from recx.topn.sampling import pair_keys, sample_negatives
from recx.training import eval_sampler


class _Batches(Dataset):
    """A map-style dataset whose ``__getitems__`` slices whole batches (no per-sample collation)."""

    def __init__(self, columns: dict[str, torch.Tensor]) -> None:
        self.columns = columns
        self.length = next(iter(columns.values())).shape[0]

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        # one process reads consecutive batches (the epoch's order is already in the columns): slicing them is free,
        # while turning 2,048 Python ints into an index tensor costs ~0.5 ms a step; other samplers (DDP shares) index
        first, last = indices[0], indices[-1]
        if last - first + 1 == len(indices) and indices == list(range(first, last + 1)):
            return {k: v[first:last + 1] for k, v in self.columns.items()}
        index = torch.as_tensor(indices)
        return {k: v[index] for k, v in self.columns.items()}


def _identity(batch):
    return batch


#: where BPR negatives are drawn from: every item, or only items with a training interaction (MMRec)
NEGATIVE_POOLS = ("catalogue", "train_items")


class TopNDataModule(pl.LightningDataModule):
    """Serves one prepared top-N dataset to a :class:`~recx.topn.module.TopNModule`.

    Either pass ``data`` (an :class:`InteractionData`, e.g. in library use and tests) or a ``source`` + ``split``
    (what the configs do); ``modalities`` selects which item features are loaded.
    """

    def __init__(self, source: Any = None, split: Any = None, data: InteractionData | None = None,
                 modalities: tuple[str, ...] | list[str] = (), data_dir: str | Path | None = None,
                 batch_size: int = 2048, eval_memory_budget_mb: int = 256, mask_valid_at_test: bool = True,
                 seed: int = 0, num_workers: int = 0, negatives: str = "catalogue") -> None:
        super().__init__()
        self.source, self.split_strategy = source, split
        self.modalities = tuple(modalities)
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.batch_size = batch_size
        self.eval_memory_budget_mb = eval_memory_budget_mb
        self.mask_valid_at_test = mask_valid_at_test
        self.seed = seed
        self.num_workers = num_workers
        if negatives not in NEGATIVE_POOLS:
            raise ConfigError(f"unknown negative pool '{negatives}'", field="protocol.negatives",
                              fix=f"use one of {list(NEGATIVE_POOLS)} (train_items = MMRec's sampler)")
        self.negatives = negatives
        self._negative_pool: torch.Tensor | None = None
        self.data = data
        self._train_keys: torch.Tensor | None = None
        self._csr_cache: dict = {}

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> None:
        if self.data is None:
            prepare(self.source, self.split_strategy, self.data_dir, modalities=self.modalities)

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = prepare(self.source, self.split_strategy, self.data_dir, modalities=self.modalities)
        if self._train_keys is None:
            self._train_keys = pair_keys(self.data.train, self.data.n_items)
        if self.negatives == "train_items" and self._negative_pool is None:
            self._negative_pool = torch.unique(self.data.train[:, 1])

    # --------------------------------------------------------- eval contract
    def seen_csr(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Items masked when ranking for ``split``: train items, plus valid items at test time (configurable)."""
        splits = ("train", "valid") if split == "test" and self.mask_valid_at_test else ("train",)
        return self._cached(("seen", splits), lambda: self.data.seen_csr(splits))

    def truth_csr(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cached(("truth", split),
                            lambda: pairs_to_csr(self.data.split(split), self.data.n_users, self.data.n_items))

    def cold_items(self, threshold: int) -> torch.Tensor:
        """Items with at most ``threshold`` training interactions (boolean ``[n_items]``)."""
        return self.data.item_popularity() <= threshold

    def cold_truth_csr(self, split: str, threshold: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Held-out pairs of ``split`` restricted to cold items, as CSR, plus the number of cold items."""
        def build():
            cold = self.cold_items(threshold)
            pairs = self.data.split(split)
            indptr, indices = pairs_to_csr(pairs[cold[pairs[:, 1]]], self.data.n_users, self.data.n_items)
            return indptr, indices, int(cold.sum())
        return self._cached(("cold", split, threshold), build)

    def _cached(self, key, compute):
        """Evaluation indexes are fixed once the data is loaded: build them once, not every validation epoch."""
        if key not in self._csr_cache:
            self._csr_cache[key] = compute()
        return self._csr_cache[key]

    def eval_users(self, split: str) -> torch.Tensor:
        return torch.unique(self.data.split(split)[:, 0])

    def skipped_users(self, split: str) -> int:
        return self.data.n_users - int(self.eval_users(split).numel())

    def eval_chunk_size(self) -> int:
        return chunk_size_for(self.data.n_items, self.eval_memory_budget_mb)

    # ----------------------------------------------------------- dataloaders
    def epoch_triplets(self, epoch: int) -> dict[str, torch.Tensor]:
        """The training triplets of ``epoch``: a seeded permutation of train pairs + one negative each."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        pairs = self.data.train[torch.randperm(self.data.train.shape[0], generator=g)]
        users = pairs[:, 0].contiguous()
        neg = sample_negatives(users, self.data.n_items, self._train_keys, g, pool=self._negative_pool)
        return {"users": users, "pos": pairs[:, 1].contiguous(), "neg": neg}

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return DataLoader(_Batches(self.epoch_triplets(epoch)), batch_size=self.batch_size, shuffle=False,
                          collate_fn=_identity, num_workers=self.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        users = _Batches({"users": self.eval_users(split)})
        return DataLoader(users, batch_size=self.eval_chunk_size(), shuffle=False, collate_fn=_identity,
                          num_workers=0, sampler=eval_sampler(users, self.trainer))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
