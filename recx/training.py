"""What every family's LightningModule does the same way in training, evaluation and checkpoints.

:class:`LossSteps` is a mixin: each epoch's random draws (dropout, sampling) come from ``(seed, epoch)``, so a run
resumed from a checkpoint replays what the uninterrupted run did; the training step logs the model's loss, skips a
model with nothing to train (``loss`` returns None) and stops with a :class:`~recx.errors.TrainingError` naming the
epoch and step when the loss is NaN or infinite.
"""

from __future__ import annotations

import torch

from recx.errors import check_finite_loss


def device_for(hardware) -> torch.device:
    """Where a family that trains outside Lightning (ECG, learning paths, in-context learning) puts its tensors:
    CUDA under ``hardware=gpu|bf16`` (``recx.run.check_hardware`` has refused a GPU config without CUDA), else CPU."""
    accelerator = str(hardware.get("accelerator", "cpu")) if hardware is not None else "cpu"
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_device(batch: dict[str, torch.Tensor], device: torch.device | None) -> dict[str, torch.Tensor]:
    """A batch dict on ``device`` (as is when ``device`` is None)."""
    if device is None:
        return batch
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def log_evaluation(module, stage: str, values: dict[str, float], monitor: str | None) -> None:
    """Log one evaluation round: the selection metric through Lightning (early stopping, the best checkpoint and the
    progress bar read it), every other value straight to the run's loggers in one call per logger.

    Lightning's ``self.log`` costs ~0.5 ms per key (its result collection, device moves and teardown); a top-N round
    has ~30 keys, which made those hooks the largest part of one evaluation pass on ml100k. The values also land in
    ``module.logged_evaluation`` (``"val/recall@20"`` -> value), which the per-epoch history reads.
    """
    module.logged_evaluation = {f"{stage}/{k}": float(v) for k, v in values.items()}
    shown = f"val/{monitor}" if stage == "val" and monitor in values else None
    if shown is not None:
        module.log(shown, module.logged_evaluation[shown], prog_bar=True)
    rest = {k: v for k, v in module.logged_evaluation.items() if k != shown}
    trainer = module._trainer
    if trainer is None or not rest or trainer.sanity_checking or not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_metrics({**rest, "epoch": trainer.current_epoch}, step=trainer.global_step)


def eval_sampler(dataset, trainer):
    """The sampler of an evaluation loader: None (in order) in one process; under DDP a :class:`DisjointShare`.

    Lightning's default DistributedSampler pads the last share by repeating samples, which would count some users (or
    queries) twice and make DDP metrics differ from a single process's; Lightning's own unrepeated sampler refuses a
    process with nothing to score (one LTR evaluation batch, two processes)."""
    if trainer is None or trainer.world_size <= 1:
        return None
    return DisjointShare(dataset, trainer.world_size, trainer.global_rank)


class DisjointShare(torch.utils.data.DistributedSampler):
    """Process ``rank`` of ``world`` takes items ``rank, rank + world, ...``: every item exactly once over all
    processes, shares differ by at most one, and a share may be empty. (A DistributedSampler subclass, so that
    Lightning keeps it instead of wrapping the loader in its own.)"""

    def __init__(self, dataset, world: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)
        self.share = list(range(rank, len(dataset), world))
        self.num_samples, self.total_size = len(self.share), len(dataset)

    def __iter__(self):
        return iter(self.share)

    def __len__(self) -> int:
        return self.num_samples


