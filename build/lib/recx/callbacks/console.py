"""One line per epoch when no interactive progress bar is shown (CI logs, nohup, pipes)."""

from __future__ import annotations

import time

import lightning.pytorch as pl

from recx.console import console


class EpochSummary(pl.Callback):
    """Prints ``epoch | mean train loss | validation monitor | seconds`` after every training epoch."""

    def __init__(self) -> None:
        self._console = console()
        self._started = 0.0
        self._loss_sum = 0.0
        self._batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()
        self._loss_sum, self._batches = 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum += float(loss)
            self._batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        parts = [f"epoch {trainer.current_epoch:>3}"]
        if self._batches:
            parts.append(f"loss {self._loss_sum / self._batches:.4f}")
        monitor = getattr(pl_module, "monitor", None)
        valid = getattr(pl_module, "results", {}).get("valid", {})
        if monitor in valid:
            parts.append(f"val/{monitor} {valid[monitor]:.4f}")
        parts.append(f"{time.perf_counter() - self._started:.1f}s")
        self._console.print(" | ".join(parts))
