"""What makes a run reproducible, as pure functions: the base model's content hash, the
package versions that differ between two runs, and how far two loss curves lie apart.

A run's record (run.jsonl -> runs) keeps its exact config, dataset version and hash, package
versions and `base_model_hash`; a re-run (backend.train.actions.rerun_run) trains again from
that record alone and `curve_diff` compares the two curves step by step.

    >>> curve_diff({1: 2.0, 2: 1.5}, {1: 2.0, 2: 1.50004})["max_loss_diff"] < 1e-4
    True
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

RERUN_TOLERANCE = 1e-4  # per-step loss difference a CPU re-run is expected to stay within


@lru_cache(maxsize=16)
def _folder_hash(folder: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    root = Path(folder)
    for rel, _, _ in stamp:
        digest.update(rel.encode() + b"\0")
        with open(root / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def model_hash(base_model: str) -> str | None:
    """sha256 over the relative names and bytes of every file of a local model folder
    (hidden files aside), so a copy elsewhere hashes the same; None for a hub id. Cached per
    (folder, file sizes and mtimes) so the several run.jsonl rows of one run hash it once."""
    folder = Path(base_model).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    stamp = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    return _folder_hash(str(folder.resolve()), stamp)


def package_drift(recorded: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    """One warning per package whose version differs from the recorded run's.

    >>> package_drift({"torch": "2.1", "trl": "1.0"}, {"torch": "2.2", "trl": "1.0"})
    ['torch 2.1 -> 2.2']
    """
    if not recorded:
        return ["the run recorded no package versions; cannot check them"]
    return [
        f"{name} {recorded.get(name, 'missing')} -> {now.get(name, 'missing')}"
        for name in sorted(set(recorded) | set(now))
        if recorded.get(name) != now.get(name)
    ]


def curve_diff(original: dict[int, float], rerun: dict[int, float]) -> dict[str, Any]:
    """Per-step comparison of two loss curves ({step: loss}): the largest absolute
    difference over the steps both logged, the step where it is, and the steps only one has.
    A NaN on one side and not the other counts as an infinite difference."""
    common = sorted(set(original) & set(rerun))
    worst, at = 0.0, None
    for step in common:
        a, b = original[step], rerun[step]
        if math.isnan(a) and math.isnan(b):
            continue
        d = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
        if at is None or d > worst:
            worst, at = d, step
    return {
        "max_loss_diff": worst if common else None,
        "at_step": at,
        "steps_compared": len(common),
        "only_original": sorted(set(original) - set(rerun)),
        "only_rerun": sorted(set(rerun) - set(original)),
    }
