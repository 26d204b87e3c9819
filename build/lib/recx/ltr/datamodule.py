"""The LTR datamodule: prepared query slates in; label batches, or logged lists with freshly simulated clicks, out.

* **Labels** (no click model): each epoch, the training queries in a seeded random order, padded per batch; a query
  longer than ``max_slate_length`` contributes a random subset of its documents (drawn anew each epoch).
* **Clicks** (``click_model=pbm|ubm|cascade|...``): every training query is shown as the top ``cutoff`` documents of
  the logging ranker (:mod:`~recx.ltr.logging_policy`); each epoch, ``impressions_per_query`` click vectors per query
  are sampled from the click model (per impression, seeded by ``(seed, epoch)``), so models see fresh clicks on the
  same logged lists, as in ULTRA's click-simulation feed. Batches carry the display ranks, the propensities estimated
  by a randomisation experiment (:mod:`~recx.ltr.propensity`) and, when the dataset names one, a popularity signal.
* **Logged clicks** (``click_model=logged click_model.path=<file>``): each training query with logged clicks is shown
  as its documents in file order (position = index in the file's list), with the logged clicks, identical every
  epoch. No simulator to randomise, so IPS propensities are unknown (1.0: IPS reduces to the naive loss); DLA and
  InfoRank learn theirs.
* **Evaluation**: full lists of the validation/test queries with their true labels (as ULTRA and allRank do).

Batches are whole tensors built in the main process (no per-sample collation), so an epoch costs a few gathers.
Because every random draw depends on ``(seed, epoch)`` only, a resumed run sees the batches the original would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from recx.errors import ConfigError
from recx.ltr.data import LTRData, LTRSplit, pad_batch, query_index
from recx.ltr.logging_policy import logged_lists
from recx.ltr.propensity import randomized_propensity
from recx.training import eval_sampler


class _BatchList(torch.utils.data.Dataset):
    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i]


def _loader(batches: list[dict[str, torch.Tensor]], trainer=None) -> DataLoader:
    dataset = _BatchList(batches)
    return DataLoader(dataset, batch_size=None, shuffle=False, sampler=eval_sampler(dataset, trainer))


def query_percentile(values: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Each document's rank percentile of ``values`` within its query, in (0, 1] (1 = the query's highest).

    Used as the popularity signal: comparable across queries whatever the raw feature's scale.
    """
    qi = query_index(offsets)
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(qi[order], stable=True)]  # grouped by query, ascending values inside
    rank_in_query = torch.empty_like(order)
    rank_in_query[order] = torch.arange(order.numel()) - offsets[:-1].repeat_interleave(offsets[1:] - offsets[:-1])
    lengths = (offsets[1:] - offsets[:-1])[qi]
    return (rank_in_query + 1).float() / lengths.float()


def with_history(batch: dict[str, torch.Tensor], split: LTRSplit, queries: torch.Tensor) -> dict[str, torch.Tensor]:
    """Add the queries' browsing history (``history``, ``history_mask``) when the split has one."""
    if split.history is not None:
        batch["history"] = split.history[queries]
        batch["history_mask"] = split.history_mask[queries]
    return batch


