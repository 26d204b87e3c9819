"""What every family and the run life share, below both: building ``_target_`` nodes, hardware checks, JSON and
checkpoint I/O, Lightning's console chatter.

Family packages import these from here, never from :mod:`recx.run` or :mod:`recx.cli` (which import the families
through the registry, :mod:`recx.families`), so the import graph has no circle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recx.errors import CheckpointError, ConfigError, TrainingError


def construct(node: Any, **runtime: Any):
    """Instantiate a ``_target_`` config node, passing ``runtime`` objects (data, sources) as they are.

    Hydra's ``instantiate(cfg, **kwargs)`` would merge the kwargs into the config first, turning dataclass objects
    such as :class:`~recx.data.interactions.InteractionData` into config nodes; here they bypass the config.
    Nested nodes are passed as plain dicts (a wrapper model such as MOTOR builds its own backbone from one).
    """
    from hydra.utils import get_object

    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = params.pop("_target_")
    return get_object(target)(**params, **runtime)  # a class or a factory function


def model_class(model_cfg: DictConfig):
    from hydra.utils import get_class

    try:
        return get_class(model_cfg._target_)
    except Exception as exc:  # noqa: BLE001 - hydra wraps import errors in several types
        raise ConfigError(f"cannot import model class '{model_cfg._target_}'", field="model._target_",
                          fix="check the class path in conf/model/<name>.yaml") from exc


def check_hardware(hardware: DictConfig) -> str:
    """Refuse a GPU config without CUDA; set torch's threads (``hardware.num_threads``: an integer, ``auto`` =
    :mod:`recx.threads`, null = torch's default). Returns the thread line for the run's log."""
    import torch

    from recx.threads import apply_threads

    if hardware.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("hardware asks for a GPU but torch sees no CUDA device", field="hardware.accelerator",
                          fix="use hardware=cpu (the installed torch is the CPU build unless you changed it)")
    return apply_threads(hardware.get("num_threads"), processes=cpu_processes(hardware))


def cpu_processes(hardware: DictConfig) -> int:
    """How many CPU processes this run starts on this machine (DDP on CPU: ``devices``; else 1)."""
    devices = hardware.get("devices", 1)
    if str(hardware.get("accelerator", "cpu")) == "cpu" and "ddp" in str(hardware.get("strategy", "")) \
            and str(devices).isdigit():
        return max(1, int(devices))
    return 1


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process started (Linux ``/proc``; None elsewhere): a run's start-up cost."""
    import os
    import time

    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5), after pid and (comm)
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return round(time.time() - (boot + started_ticks / os.sysconf("SC_CLK_TCK")), 2)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def is_global_zero() -> bool:
    """False in the extra processes of a DDP run (Lightning's launcher sets their rank in the environment)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def quiet_lightning() -> None:
    """Lightning's INFO chatter (accelerator lines, checkpoint restores, tips) stays in the log file, off the console."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*configure_optimizers. returned .None.*", ".*training_step. returned .None.*",
                    ".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*isinstance.treespec, LeafSpec.*",
                    ".*Checkpoint directory .* exists and is not empty.*",
                    ".*Sparse CSR tensor support is in beta.*", ".*Sparse invariant checks are implicitly disabled.*"):
        warnings.filterwarnings("ignore", message=pattern)


def write_json(path: Path, payload: dict) -> None:
    from recx.data.interactions import atomic_write

    try:
        atomic_write(path, lambda f: f.write(json.dumps(payload, indent=2, default=str).encode()))
    except OSError as exc:  # a full disk or a read-only folder: the previous file, if any, is intact
        raise TrainingError(f"cannot write {path} ({exc.strerror or exc})", path=path,
                            fix="free disk space (or point RECX_OUTPUT_DIR elsewhere) and run again") from None


#: model keys added after checkpoints of that model existed, with the value that gives what the code did before (their
#: new default differs): a checkpoint whose config lacks the key is rebuilt with this value, so ``recx eval`` scores
#: it as it was trained. AlignRec (issue 19): the released code's defaults replaced recx's clamped kNN and Xavier init.
EARLIER_BEHAVIOUR: dict[str, dict[str, Any]] = {
    "alignrec": {"knn_negatives": "clamp", "linear_init": "xavier", "reg_batch_size": None},
}