class LossSteps:
    #: what to tell the user when the loss diverges
    nan_fix = "lower model.lr or check the input data for extreme values"

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:  # pragma: no cover - per family
        raise NotImplementedError

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 1_000_003 + 7919 * (self.current_epoch + 1))
        hook = getattr(self.net, "on_epoch_start", None)
        if hook is not None:
            hook(self.current_epoch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int):
        loss = self.net.loss(batch)
        if loss is None:  # nothing to train (Pop, the random ranker)
            return None
        check_finite_loss(loss, self.current_epoch, self.global_step, fix=self.nan_fix)
        self._log_epoch_loss(loss, self.batch_size_of(batch), batch_idx)
        return loss

    def _log_epoch_loss(self, loss: torch.Tensor, n: int, batch_idx: int) -> None:
        """``train/loss``: the epoch's mean loss weighted by batch size (what ``self.log(on_epoch=True)`` reports),
        summed here and logged once, on the epoch's last batch. Lightning's per-call logging costs ~0.5 ms, as much
        as a whole BPR step on ml100k."""
        if batch_idx == 0 or getattr(self, "_loss_sum", None) is None:  # (a run resumed inside an epoch)
            self._loss_sum, self._loss_n = torch.zeros((), device=loss.device), 0
        self._loss_sum = self._loss_sum + loss.detach() * n
        self._loss_n += n
        last = getattr(self._trainer, "num_training_batches", None) if self._trainer is not None else None
        if last is None or batch_idx + 1 >= last:
            self.log("train/loss", self._loss_sum / max(self._loss_n, 1), on_step=False, on_epoch=True,
                     prog_bar=True, batch_size=self._loss_n)

    def optimizer_parameters(self) -> list:
        """What the optimiser updates: the model's own parameter groups when it defines them (``optimizer_groups``,
        e.g. DLA's faster propensity logits), else its trainable parameters; empty when nothing is trainable."""
        params = [p for p in self.net.parameters() if p.requires_grad]
        if params and hasattr(self.net, "optimizer_groups"):
            return self.net.optimizer_groups(self.lr)
        return params


class SameEvaluation:
    """Validation and test run one code path: ``_start(split)``, ``_step(batch)`` per batch, ``_finish(stage)``
    (``split`` = "valid" | "test", ``stage`` = "val" | "test"); checkpoints carry the resolved run config, so
    ``recx eval`` can rebuild the run from a checkpoint alone."""

    def on_validation_epoch_start(self) -> None:
        self._start("valid")

    def validation_step(self, batch, batch_idx):
        self._step(batch)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def test_step(self, batch, batch_idx):
        self._step(batch)

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["recx"] = {"config": self.recx_config, "format": 1}


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s draws (as :class:`LossSteps` seeds its epochs)."""
    return int(seed) * 1_000_003 + 7919 * (int(epoch) + 1)


class EpochShuffle(torch.utils.data.Sampler):
    """A permutation of ``n`` drawn when iterated, from a generator seeded with ``(seed, the trainer's epoch)``: a
    resumed run (whose loaders are built before the loop state is restored) draws the order of the epoch it runs."""

    def __init__(self, n: int, seed: int, holder) -> None:
        self.n, self.seed, self.holder = n, seed, holder

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        trainer = self.holder.trainer
        epoch = trainer.current_epoch if trainer is not None else 0
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


class IndexDataset(torch.utils.data.Dataset):
    """Items ``0 .. n-1`` whose loader's ``collate`` builds the batch from the drawn indices with ``batch_of``
    (a family's own batching: ECG sentences, student sequences), so a batch is one vectorised gather."""

    def __init__(self, n: int, batch_of) -> None:
        self.n, self.batch_of = int(n), batch_of

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.batch_of(torch.as_tensor(indices, dtype=torch.long))


def index_train_loader(n: int, batch_of, batch_size: int, seed: int, holder):
    """Training batches of an :class:`IndexDataset`, in the :class:`EpochShuffle` order of ``(seed, epoch)``."""
    ds = IndexDataset(n, batch_of)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=EpochShuffle(n, seed, holder),
                                       collate_fn=ds.collate)


def index_eval_loader(n: int, batch_of, batch_size: int, trainer):
    """Evaluation batches of an :class:`IndexDataset`, in order (a disjoint share per process under DDP)."""
    ds = IndexDataset(n, batch_of)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=eval_sampler(ds, trainer),
                                       collate_fn=ds.collate)
