"""The ECG family (HeartLang): tokenised ECG sentences as a LightningDataModule, VQ-HBR and HeartLang masked
pretraining as LightningModules over it, the linear probe as an evaluation of a frozen backbone whose per-fraction
head is a LightningModule too (``ProbeModule``).

The paper math stays in :mod:`recx.ecg.models`; here is only what Lightning needs: batches, the optimiser with the
recipe's per-step learning rates (:func:`recx.ecg.recipe.lr_schedule`, AdamW with the model's ``betas``), gradient
clipping at norm 3 (the public code's ``clip_grad``), validation sums that add up over DDP processes, and the
monitors (VQ-HBR: validation reconstruction MSE, lower is better; HeartLang: validation masked-code loss, lower is
better). Early stopping after ``model.patience`` epochs without a better monitor (null: none), at most
``model.epochs``; the best checkpoint is tested.

Random draws are keyed, so that a resumed run replays the uninterrupted one: the training order of epoch ``e`` comes
from a generator seeded with ``(seed, e)``, the training masks too; evaluation masks come from a fixed per-sentence
noise table (seed 0), so they do not depend on batching — nor on how DDP shares the sentences.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError
from recx.families import Evaluation, Family, Trainable
from recx.runtools import RecxCheckpoint, construct, count_parameters, reduce_sum
from recx.training import epoch_seed, index_eval_loader, index_train_loader

STAGE_SPLIT = {"val": "valid", "test": "test"}


def sentence_batch(split):
    """The batch function of one split: its sentences at ``index``, with ``index`` itself."""
    return lambda index: {**split.batch(index), "index": index}


class ECGDataModule(pl.LightningDataModule):
    """The tokenised sentences of ``dataset.source`` (prepared and cached by :func:`recx.ecg.data.prepare_ecg`)."""

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.data = None
        self.batch_size = int(cfg.model.get("batch_size", 64))
        self.seed = int(cfg.seed)

    def _load(self):
        from recx.console import console
        from recx.ecg.data import prepare_ecg

        if self.data is None:
            self.data = prepare_ecg(construct(self.cfg.dataset.source), self.cfg.paths.get("data_dir"),
                                    log=lambda msg: console().print(msg, markup=False))
        return self.data

    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def train_dataloader(self):
        return index_train_loader(len(self.data.train), sentence_batch(self.data.train), self.batch_size, self.seed,
                                  self)

    def _eval_loader(self, split: str):
        part = getattr(self.data, split)
        return index_eval_loader(len(part), sentence_batch(part), self.batch_size, self.trainer)

    def val_dataloader(self):
        return self._eval_loader("valid")

    def test_dataloader(self):
        return self._eval_loader("test")


class ECGModule(RecxCheckpoint, pl.LightningModule):
    """What VQ-HBR and HeartLang share: AdamW + per-step learning rates, clipping, keyed draws, summed evaluation."""

    clip = 3.0

    def __init__(self, net: torch.nn.Module, m: DictConfig, n_train: int, seed: int) -> None:
        super().__init__()
        self.net = net
        self.m = OmegaConf.to_container(m, resolve=True)
        self.n_train, self.seed = int(n_train), int(seed)
        self.results: dict[str, dict[str, float]] = {}
        self._sums: list[float] = []
        self._generator = torch.Generator()

    def configure_optimizers(self):
        from recx.ecg.recipe import optimiser

        world = self.trainer.world_size if self._trainer is not None else 1
        return optimiser(self.net.parameters(), self.m, -(-self.n_train // (int(self.m["batch_size"]) * world)))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=self.clip, gradient_clip_algorithm="norm")

    def history_row(self) -> dict:
        return {"lr": getattr(self, "_last_lr", None)}

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # dropout: keyed by (seed, epoch, batch), whatever else drew from the global generator (loader set-up)
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1 + 7 * (batch_idx + 1))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1)
        self._generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.current_epoch) + 2)

    def training_step(self, batch, batch_idx):
        from recx.errors import check_finite_loss

        self._last_lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # this step's rate
        loss = self.train_loss(batch)
        check_finite_loss(loss, self.current_epoch, self.global_step, fix="lower model.lr")
        self.log("train/loss", loss.detach(), on_step=False, on_epoch=True, batch_size=int(batch["mask"].shape[0]),
                 sync_dist=True)
        return loss

    # evaluation: per-batch sums, added over processes, turned into the split's metrics
    def on_validation_epoch_start(self) -> None:
        self._split = "valid"
        self._start()

    def on_test_epoch_start(self) -> None:
        self._split = "test"
        self._start()

    def validation_step(self, batch, batch_idx):
        self._step(batch)

    def test_step(self, batch, batch_idx):
        self._step(batch)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")


class VQHBRModule(ECGModule):
    """VQ-HBR: reconstruction + commitment loss; reports reconstruction MSE and codebook usage (distinct codes used on
    the split / codebook size)."""

    monitor = "reconstruction_mse"

    def train_loss(self, batch):
        return self.net(batch)["loss"]

    def _start(self) -> None:
        self._sums = [0.0, 0.0]
        self._used = torch.zeros(self.net.codebook.codes.shape[0], device=self.device)

    @torch.no_grad()
    def _step(self, batch) -> None:
        out = self.net(batch)
        k = int(batch["mask"].sum())
        self._sums = [self._sums[0] + float(out["reconstruction"]) * k, self._sums[1] + k]
        codes = out["index"][batch["mask"]]
        self._used += torch.bincount(codes, minlength=self._used.shape[0]).to(self._used)

    def _finish(self, stage: str) -> None:
        total, n = reduce_sum(self, self._sums)
        used = self._used
        if self._trainer is not None and self.trainer.world_size > 1:
            used = self.trainer.strategy.reduce(used, reduce_op="sum")
        n_used = int((used > 0).sum())
        values = {"reconstruction_mse": total / max(n, 1), "codes_used": n_used,
                  "codebook_usage": n_used / used.shape[0]}
        self.results[STAGE_SPLIT[stage]] = values
        self.log(f"{stage}/reconstruction_mse", values["reconstruction_mse"], prog_bar=True)
        self.log(f"{stage}/codebook_usage", values["codebook_usage"])


class HeartLangModule(ECGModule):
    """HeartLang masked ECG-sentence pretraining against the frozen quantizer's codes (kept out of the optimiser and
    of the checkpoint); reports the masked-code loss and accuracy."""

    monitor = "masked_loss"

    def __init__(self, net, quantizer, m, n_train: int, seed: int, eval_noise: dict[str, torch.Tensor]) -> None:
        super().__init__(net, m, n_train, seed)
        self._quantizer = [quantizer.eval().requires_grad_(False)]  # a list: not a submodule
        self._noise = eval_noise

    def targets(self, batch) -> torch.Tensor:
        quantizer = self._quantizer[0]
        if next(quantizer.parameters()).device != self.device:
            quantizer.to(self.device)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            return quantizer.codes(batch)

    def train_loss(self, batch):
        return self.net.pretraining_loss(batch, self.targets(batch), self._generator)["loss"]

    def _start(self) -> None:
        self._sums = [0.0, 0.0, 0.0]

    @torch.no_grad()
    def _step(self, batch) -> None:
        noise = self._noise[self._split][batch["index"].cpu()].to(self.device)
        out = self.net.pretraining_loss(batch, self.targets(batch), noise=noise)
        k = int(out["masked"])
        s = self._sums
        self._sums = [s[0] + float(out["loss"]) * k, s[1] + float(out["accuracy"]) * k, s[2] + k]

    def _finish(self, stage: str) -> None:
        loss, acc, n = reduce_sum(self, self._sums)
        values = {"masked_loss": loss / max(n, 1), "masked_accuracy": acc / max(n, 1)}
        self.results[STAGE_SPLIT[stage]] = values
        self.log(f"{stage}/masked_loss", values["masked_loss"], prog_bar=True)
        self.log(f"{stage}/masked_accuracy", values["masked_accuracy"])


class ProbeModule(pl.LightningModule):
    """The linear probe of one label fraction: a linear head on frozen CLS features, BCE, AdamW with the model's
    per-step learning rates (the same schedule as pretraining, :func:`recx.ecg.recipe.lr_schedule`), validation macro
    AUROC every epoch; the head of the best validation epoch is kept in memory (``best_state``, no checkpoint files),
    and ``test`` reports its macro AUROC. A NaN validation AUROC (a split with one class per label) never selects."""

    def __init__(self, head: torch.nn.Module, m: DictConfig, n_train: int) -> None:
        super().__init__()
        self.head = head
        self.m = OmegaConf.to_container(m, resolve=True)
        self.n_train = int(n_train)
        self.best_auroc, self.best_state = -1.0, None
        self.results: dict[str, float] = {}
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def configure_optimizers(self):
        from recx.ecg.recipe import optimiser

        return optimiser(self.head.parameters(), self.m, -(-self.n_train // int(self.m["batch_size"])))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.binary_cross_entropy_with_logits(self.head(x), y)

    def _collect(self, batch) -> None:
        x, y = batch
        self._scores.append(torch.sigmoid(self.head(x)).detach().cpu())
        self._labels.append(y.detach().cpu())

    def _auroc(self) -> float:
        from recx.metrics.classification import macro_auroc

        if not self._scores:
            return float("nan")
        auc = macro_auroc(torch.cat(self._scores), torch.cat(self._labels))
        self._scores, self._labels = [], []
        return auc

    def validation_step(self, batch, batch_idx):
        self._collect(batch)

    def test_step(self, batch, batch_idx):
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        auc = self._auroc()
        if auc == auc and auc > self.best_auroc:
            self.best_auroc = auc
            self.best_state = {k: v.detach().clone() for k, v in self.head.state_dict().items()}

    def on_test_epoch_end(self) -> None:
        self.results["test_auroc"] = self._auroc()


def eval_noise(data) -> dict[str, torch.Tensor]:
    """The evaluation masks' noise: one fixed row per sentence (seed 0), the same at every evaluation and batching."""
    g = torch.Generator().manual_seed(0)
    return {s: torch.rand(getattr(data, s).mask.shape, generator=g) for s in ("valid", "test")}


