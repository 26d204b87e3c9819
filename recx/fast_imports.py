"""Start-up: keep torchmetrics from importing optional packages recx never uses through it.

Lightning imports torchmetrics, and torchmetrics' ``__init__`` imports, when they are installed, ``transformers``
(for BERTScore) and ``matplotlib`` (for its plotting helpers): about 1 s of every ``recx`` process's ~5 s start-up on
this CPU, although recx uses neither through torchmetrics (recx imports transformers and matplotlib itself where it
needs them, untouched by this). torchmetrics decides with ``lightning_utilities`` ``RequirementCache`` objects in
``torchmetrics.utilities.imports``, which check once and keep ``available``; :func:`install` marks those few as
unavailable right after that module runs, before anything reads them. torchmetrics' own ``__init__`` also imports
``scipy.signal`` (another 0.5 s) only to add ``scipy.signal.hamming`` back for the SRMRpy audio metric; while that
``__init__`` runs, its ``package_available("scipy")`` answers False (for that caller only: every other check, and
scipy itself, are untouched; recx's ECG code imports ``scipy.signal`` where it filters). Nothing is patched when
torchmetrics is already imported, and ``RECX_FULL_TORCHMETRICS=1`` turns it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

MODULE = "torchmetrics.utilities.imports"
#: torchmetrics' flags for the optional packages it would import at start-up (recx uses none of their metrics)
SKIPPED = ("_TRANSFORMERS_AVAILABLE", "_TRANSFORMERS_GREATER_EQUAL_4_4", "_TRANSFORMERS_GREATER_EQUAL_4_10",
           "_MATPLOTLIB_AVAILABLE", "_SCIENCEPLOT_AVAILABLE",
           "_SCIPI_AVAILABLE")  # (sic) read only by torchmetrics' audio packages, for the scipy.signal.hamming patch


PACKAGE = "torchmetrics"
#: packages torchmetrics' ``__init__`` imports only to patch them for other libraries' sake (scipy.signal.hamming)
SKIPPED_PACKAGES = ("scipy",)


class _SkipOptional(importlib.abc.MetaPathFinder):
    """Finds nothing itself; for :data:`PACKAGE` and :data:`MODULE` it wraps the real loader (once each)."""

    def __init__(self) -> None:
        self.pending = {PACKAGE: without_compat_patches, MODULE: with_flags_unavailable}

    def find_spec(self, name, path, target=None):
        wrap = self.pending.pop(name, None)
        if wrap is None:
            return None
        sys.meta_path.remove(self)  # the real finders locate the module (no recursion into this finder)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if self.pending:  # back in front for the other module
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader.exec_module = wrap(spec.loader.exec_module)
        return spec


def with_flags_unavailable(run):
    def exec_module(module) -> None:
        run(module)
        mark_unavailable(module)

    return exec_module


def without_compat_patches(run):
    """torchmetrics' ``__init__`` with ``package_available`` answering False for :data:`SKIPPED_PACKAGES` when
    torchmetrics' ``__init__`` itself asks."""

    def exec_module(module) -> None:
        import lightning_utilities.core.imports as checks

        original = checks.package_available

        def package_available(name: str) -> bool:
            if name in SKIPPED_PACKAGES and sys._getframe(1).f_globals.get("__name__") == PACKAGE:
                return False
            return original(name)

        checks.package_available = package_available
        try:
            run(module)
        finally:
            checks.package_available = original
            if getattr(module, "package_available", None) is package_available:
                module.package_available = original

    return exec_module


def mark_unavailable(module) -> None:
    for name in SKIPPED:
        flag = getattr(module, name, None)
        if flag is not None and not hasattr(flag, "available"):  # not read yet
            flag.available = False
            flag.message = "not imported by recx (recx.fast_imports; RECX_FULL_TORCHMETRICS=1 restores it)"


def install() -> bool:
    """Arrange for :data:`SKIPPED` to read as unavailable and for torchmetrics' ``__init__`` to skip
    :data:`SKIPPED_PACKAGES`; False when it is too late or turned off."""
    if os.environ.get("RECX_FULL_TORCHMETRICS") == "1" or MODULE in sys.modules or PACKAGE in sys.modules:
        return False
    if not any(isinstance(f, _SkipOptional) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipOptional())
    return True
