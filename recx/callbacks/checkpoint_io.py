"""Checkpoint writing that survives a full disk: Lightning's checkpoints go through :class:`SafeCheckpointIO`.

A checkpoint is written to a temporary file next to its target and renamed into place, so a write that fails (the
disk fills, the quota runs out) leaves the previous ``best.ckpt``/``last.ckpt`` intact; the failure stops the run with
a TrainingError that says so (exit 2) instead of an OSError traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from recx.errors import TrainingError


def write_checkpoint(payload: Any, path: str | Path) -> None:
    """``torch.save(payload)`` to ``path`` atomically; a TrainingError when the file system refuses the write."""
    from recx.data.interactions import atomic_write

    path = Path(path)
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except OSError as exc:
        kept = f"; the previous {path.name} is intact" if path.is_file() else ""
        raise TrainingError(f"cannot write the checkpoint {path} ({exc.strerror or exc}){kept}", path=path,
                            fix="free disk space (or point RECX_OUTPUT_DIR elsewhere), then continue with "
                                "resume=<run folder>") from None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, written through :func:`write_checkpoint` (temporary file + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        write_checkpoint(checkpoint, path)
