"""``recx eval lis`` and ``recx eval metric=feature_quality``: top-N commands that score files, checkpoints or
popularity outside a training run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recx.errors import CheckpointError, ConfigError
from recx.runtools import check_hardware, construct, load_checkpoint, quiet_lightning, write_json
from recx.topn.family import build_datamodule, build_module, build_net, lis_settings


# ----------------------------------------------------------------------------------------------------------- eval lis
def evaluate_lis(cfg: DictConfig) -> dict[str, Any]:
    """``recx eval lis``: AIS/LIS from files, against a checkpoint's recommender (``ckpt=``) or popularity.

    With a checkpoint, its run's dataset, metric settings and model are used (exactly what its LIS callback saw);
    ``preference=`` / ``representation=`` choose what to measure. Writes ``metrics.json`` with the ``lis`` block.
    """
    import lightning.pytorch as pl
    import torch

    from recx.callbacks.lis import feature_loader
    from recx.console import print_lis
    from recx.lis import leakage_report, popularity_scores

    quiet_lightning()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_hardware(cfg.hardware)
    run_cfg, net, state = cfg, None, None
    if cfg.get("ckpt"):
        ckpt = load_checkpoint(cfg.ckpt)
        run_cfg = OmegaConf.create(ckpt["recx"]["config"])
        run_cfg.paths.data_dir = cfg.paths.data_dir
        state = ckpt["state_dict"]
    if run_cfg.dataset.get("family") != "topn":
        raise ConfigError(f"LIS scores top-N recommenders; dataset '{run_cfg.dataset.name}' is a "
                          f"{run_cfg.dataset.get('family')} dataset", field="dataset",
                          fix="choose a top-N dataset (synthetic_mm, ml100k, amazon_baby, ...)")
    pl.seed_everything(int(run_cfg.get("seed", 0)), verbose=False)
    dm = build_datamodule(run_cfg) if state is not None else construct(
        run_cfg.dataset.datamodule, source=construct(run_cfg.dataset.source), split=construct(run_cfg.dataset.split),
        data_dir=run_cfg.paths.data_dir)
    dm.prepare_data()
    dm.setup("test")
    device = torch.device("cuda" if cfg.hardware.accelerator in ("gpu", "cuda") else "cpu")
    if state is not None:
        net = build_net(run_cfg.model, dm.data, run_cfg.get("plugin"))
        module = build_module(run_cfg, net)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the model: {str(exc).splitlines()[0]}",
                                  path=cfg.ckpt, fix="evaluate with the data the model was trained on") from exc
        net = net.to(device).eval()
        base, base_name = net.score, run_cfg.model.name
    else:
        base, base_name = popularity_scores(dm.data, device), "popularity"
    settings = lis_settings(run_cfg)
    settings["representations"] = list(OmegaConf.to_container(cfg.representation, resolve=True)) \
        if OmegaConf.is_list(cfg.representation) else [str(cfg.representation)]
    settings["preferences"] = list(OmegaConf.to_container(cfg.preference, resolve=True)) \
        if OmegaConf.is_list(cfg.preference) else [str(cfg.preference)]
    if state is None and "model" in settings["representations"]:
        settings["representations"].remove("model")  # no trained model: nothing to take item vectors from
    started = time.perf_counter()
    with torch.no_grad():
        lis = leakage_report(dm.data, base, net=net, load_feature=feature_loader(dm), device=device, **settings)
    lis["wall_time_s"] = round(time.perf_counter() - started, 3)
    results = {"status": "completed", "task": "lis", "recommender": base_name, "dataset": run_cfg.dataset.name,
               "checkpoint": str(cfg.ckpt) if cfg.get("ckpt") else None, "lis": lis}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(run_dir / "metrics.json", results)
    print_lis(lis, title=f"LIS / AIS on {run_cfg.dataset.name} (recommender: {base_name})")
    console_path(run_dir)
    return results


def console_path(run_dir: Path) -> None:
    from recx.console import console

    console().print(f"run folder: {run_dir}", markup=False)


# ------------------------------------------------------------------------------------------------- feature quality
def feature_sets(specs, data, load_feature, modalities: list[str]) -> dict[str, dict[str, Any]]:
    """Feature-set specs → name → {modality: [n_items, d]}: ``features`` (all modalities together),
    ``feature:<m>``, or a vectors file (one set)."""
    from recx.lis.representation import load_vectors_file

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        spec = str(spec)
        if spec == "features":
            if not modalities:
                raise ConfigError(f"dataset '{data.name}' declares no modalities", field="features",
                                  fix="give feature:<modality> or a file instead")
            out["+".join(modalities)] = {m: load_feature(m) for m in modalities}
        elif spec.startswith("feature:"):
            name = spec.split(":", 1)[1]
            out[name] = {name: load_feature(name)}
        elif Path(spec).suffix in (".npy", ".npz") or Path(spec).exists():
            out[Path(spec).stem] = {Path(spec).stem: load_vectors_file(spec, data)[0]}
        else:
            raise ConfigError(f"unknown feature set '{spec}'", field="features",
                              fix="use features, feature:<modality>, or a path to an .npy/.npz of item vectors")
    return out


def evaluate_feature_quality(cfg: DictConfig) -> dict[str, Any]:
    """``recx eval metric=feature_quality``: zero-shot, item-CF and masked-modality rankings of feature sets."""
    from recx.callbacks.lis import feature_loader
    from recx.console import print_feature_quality
    from recx.lis.feature_quality import feature_quality

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.dataset.get("family") != "topn":
        raise ConfigError(f"feature quality ranks items for users; dataset '{cfg.dataset.name}' is a "
                          f"{cfg.dataset.get('family')} dataset", field="dataset", fix="choose a top-N dataset")
    dm = construct(cfg.dataset.datamodule, source=construct(cfg.dataset.source), split=construct(cfg.dataset.split),
                   data_dir=cfg.paths.data_dir)
    dm.prepare_data()
    dm.setup("test")
    specs = OmegaConf.to_container(cfg.features, resolve=True) if OmegaConf.is_list(cfg.features) else [cfg.features]
    sets = feature_sets(specs, dm.data, feature_loader(dm), list(cfg.dataset.get("modalities") or []))
    started = time.perf_counter()
    reports = {name: feature_quality(dm.data, features, ks=list(cfg.metric.ks), knn_k=int(cfg.knn_k),
                                     mask_ratio=float(cfg.mask_ratio), seed=int(cfg.seed), split=str(cfg.split),
                                     mask_valid_at_test=bool(cfg.metric.get("mask_valid_at_test", True)),
                                     memory_budget_mb=cfg.metric.get("memory_budget_mb", 256))
               for name, features in sets.items()}
    results = {"status": "completed", "task": "feature_quality", "dataset": cfg.dataset.name,
               "feature_quality": reports, "wall_time_s": round(time.perf_counter() - started, 3)}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(run_dir / "metrics.json", results)
    print_feature_quality(reports, title=f"feature quality on {cfg.dataset.name} ({cfg.split})")
    console_path(run_dir)
    return results
