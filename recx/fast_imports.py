"""Start-up: keep torchmetrics from importing optional packages recx never uses through it.

Lightning imports torchmetrics, and torchmetrics' ``__init__`` imports, when they are installed, ``transformers``
(for BERTScore) and ``matplotlib`` (for its plotting helpers): about 1 s of every ``recx`` process's ~5 s start-up on
this CPU, although recx uses neither through torchmetrics (recx imports transformers and matplotlib itself where it
needs them, untouched by this). torchmetrics decides with ``lightning_utilities`` ``RequirementCache`` objects in
``torchmetrics.utilities.imports``, which check once and keep ``available``; :func:`install` marks those few as
unavailable right after that module runs, before anything reads them. Nothing is patched when torchmetrics is already
imported, and ``RECX_FULL_TORCHMETRICS=1`` turns it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

MODULE = "torchmetrics.utilities.imports"
#: torchmetrics' flags for the optional packages it would import at start-up (recx uses none of their metrics)
SKIPPED = ("_TRANSFORMERS_AVAILABLE", "_TRANSFORMERS_GREATER_EQUAL_4_4", "_TRANSFORMERS_GREATER_EQUAL_4_10",
           "_MATPLOTLIB_AVAILABLE", "_SCIENCEPLOT_AVAILABLE")


class _SkipOptional(importlib.abc.MetaPathFinder):
    """Finds nothing itself; for :data:`MODULE` it wraps the real loader so the flags are set after it runs."""

    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            run(module)
            mark_unavailable(module)

        spec.loader.exec_module = exec_module
        return spec


def mark_unavailable(module) -> None:
    for name in SKIPPED:
        flag = getattr(module, name, None)
        if flag is not None and not hasattr(flag, "available"):  # not read yet
            flag.available = False
            flag.message = "not imported by recx (recx.fast_imports; RECX_FULL_TORCHMETRICS=1 restores it)"


def install() -> bool:
    """Arrange for :data:`SKIPPED` to read as unavailable; False when it is too late or turned off."""
    if os.environ.get("RECX_FULL_TORCHMETRICS") == "1" or MODULE in sys.modules or "torchmetrics" in sys.modules:
        return False
    if not any(isinstance(f, _SkipOptional) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipOptional())
    return True