def load_checkpoint(path: str | Path) -> dict:
    """A recx checkpoint (weights + the run config it was trained with), with keys added since then filled with their
    earlier behaviour (:data:`EARLIER_BEHAVIOUR`); a CheckpointError for a missing, truncated or foreign file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path, fix="pass ckpt=<run>/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle error, wrong format...
        raise CheckpointError(f"checkpoint is unreadable ({exc.__class__.__name__})", path=path,
                              fix="it is truncated or not a recx checkpoint; use another (e.g. last.ckpt)") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or not (ckpt.get("recx") or {}).get("config"):
        raise CheckpointError("not a recx checkpoint (no recx run config inside)", path=path,
                              fix="pass a checkpoint written by `recx train`")
    model = ckpt["recx"]["config"].get("model")
    if isinstance(model, dict):
        for key, value in EARLIER_BEHAVIOUR.get(model.get("name"), {}).items():
            model.setdefault(key, value)
    return ckpt


def save_checkpoint(path: str | Path, model, cfg: DictConfig, extra: dict | None = None) -> None:
    """A recx checkpoint outside Lightning (families with their own loops): weights + the resolved run config
    (+ ``extra`` facts such as the number of skills), written atomically, readable by :func:`load_checkpoint`."""
    import torch

    from recx.data.interactions import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": model.state_dict(), "recx": {"config": OmegaConf.to_container(cfg, resolve=True),
                                                          "format": 1, **(extra or {})}}
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except OSError as exc:  # a full disk: the previous checkpoint is intact (temporary file + rename)
        kept = f"; the previous {path.name} is intact" if path.is_file() else ""
        raise TrainingError(f"cannot write the checkpoint {path} ({exc.strerror or exc}){kept}", path=path,
                            fix="free disk space (or point RECX_OUTPUT_DIR elsewhere) and run again") from None


def load_checkpoint_of(path: str | Path, model: str, label: str | None = None) -> tuple[dict, dict]:
    """``(checkpoint, its model config)`` when ``path`` is a recx checkpoint of ``model``; a CheckpointError naming
    what it holds otherwise (a DKT where a quantizer is expected, ...)."""
    ckpt = load_checkpoint(path)
    model_cfg = ckpt["recx"]["config"].get("model", {})
    if model_cfg.get("name") != model:
        raise CheckpointError(f"not a {label or model} checkpoint (model '{model_cfg.get('name')}')", path=path,
                              fix=f"pass the checkpoints/best.ckpt of a `recx train model={model}` run")
    return ckpt, model_cfg


def net_state(ckpt: dict, prefix: str = "net.") -> dict:
    """The plain ``nn.Module`` weights inside a Lightning checkpoint of a family module (``self.net``)."""
    return {k.removeprefix(prefix): v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


class RecxCheckpoint:
    """LightningModule mixin: every checkpoint carries the resolved run config (``recx_config``, set by the run life)
    and the family's facts (``recx_extra``: the number of skills, the tokenizer path, ...), so that ``recx eval`` and
    the next step of a pipeline rebuild the model from the checkpoint alone."""

    recx_config: dict | None = None
    recx_extra: dict | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["recx"] = {"config": self.recx_config, "format": 1, **(self.recx_extra or {})}


def reduce_sum(module, values: list[float]) -> list[float]:
    """Sums over the processes of a DDP run (as they are in one process)."""
    import torch

    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size <= 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=module.device)
    return trainer.strategy.reduce(t, reduce_op="sum").tolist()


def gather_cat(module, tensor):
    """The concatenation of ``tensor`` over the processes of a DDP run (shares may differ in length)."""
    import torch
    import torch.distributed as dist

    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size <= 1:
        return tensor
    parts: list = [None] * trainer.world_size
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def model_reports(net) -> dict[str, Any]:
    """What a model reports about itself: item-side parameters (ID table vs tokens), tokenizer distortion, ..."""
    from torch import nn

    out: dict[str, Any] = {}
    if hasattr(net, "item_parameter_count"):
        out["n_item_parameters"] = net.item_parameter_count()
    elif isinstance(getattr(net, "item_embedding", None), nn.Embedding):
        out["n_item_parameters"] = net.item_embedding.weight.numel()
    if hasattr(net, "tokenizer_report"):
        out["tokenizer"] = net.tokenizer_report()
    if hasattr(net, "feature_report"):
        out["features"] = net.feature_report()
    if hasattr(net, "propensities"):
        out["learned_propensity"] = [round(float(p), 4) for p in net.propensities()]
    return out
