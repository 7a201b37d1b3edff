"""The workspace folder layout, in one place.

studio.duckdb          the database (one process holds it)
jobs/<id>/             one folder per job: spec.json status.json log.txt events.jsonl ...
queue/pending|running  queue markers, moved between folders with atomic renames
runs/<id>/             training artefacts
models/                local base models (the tiny demo model is built here)
exports/               exported datasets
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path


class WorkspaceError(RuntimeError):
    """The workspace folder cannot be used (missing, not a folder, not writable)."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "studio.duckdb"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def pending(self) -> Path:
        return self.root / "queue" / "pending"

    @property
    def running(self) -> Path:
        return self.root / "queue" / "running"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def worker_lock(self) -> Path:
        return self.root / "worker.lock"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def ensure(self) -> Workspace:
        """Create the layout, or fail with a message that names the folder and the problem."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"workspace {root} exists but is not a folder")
        try:  # created for its owner only: it holds data, logs and the database
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in (
                self.jobs,
                self.pending,
                self.running,
                self.runs,
                self.models,
                self.exports,
            ):
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot create the workspace at {root}: {exc.strerror or exc}. "
                "Set FTSTUDIO_WORKSPACE to a folder you can write to."
            ) from exc
        if not os.access(root, os.W_OK | os.X_OK):
            raise WorkspaceError(
                f"workspace {root} is not writable by this user. "
                "Fix its permissions or set FTSTUDIO_WORKSPACE to another folder."
            )
        return self


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see either the old or the new content, never half of it."""
    # one temporary name per writer (process, thread, call): two writers never share one
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}.tmp"
    )
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
