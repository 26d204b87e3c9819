"""Bi-level fine-tuning (FEEDER §2.4): alternate pre-selection with the frozen LM and fine-tuning on the subset.

The inner step fine-tunes the causal LM with Lightning on the label-word task the prompts pose: for
``"<template with x>"`` the loss is the cross-entropy of the label words' next-token logits against ``y`` (the LM's own
head, restricted to the label words — what the ICL prediction reads). AdamW, lr 5e-5, weight decay 0.01 (the paper's
reported settings), batch 8 (CPU-sized; the paper uses 32 on an A100).
"""

from __future__ import annotations

from typing import Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader


class LabelWordFineTuner(pl.LightningModule):
    def __init__(self, lm, lr: float = 5e-5, weight_decay: float = 0.01) -> None:
        super().__init__()
        self.model = lm.model
        self.lm = lm
        self.lr, self.weight_decay = lr, weight_decay

    def training_step(self, batch, batch_idx):
        prompts, labels = batch
        logits = self.model(**self.lm.encode(prompts)).logits[:, -1, self.lm.label_ids]
        loss = torch.nn.functional.cross_entropy(logits.float(), labels.to(logits.device))
        self.log("train/loss", loss, prog_bar=False, batch_size=len(labels))
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def collate(rows):
    prompts, labels = zip(*rows)
    return list(prompts), torch.tensor(labels)


def finetune(lm, texts: Sequence[str], labels: Sequence[int], epochs: int = 1, batch_size: int = 8,
             lr: float = 5e-5, weight_decay: float = 0.01, seed: int = 0, precision: str = "32-true") -> None:
    """Fine-tune ``lm.model`` in place on zero-shot prompts of ``texts`` → ``labels``, on the device the model is on
    (it stays there afterwards, where the next round's pre-selection scores with it)."""
    from recx.runtools import quiet_lightning

    quiet_lightning()
    pl.seed_everything(seed, verbose=False)
    rows = [(lm.prompt([], t), int(y)) for t, y in zip(texts, labels)]
    loader = DataLoader(rows, batch_size=batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    module = LabelWordFineTuner(lm, lr, weight_decay)
    lm.model.train()
    device = next(lm.model.parameters()).device
    trainer = pl.Trainer(max_epochs=epochs, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                         precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, loader)
    lm.model.to(device).eval()  # Lightning hands the module back on the CPU
