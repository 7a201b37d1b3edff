"""Where a new run can start from: the adapters an earlier run left (its final adapter and
its checkpoints), read from the run's folder. A reader only; the Training page lists them for
the run a user picked, so the list follows the run.

    starting_points(ws, run_id)  # [("final adapter", "runs/<id>/adapter"), ("step 50", ...)]
"""

from __future__ import annotations

from pathlib import Path

from backend.workspace import Workspace

ADAPTER_FILE = "adapter_config.json"  # what makes a folder a PEFT adapter


def _step(folder: Path) -> int | None:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if folder.name.startswith("checkpoint-") and tail.isdigit() else None


def starting_points(ws: Workspace, run_id: str) -> list[tuple[str, str]]:
    """(label, folder relative to the workspace) of each adapter of a run: its final adapter
    first, then its checkpoints, the latest first. Folders without an adapter are left out;
    an unknown run (or a crafted id) has none."""
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        return []
    run_dir = ws.runs / run_id
    out: list[tuple[str, str]] = []
    if (run_dir / "adapter" / ADAPTER_FILE).is_file():
        out.append(("final adapter", f"runs/{run_id}/adapter"))
    ckpt_dir = run_dir / "checkpoints"
    if ckpt_dir.is_dir():
        steps = sorted(
            (s, p)
            for p in ckpt_dir.iterdir()
            if (s := _step(p)) is not None and (p / ADAPTER_FILE).is_file()
        )
        out.extend(
            (f"checkpoint at step {s}", f"runs/{run_id}/checkpoints/{p.name}")
            for s, p in reversed(steps)
        )
    return out


def runs_with_adapters(ws: Workspace, run_ids: list[str]) -> list[str]:
    """The runs among `run_ids` (in their order) that left an adapter to start from."""
    return [r for r in run_ids if starting_points(ws, r)]
