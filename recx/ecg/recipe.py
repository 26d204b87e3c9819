"""``recx train model=vqhbr|heartlang`` and ``recx eval model=heartlang_probe``: the HeartLang pipeline.

Training runs through Lightning (:mod:`recx.ecg.family`: the datamodule, ``VQHBRModule``, ``HeartLangModule``); this
module keeps what they and the probe share. Optimisation: AdamW with the model's ``betas``; ``schedule=cosine`` is the public code's
step-level schedule (:func:`lr_schedule`: a linear warm-up from 0 over ``warmup_epochs``, then cosine from ``lr`` down
to ``min_lr``), ``constant`` keeps ``lr``; ``patience`` stops early on the validation score (``null``: every epoch
runs); the best validation epoch's weights are kept. ``model/size=paper`` selects the paper's recipes,
``model/size=tiny`` short constant-lr CPU runs (``conf/model/size/``).

1. ``vqhbr``: trains the heartbeat quantizer on the training sentences (selected on validation reconstruction MSE);
   reports reconstruction MSE and **codebook usage** (distinct codes used on the validation sentences / codebook
   size); saves ``checkpoints/best.ckpt``.
2. ``heartlang`` (``tokenizer.ckpt=<vqhbr best.ckpt>``): masked ECG-sentence pretraining against the frozen
   quantizer's codes; reports masked-token loss and accuracy; saves ``checkpoints/best.ckpt``.
3. ``heartlang_probe`` (``backbone.ckpt=<heartlang best.ckpt>``, or none = a randomly initialised backbone: the
   "random features" reference): frozen CLS features, a linear head per ``label_fraction`` (a seeded sample of the
   training sentences; validation and test always full), BCE, the epoch with the best validation macro AUROC,
   test macro AUROC.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from recx.ecg.data import ECGData, ECGSplit
from recx.ecg.models import VQHBR, HeartLang, LinearProbe
from recx.errors import ConfigError
from recx.training import device_for, to_device


def size_args(size: DictConfig, kind: str) -> dict:
    s = OmegaConf.to_container(size, resolve=True)
    dim_head = int(s.get("dim_head", 64))
    if kind == "vqhbr":
        return {"dim": s["dim"], "encoder_depth": s["vq_encoder_depth"], "decoder_depth": s["vq_decoder_depth"],
                "heads": s["vq_heads"], "mlp": s["vq_mlp"], "n_codes": s["n_codes"], "code_dim": s["code_dim"],
                "dim_head": dim_head}
    return {"dim": s["dim"], "depth": s["depth"], "heads": s["heads"], "mlp": s["mlp"], "n_codes": s["n_codes"],
            "dim_head": dim_head}


SCHEDULES = ("constant", "cosine")


def lr_schedule(lr: float, min_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0,
                schedule: str = "cosine") -> np.ndarray:
    """The learning rate of every optimiser step ``[epochs · steps_per_epoch]``.

    ``cosine`` (the public code's step-level schedule): ``warmup_epochs · steps_per_epoch`` steps rising linearly from
    0 to ``lr`` (both ends included), then ``min_lr + ½ (lr − min_lr)(1 + cos(π i / n))`` for the remaining ``n``
    steps, ``i = 0 … n−1``. ``constant``: ``lr`` at every step."""
    total = max(int(epochs) * int(steps_per_epoch), 0)
    if schedule == "constant":
        return np.full(total, float(lr))
    if schedule != "cosine":
        raise ConfigError(f"unknown learning-rate schedule '{schedule}'", field="model.schedule",
                          fix=f"one of {', '.join(SCHEDULES)}")
    warm = min(int(warmup_epochs) * int(steps_per_epoch), total)
    ramp = np.linspace(0.0, float(lr), warm)
    n = total - warm
    cosine = float(min_lr) + 0.5 * (float(lr) - float(min_lr)) * (1 + np.cos(np.pi * np.arange(n) / max(n, 1)))
    return np.concatenate([ramp, cosine])


def optimiser(params, m, steps_per_epoch: int) -> dict:
    """Lightning's ``configure_optimizers`` answer: AdamW with the model config's ``lr``, ``weight_decay``, ``betas``,
    and a step-interval scheduler that sets each step's rate from :func:`lr_schedule` (the last one after the end)."""
    m = OmegaConf.to_container(m, resolve=True) if isinstance(m, DictConfig) else m
    lrs = lr_schedule(float(m["lr"]), float(m.get("min_lr") or 0.0), int(m["epochs"]), steps_per_epoch,
                      int(m.get("warmup_epochs") or 0), str(m.get("schedule", "constant")))
    betas = tuple(float(b) for b in m.get("betas") or (0.9, 0.999))
    opt = torch.optim.AdamW(params, lr=float(m["lr"]), weight_decay=float(m["weight_decay"]), betas=betas)
    last = max(len(lrs) - 1, 0)
    factors = [float(x) / float(m["lr"]) for x in lrs] or [1.0]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: factors[min(step, last)])
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def batches(split: ECGSplit, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device | None = None):
    order = torch.randperm(len(split), generator=generator) if generator is not None else torch.arange(len(split))
    for index in order.split(batch_size):
        yield to_device(split.batch(index), device)


