"""User-facing errors.

A :class:`RecxError` is a mistake the user can fix (a missing file, a bad field, an impossible pairing). The CLI prints
it as one readable message and exits with status 2; any other exception is a bug in recx and keeps its traceback.
Messages name the file and/or field at fault and say what to do about it.
"""

from __future__ import annotations

from pathlib import Path

EXIT_USER_ERROR = 2


class RecxError(Exception):
    """An error the user can fix: what is wrong, where (file/field), and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        path: str | Path | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.fix = fix
        self.path = str(path) if path is not None else None
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.path:
            where.append(f"file {self.path}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = self.message
        if where:
            text = f"{text} ({', '.join(where)})"
        if self.fix:
            text = f"{text}\n  fix: {self.fix}"
        return text


class DataError(RecxError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(RecxError):
    """The composed configuration is invalid (unknown choice, incompatible pair, bad value)."""


class CheckpointError(RecxError):
    """A checkpoint cannot be read or does not belong to recx."""


class TrainingError(RecxError):
    """Training stopped for a reason the user must act on (e.g. the loss became NaN)."""


def check_finite_loss(loss, epoch: int, step: int, fix: str) -> None:
    """Stop training with a TrainingError (its message names the epoch and step) when ``loss`` is NaN or inf."""
    import torch

    if not torch.isfinite(loss):
        raise TrainingError(f"the training loss became {loss.item()} at epoch {epoch}, step {step}", fix=fix)


def require_file(path: str | Path, *, what: str, fix: str) -> Path:
    """Return ``path`` as a Path if it exists, else raise a DataError naming it and the fix."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} not found", path=p, fix=fix)
    return p
