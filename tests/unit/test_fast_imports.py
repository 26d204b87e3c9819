"""recx.fast_imports: in a fresh process, torchmetrics (through Lightning) no longer imports transformers, matplotlib
or scipy.signal, the flags say why, scipy itself still works, and the opt-out restores torchmetrics' own checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from recx.fast_imports import install
installed = install()
import lightning.pytorch  # imports torchmetrics
from torchmetrics.utilities import imports
signal = "scipy.signal" in sys.modules
from lightning_utilities.core.imports import package_available
import torchmetrics
from torchmetrics.utilities.imports import _SCIPY_AVAILABLE
import scipy.signal  # recx's ECG filters import it themselves: still importable
print(json.dumps({"installed": installed, "transformers": "transformers" in sys.modules,
                  "matplotlib": "matplotlib" in sys.modules, "signal": signal,
                  "scipy_checks": [package_available("scipy"), bool(_SCIPY_AVAILABLE)],
                  "restored": torchmetrics.package_available is package_available,
                  "flag": bool(imports._TRANSFORMERS_GREATER_EQUAL_4_4),
                  "message": imports._MATPLOTLIB_AVAILABLE.message}))
"""


def probe(env_extra: dict) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_torchmetrics_skips_the_optional_packages_and_the_opt_out_restores_them():
    pytest.importorskip("transformers")
    fast = probe({})
    assert fast["installed"] and not fast["transformers"] and not fast["matplotlib"] and not fast["flag"]
    assert not fast["signal"] and fast["scipy_checks"] == [True, True] and fast["restored"]
    assert "recx.fast_imports" in fast["message"]
    full = probe({"RECX_FULL_TORCHMETRICS": "1"})
    assert not full["installed"] and full["transformers"] and full["flag"] and full["signal"]


def test_too_late_is_a_no_op():
    import torchmetrics  # noqa: F401 - already imported in this process

    from recx.fast_imports import install

    assert install() is False
