"""What every family's LightningModule does the same way in training, evaluation and checkpoints.

:class:`LossSteps` is a mixin: each epoch's random draws (dropout, sampling) come from ``(seed, epoch)``, so a run
resumed from a checkpoint replays what the uninterrupted run did; the training step logs the model's loss, skips a
model with nothing to train (``loss`` returns None) and stops with a :class:`~recx.errors.TrainingError` naming the
epoch and step when the loss is NaN or infinite.
"""

from __future__ import annotations

import torch

from recx.errors import check_finite_loss


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
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=self.batch_size_of(batch))
        return loss

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