class LTRDataModule(pl.LightningDataModule):
    def __init__(self, source: Any = None, data: LTRData | None = None, click_model: Any = None,
                 batch_size: int = 64, eval_batch_size: int = 64, max_slate_length: int | None = 200,
                 logging_policy: str = "ridge", logging_fraction: float = 0.01, logging_feature: int | None = None,
                 impressions_per_query: int = 10,
                 propensity_rounds: int = 20, popularity_feature: int | str | None = "auto",
                 data_dir: str | Path | None = None, seed: int = 0) -> None:
        super().__init__()
        self.source, self.data = source, data
        self.click_model = click_model
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.max_slate_length = max_slate_length
        self.logging_policy, self.logging_fraction = logging_policy, logging_fraction
        self.logging_feature = logging_feature
        self.impressions_per_query, self.propensity_rounds = impressions_per_query, propensity_rounds
        self.popularity_feature = popularity_feature
        self.data_dir = data_dir
        self.seed = seed
        self.logged: dict[str, Any] | None = None

    # ------------------------------------------------------------------ data
    def _load(self) -> LTRData:
        from recx.ltr.sources import prepare_ltr

        return prepare_ltr(self.source, self.data_dir)

    def prepare_data(self) -> None:
        if self.data is None:
            self._load()

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = self._load()
        if self.popularity_feature == "auto":  # the dataset's own popularity column, when it names one
            column = (self.data.meta or {}).get("popularity_column")
            self.popularity_feature = int(column) + 1 if column is not None else None
        if self.popularity_feature is not None and not 1 <= self.popularity_feature <= self.data.n_features:
            raise ConfigError(f"popularity_feature {self.popularity_feature} is not a feature of '{self.data.name}' "
                              f"(1..{self.data.n_features})", field="dataset.datamodule.popularity_feature",
                              fix="give a 1-based feature index, or null for no popularity signal")
        if self.click_model is not None and self.logged is None:
            from recx.ltr.clicks import LoggedClicks

            self.logged = (self._read_logged_clicks() if isinstance(self.click_model, LoggedClicks)
                           else self._log_training_lists())

    @property
    def n_features(self) -> int:
        return self.data.n_features

    @property
    def clicks(self) -> bool:
        return self.click_model is not None

    def popularity(self, split: LTRSplit) -> torch.Tensor | None:
        if self.popularity_feature is None:
            return None
        return query_percentile(split.features[:, self.popularity_feature - 1], split.offsets)

    def _log_training_lists(self) -> dict[str, Any]:
        train = self.data.train
        cutoff = int(getattr(self.click_model, "cutoff", 10) or 10)
        rows, mask, info = logged_lists(train.features, train.labels, train.offsets, cutoff=cutoff,
                                        policy=self.logging_policy, fraction=self.logging_fraction, seed=self.seed,
                                        feature=self.logging_feature)
        popularity = self.popularity(train)
        logged = {"rows": rows, "mask": mask, "labels": train.labels[rows] * mask,
                  "popularity": popularity[rows] if popularity is not None else None, "info": info}
        generator = torch.Generator().manual_seed(self.seed + 17)
        logged["propensity"] = randomized_propensity(self.click_model, logged["labels"], mask, generator,
                                                     self.propensity_rounds, logged["popularity"])
        info["estimated_propensity"] = [round(float(p), 4) for p in logged["propensity"]]
        return logged

    def _read_logged_clicks(self) -> dict[str, Any]:
        train, log = self.data.train, self.click_model
        qids = train.qids.tolist()
        logged = set(int(q) for q in log.qids)
        queries = torch.tensor([i for i, q in enumerate(qids) if q in logged], dtype=torch.long)
        if queries.numel() == 0:
            raise ConfigError(f"none of the {len(qids)} training queries of '{self.data.name}' has logged clicks",
                              field="click_model.path", fix="log clicks with the qids of the training file")
        clicks, mask = log.rows([qids[i] for i in queries.tolist()])
        width = clicks.shape[1]
        position = torch.arange(width)
        mask = mask & (position.unsqueeze(0) < train.lengths[queries].unsqueeze(1))
        rows = (train.offsets[:-1][queries].unsqueeze(1) + position).clamp_max(train.n_docs - 1) * mask
        popularity = self.popularity(train)
        return {"rows": rows, "mask": mask, "clicks": clicks * mask, "queries": queries,
                "popularity": popularity[rows] if popularity is not None else None,
                "propensity": torch.ones(width),
                "info": {"policy": "logged", "file_queries": len(log), "trained_queries": int(queries.numel()),
                         "propensity": "unknown (1.0): IPS equals the naive loss on logged clicks"}}

    # ----------------------------------------------------------------- loaders
    def _generator(self, salt: int) -> torch.Generator:
        epoch = self.trainer.current_epoch if self.trainer is not None else getattr(self, "epoch", 0)
        return torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * (epoch + 1) + salt)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.click_batches() if self.clicks else self.label_batches())

    def label_batches(self) -> list[dict[str, torch.Tensor]]:
        train = self.data.train
        generator = self._generator(1)
        order = torch.randperm(train.n_queries, generator=generator)
        batches = []
        for chunk in order.split(self.batch_size):
            features, labels, mask = pad_batch(train, chunk, self.max_slate_length, generator)
            batches.append(with_history({"features": features, "targets": labels.float(), "mask": mask}, train, chunk))
        return batches

    def click_batches(self) -> list[dict[str, torch.Tensor]]:
        logged, train = self.logged, self.data.train
        generator = self._generator(2)
        n_queries = logged["rows"].shape[0]
        repeats = 1 if "clicks" in logged else self.impressions_per_query  # a log is one fixed set of impressions
        impressions = torch.arange(n_queries).repeat(repeats)
        impressions = impressions[torch.randperm(impressions.numel(), generator=generator)]
        batches = []
        for chunk in impressions.split(self.batch_size):
            rows, mask = logged["rows"][chunk], logged["mask"][chunk]
            popularity = logged["popularity"][chunk] if logged["popularity"] is not None else None
            if "clicks" in logged:  # logged clicks: the same every epoch
                clicks = logged["clicks"][chunk]
            else:
                clicks = self.click_model.sample(logged["labels"][chunk], mask, generator, popularity=popularity)
            batch = {
                "features": train.features[rows] * mask.unsqueeze(-1), "mask": mask,
                "targets": clicks.float() * mask,
                "positions": torch.arange(rows.shape[1]).expand_as(rows).contiguous(),
                "propensity": logged["propensity"][: rows.shape[1]].expand_as(rows).contiguous(),
            }
            if popularity is not None:
                batch["popularity"] = popularity
            queries = logged["queries"][chunk] if "queries" in logged else chunk
            batches.append(with_history(batch, train, queries))
        return batches

    def eval_batches(self, split: LTRSplit) -> list[dict[str, torch.Tensor]]:
        order = torch.argsort(split.lengths, stable=True)  # similar lengths together: little padding
        size = self.eval_batch_size
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:  # DDP: at least one batch per process (a process with none would skip evaluation and hang)
            size = max(1, min(size, -(-split.n_queries // world)))
        batches = []
        for chunk in order.split(size):
            features, labels, mask = pad_batch(split, chunk, None)
            batches.append(with_history({"features": features, "labels": labels, "mask": mask, "query": chunk},
                                        split, chunk))
        return batches

    def val_dataloader(self) -> DataLoader:
        return _loader(self.eval_batches(self.data.valid), self.trainer)

    def test_dataloader(self) -> DataLoader:
        return _loader(self.eval_batches(self.data.test), self.trainer)