def load_model(path: str | Path, expected: str, device: torch.device | None = None):
    from recx.runtools import load_checkpoint_of, net_state

    ckpt, model_cfg = load_checkpoint_of(path, expected)
    model_cfg = OmegaConf.create(model_cfg)
    cls = VQHBR if expected == "vqhbr" else HeartLang
    model = cls(**size_args(model_cfg.size, expected), dropout=0.0)  # frozen: no dropout
    model.load_state_dict(net_state(ckpt) or ckpt["state_dict"])  # a Lightning checkpoint, or the old format
    return model.to(device or "cpu").eval(), model_cfg


@torch.no_grad()
def cls_features(backbone: HeartLang, split: ECGSplit, batch_size: int = 64,
                 device: torch.device | None = None) -> torch.Tensor:
    """The frozen CLS vectors of a split, on the CPU (the probe is tiny)."""
    backbone.eval()
    return torch.cat([backbone.features(b).cpu() for b in batches(split, batch_size, device=device)]) \
        if len(split) else torch.zeros(0, backbone.backbone.dim)


def probe(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], fraction: float, m: DictConfig,
          seed: int) -> dict[str, float]:
    """One linear probe on ``fraction`` of the training sentences (a seeded sample; validation and test full), trained
    by a Lightning Trainer on the CPU (:class:`recx.ecg.family.ProbeModule`); test AUROC at the best validation
    epoch. No checkpoint files, no logger: the best head is kept in memory."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from recx.ecg.family import ProbeModule
    from recx.runtools import quiet_lightning

    quiet_lightning()
    g = torch.Generator().manual_seed(seed)
    n = features["train"].shape[0]
    take = torch.randperm(n, generator=g)[: max(1, round(fraction * n))]
    x, y = features["train"][take], labels["train"][take]
    torch.manual_seed(seed)
    module = ProbeModule(LinearProbe(x.shape[1], y.shape[1]), m, x.shape[0])
    train = DataLoader(TensorDataset(x, y), batch_size=int(m.batch_size), shuffle=True, generator=g)

    def full(split: str) -> DataLoader:
        return DataLoader(TensorDataset(features[split], labels[split]), batch_size=max(len(features[split]), 1))

    trainer = pl.Trainer(max_epochs=int(m.epochs), accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, check_val_every_n_epoch=1)
    trainer.fit(module, train, full("valid"))
    if module.best_state is not None:
        module.head.load_state_dict(module.best_state)
    trainer.test(module, full("test"), verbose=False)
    return {"train_sentences": int(x.shape[0]), "valid_auroc": module.best_auroc,
            "test_auroc": module.results.get("test_auroc", float("nan"))}


def run_probe(cfg: DictConfig, data: ECGData, run_dir: Path, log) -> dict[str, Any]:
    m = cfg.model
    if not data.label_names:
        raise ConfigError(f"dataset '{data.name}' has no labels to probe", field="dataset",
                          fix="use a labelled dataset (ptbxl, synthetic_ecg)")
    ckpt = (cfg.get("backbone") or {}).get("ckpt")
    device = device_for(cfg.hardware)
    if ckpt:
        backbone, _ = load_model(ckpt, "heartlang", device)
    else:
        torch.manual_seed(int(cfg.seed))
        backbone = HeartLang(**size_args(m.size, "heartlang"), dropout=0.0).to(device).eval()
        log("backbone.ckpt not set: probing a randomly initialised backbone (the random-features reference)")
    tic = time.perf_counter()
    features = {s: cls_features(backbone, getattr(data, s), device=device) for s in ("train", "valid", "test")}
    labels = {s: getattr(data, s).labels for s in ("train", "valid", "test")}
    fractions = m.label_fraction if isinstance(m.label_fraction, (list, tuple)) or OmegaConf.is_list(
        m.label_fraction) else [m.label_fraction]
    results = {f"{float(f):g}": probe(features, labels, float(f), m, int(cfg.seed)) for f in fractions}
    for f, r in results.items():
        log(f"label fraction {f}: {r['train_sentences']} training sentences, valid macro AUROC "
            f"{r['valid_auroc']:.4f}, test {r['test_auroc']:.4f}")
    return {"valid": {f"auroc@{f}": r["valid_auroc"] for f, r in results.items()},
            "test": {f"auroc@{f}": r["test_auroc"] for f, r in results.items()}, "fractions": results,
            "backbone": str(ckpt) if ckpt else "random init", "feature_seconds": round(time.perf_counter() - tic, 2)}
