"""Small file helpers without heavy imports: files recx writes get the user's umask."""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process's umask (read by setting and restoring it; there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def use_umask(path: str | Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always mode 0600) the mode a plain ``open`` would: 0666 - umask."""
    os.chmod(path, 0o666 & ~current_umask())