def conventions(cfg: DictConfig, data) -> dict[str, Any]:
    return {
        "auroc": "macro over label columns (sklearn roc_auc_score average='macro'); columns with one class skipped",
        "label_fraction": "a seeded random share of the training sentences; validation and test always full",
        "selection": "validation only (reconstruction MSE, masked loss, probe AUROC); test never selects",
        "padding": "padding tokens are masked out of attention and never masked/predicted (differs from the "
                   "public code)",
        "evaluation_masks": "HeartLang's validation/test masks come from a fixed per-sentence noise table (seed 0)",
        "optimisation": {k: (OmegaConf.to_container(cfg.model[k], resolve=True) if OmegaConf.is_config(cfg.model[k])
                             else cfg.model[k]) for k in ("lr", "min_lr", "warmup_epochs", "schedule", "betas",
                                                          "epochs", "patience", "batch_size") if k in cfg.model},
        "tokenizer": {"used_channels": data.meta.get("used_channels"), "lead_ids": "used_channels[i] + 1",
                      "bandpass": data.meta.get("bandpass"), "detector": data.meta.get("detector")},
    }


def task(cfg: DictConfig, dm: ECGDataModule, life) -> Trainable | Evaluation:
    from recx.ecg import recipe
    from recx.ecg.models import VQHBR, HeartLang

    m, data, name = cfg.model, dm.data, cfg.model.name
    if name == "heartlang_probe":
        return Evaluation(run=lambda: recipe.run_probe(cfg, data, life.run_dir, life.log),
                          conventions=conventions(cfg, data))
    extra: dict[str, Any] = {}
    torch.manual_seed(int(cfg.seed))
    if name == "vqhbr":
        net = VQHBR(**recipe.size_args(m.size, "vqhbr"), beta=float(m.beta))
        module = VQHBRModule(net, m, len(data.train), int(cfg.seed))
    elif name == "heartlang":
        ckpt = (cfg.get("tokenizer") or {}).get("ckpt")
        if not ckpt:
            raise ConfigError("HeartLang pretraining needs the trained heartbeat quantizer", field="tokenizer.ckpt",
                              fix="run `recx train model=vqhbr dataset=...` and pass tokenizer.ckpt=<its best.ckpt>")
        quantizer, q_cfg = recipe.load_model(ckpt, "vqhbr")
        if int(q_cfg.size.n_codes) != int(m.size.n_codes):
            raise ConfigError(f"the quantizer has {q_cfg.size.n_codes} codes, HeartLang's head {m.size.n_codes}",
                              field="model/size", fix="use the same model/size for both")
        torch.manual_seed(int(cfg.seed))
        net = HeartLang(**recipe.size_args(m.size, "heartlang"), dropout=float(m.dropout),
                        mask_ratio=float(m.mask_ratio))
        module = HeartLangModule(net, quantizer, m, len(data.train), int(cfg.seed), eval_noise(data))
        extra = {"tokenizer": str(ckpt)}
    else:
        raise ConfigError(f"unknown ECG model '{name}'", field="model", fix="vqhbr, heartlang or heartlang_probe")
    module.recx_extra = extra
    patience = m.get("patience")
    return Trainable(module=module, monitor=f"val/{module.monitor}", mode="min", max_epochs=int(m.epochs),
                     patience=None if patience is None else int(patience), net=net,
                     report=lambda module, dm: {"n_parameters": count_parameters(net), **extra},
                     conventions=conventions(cfg, data))


FAMILY = Family(name="ecg", metric="ecg", task=task, datamodule=ECGDataModule, data_stats=lambda dm: dm.data.stats(),
                ddp=lambda cfg: cfg.model.name != "heartlang_probe")
