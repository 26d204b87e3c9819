"""``recx train model=vqhbr|heartlang`` and ``recx eval model=heartlang_probe``: the HeartLang pipeline.

Optimisation (:func:`fit`, :func:`probe`): AdamW with the model's ``betas``; ``schedule=cosine`` is the public code's
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
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from recx.ecg.data import ECGData, ECGSplit, prepare_ecg
from recx.ecg.models import VQHBR, HeartLang, LinearProbe
from recx.errors import ConfigError
from recx.metrics.classification import macro_auroc
from recx.run import save_checkpoint
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
    from recx.run import load_checkpoint_of

    ckpt, model_cfg = load_checkpoint_of(path, expected)
    model_cfg = OmegaConf.create(model_cfg)
    cls = VQHBR if expected == "vqhbr" else HeartLang
    model = cls(**size_args(model_cfg.size, expected), dropout=0.0)  # frozen: no dropout
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device or "cpu").eval(), model_cfg


@torch.no_grad()
def vq_eval(model: VQHBR, split: ECGSplit, batch_size: int, device: torch.device | None = None) -> dict[str, float]:
    model.eval()
    total, n, used = 0.0, 0, set()
    for b in batches(split, batch_size, device=device):
        out = model(b)
        k = int(b["mask"].sum())
        total, n = total + float(out["reconstruction"]) * k, n + k
        used.update(out["index"][b["mask"]].tolist())
    return {"reconstruction_mse": total / max(n, 1), "codes_used": len(used),
            "codebook_usage": len(used) / model.codebook.codes.shape[0]}


def fit(step: Callable[[dict], torch.Tensor], params, data: ECGData, m: DictConfig, evaluate: Callable[[], float],
        lower_is_better: bool, log: Callable[[str], None], seed: int, module: torch.nn.Module,
        device: torch.device | None = None) -> dict:
    """AdamW over the training sentences (per-step learning rates of :func:`lr_schedule`); early stopping after
    ``patience`` epochs without a better validation score (none when null); keep the best validation weights."""
    steps_per_epoch = -(-len(data.train) // int(m.batch_size))
    opt, lrs = optimiser(params, m, steps_per_epoch)
    patience = m.get("patience")
    g = torch.Generator().manual_seed(seed)
    best, best_state, history, waited, step_no = None, None, [], 0, 0
    for epoch in range(int(m.epochs)):
        tic = time.perf_counter()
        module.train()
        losses = []
        for b in batches(data.train, int(m.batch_size), g, device):
            set_lr(opt, float(lrs[min(step_no, len(lrs) - 1)]))
            step_no += 1
            loss = step(b)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 3.0)
            opt.step()
            losses.append(float(loss.detach()))
        score = evaluate()
        history.append({"epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1), "valid": score,
                        "lr": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - tic, 2)})
        log(f"epoch {epoch:3d} | loss {history[-1]['train_loss']:.4f} | valid {score:.4f} | "
            f"{time.perf_counter() - tic:.1f}s")
        better = best is None or (score < best if lower_is_better else score > best)
        if better:
            best, waited = score, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            waited += 1
            if patience is not None and waited >= int(patience):
                break
    module.load_state_dict(best_state)
    module.eval()
    return {"history": history, "best_epoch": min(history, key=lambda h: h["valid"] * (1 if lower_is_better else -1))
            ["epoch"]}


def train_vqhbr(cfg: DictConfig, data: ECGData, run_dir: Path, log) -> dict[str, Any]:
    m = cfg.model
    torch.manual_seed(int(cfg.seed))
    device = device_for(cfg.hardware)
    model = VQHBR(**size_args(m.size, "vqhbr"), beta=float(m.beta)).to(device)
    out = fit(lambda b: model(b)["loss"], list(model.parameters()), data, m,
              lambda: vq_eval(model, data.valid, int(m.batch_size), device)["reconstruction_mse"], True, log,
              int(cfg.seed), model, device)
    save_checkpoint(run_dir / "checkpoints" / "best.ckpt", model, cfg, {})
    return {"valid": vq_eval(model, data.valid, int(m.batch_size), device),
            "test": vq_eval(model, data.test, int(m.batch_size), device), **out,
            "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt")}


def train_heartlang(cfg: DictConfig, data: ECGData, run_dir: Path, log) -> dict[str, Any]:
    m = cfg.model
    ckpt = (cfg.get("tokenizer") or {}).get("ckpt")
    if not ckpt:
        raise ConfigError("HeartLang pretraining needs the trained heartbeat quantizer", field="tokenizer.ckpt",
                          fix="run `recx train model=vqhbr dataset=...` and pass tokenizer.ckpt=<its best.ckpt>")
    device = device_for(cfg.hardware)
    quantizer, q_cfg = load_model(ckpt, "vqhbr", device)
    if int(q_cfg.size.n_codes) != int(m.size.n_codes):
        raise ConfigError(f"the quantizer has {q_cfg.size.n_codes} codes, HeartLang's head {m.size.n_codes}",
                          field="model/size", fix="use the same model/size for both")
    torch.manual_seed(int(cfg.seed))
    model = HeartLang(**size_args(m.size, "heartlang"), dropout=float(m.dropout),
                      mask_ratio=float(m.mask_ratio)).to(device)
    g = torch.Generator().manual_seed(int(cfg.seed))

    @torch.no_grad()
    def evaluate(split: ECGSplit) -> dict[str, float]:
        model.eval()
        eg = torch.Generator().manual_seed(0)  # the same masks at every evaluation
        loss, acc, n = 0.0, 0.0, 0
        for b in batches(split, int(m.batch_size), device=device):
            out = model.pretraining_loss(b, quantizer.codes(b), eg)
            k = int(out["masked"])
            loss, acc, n = loss + float(out["loss"]) * k, acc + float(out["accuracy"]) * k, n + k
        return {"masked_loss": loss / max(n, 1), "masked_accuracy": acc / max(n, 1)}

    out = fit(lambda b: model.pretraining_loss(b, quantizer.codes(b), g)["loss"], list(model.parameters()), data, m,
              lambda: evaluate(data.valid)["masked_loss"], True, log, int(cfg.seed), model, device)
    save_checkpoint(run_dir / "checkpoints" / "best.ckpt", model, cfg, {"tokenizer": str(ckpt)})
    return {"valid": evaluate(data.valid), "test": evaluate(data.test), **out, "tokenizer": str(ckpt),
            "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt")}


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


def run(cfg: DictConfig) -> dict[str, Any]:
    from recx.console import console, print_metrics
    from recx.run import check_hardware, construct, write_json

    out = console()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    check_hardware(cfg.hardware)
    data = prepare_ecg(construct(cfg.dataset.source), cfg.paths.get("data_dir"),
                       log=lambda msg: out.print(msg, markup=False))

    def log(message: str) -> None:
        out.print(message, markup=False)

    started = time.perf_counter()
    name = cfg.model.name
    body = {"vqhbr": train_vqhbr, "heartlang": train_heartlang, "heartlang_probe": run_probe}[name](cfg, data,
                                                                                                   run_dir, log)
    results = {"status": "completed", "run_name": cfg.run_name, "model": name, "dataset": cfg.dataset.name,
               "seed": cfg.seed, **body, "data": data.stats(), "device": str(device_for(cfg.hardware)),
               "wall_time_s": round(time.perf_counter() - started, 2)}
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "auroc": "macro over label columns (sklearn roc_auc_score average='macro'); columns with one class skipped",
        "label_fraction": "a seeded random share of the training sentences; validation and test always full",
        "selection": "validation only (reconstruction MSE, masked loss, probe AUROC); test never selects",
        "padding": "padding tokens are masked out of attention and never masked/predicted (differs from the "
                   "public code)",
        "optimisation": {k: (OmegaConf.to_container(cfg.model[k], resolve=True) if OmegaConf.is_config(cfg.model[k])
                             else cfg.model[k]) for k in ("lr", "min_lr", "warmup_epochs", "schedule", "betas",
                                                          "epochs", "patience", "batch_size") if k in cfg.model},
        "tokenizer": {"used_channels": data.meta.get("used_channels"), "lead_ids": "used_channels[i] + 1",
                      "bandpass": data.meta.get("bandpass"), "detector": data.meta.get("detector")},
    })
    print_metrics(results, title=f"{cfg.run_name}", run_dir=run_dir)
    return results
