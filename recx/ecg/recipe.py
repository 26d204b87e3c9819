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
from recx.metrics.classification import macro_auroc
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


def optimiser(params, m: DictConfig, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, np.ndarray]:
    """AdamW with the model config's ``lr``, ``weight_decay``, ``betas``, and its per-step learning rates."""
    betas = tuple(float(b) for b in m.get("betas", (0.9, 0.999)))
    opt = torch.optim.AdamW(params, lr=float(m.lr), weight_decay=float(m.weight_decay), betas=betas)
    lrs = lr_schedule(float(m.lr), float(m.get("min_lr", 0.0)), int(m.epochs), steps_per_epoch,
                      int(m.get("warmup_epochs", 0)), str(m.get("schedule", "constant")))
    return opt, lrs


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


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
    """One linear probe on ``fraction`` of the training sentences; test AUROC at the best validation epoch."""
    g = torch.Generator().manual_seed(seed)
    n = features["train"].shape[0]
    take = torch.randperm(n, generator=g)[: max(1, round(fraction * n))]
    x, y = features["train"][take], labels["train"][take]
    torch.manual_seed(seed)
    head = LinearProbe(x.shape[1], y.shape[1])
    opt, lrs = optimiser(head.parameters(), m, -(-x.shape[0] // int(m.batch_size)))
    best, step_no = (-1.0, None), 0
    for _ in range(int(m.epochs)):
        for index in torch.randperm(x.shape[0], generator=g).split(int(m.batch_size)):
            set_lr(opt, float(lrs[min(step_no, len(lrs) - 1)]))
            step_no += 1
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x[index]), y[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            auc = macro_auroc(torch.sigmoid(head(features["valid"])), labels["valid"])
        if auc == auc and auc > best[0]:
            best = (auc, {k: v.clone() for k, v in head.state_dict().items()})
    if best[1] is not None:
        head.load_state_dict(best[1])
    with torch.no_grad():
        test = macro_auroc(torch.sigmoid(head(features["test"])), labels["test"])
    return {"train_sentences": int(x.shape[0]), "valid_auroc": best[0], "test_auroc": test}


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
