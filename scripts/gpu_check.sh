#!/usr/bin/env bash
# Prove the CUDA path (hardware=gpu, bf16, ddp) in one prepared run of a few minutes: bash scripts/gpu_check.sh [OUT]
#
# Needs a Python whose torch is a CUDA build, with recx and its dependencies importable: `make install` on a GPU
# machine with internet does it (PyPI's torch==2.13.0 for Linux is the CUDA build there). Without recx installed, this
# script tries `pip install --no-deps -e .` into $PYTHON (dependencies must already be there, e.g. carried wheels).
# Writes OUT/gpu_check.{json,md} (default outputs/gpu_check/<time>); paste the table into the README with the card.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
OUT="${1:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch ' + torch.__version__ + ' sees no CUDA device'; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
if ! "$PYTHON" -c "import recx.cli, lightning, hydra" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-deps --ignore-requires-python -e . \
    || { echo "cannot import recx and its dependencies with $PYTHON: run make install first" >&2; exit 2; }
fi
"$PYTHON" scripts/gpu_check.py --out "$OUT" "${@:2}"
