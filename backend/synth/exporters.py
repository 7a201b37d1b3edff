"""Export a dataset version in the shapes training tools read.

    messages-jsonl            {"messages": [{role, content}, ...]}   (TRL conversational)
    prompt-completion-jsonl   {"prompt": [turns...], "completion": [assistant turn]}
                              (TRL conversational prompt-completion: loss on the completion)
    parquet                   columns id, topic, messages
    hf                        a `datasets` save_to_disk folder with the same columns

Files are written to a temporary name and renamed into place, so a reader never sees half.
A folder export carries a marker file (`.ftstudio-export`, saying what it holds), and an
overwrite removes a folder only when it carries that marker: a typed path that names some other
folder (the workspace, a project folder) is refused, never moved aside and deleted.
`target_problem` says why a path may not receive an export at all: inside a workspace exports
go under its exports/ folder, never onto the workspace itself, the studio's own files and
folders, or a folder holding the workspace.
Pure writing: backend/synth/actions.py `export_version` checks the role, confines the path and
records the export.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

FORMATS = ("messages-jsonl", "prompt-completion-jsonl", "parquet", "hf")
SUFFIX = {"messages-jsonl": ".jsonl", "prompt-completion-jsonl": ".jsonl", "parquet": ".parquet"}
MARKER = ".ftstudio-export"  # in every folder export: an overwrite may remove only such a folder


class ExportError(ValueError):
    """The export cannot be written (bad format, existing target)."""


def to_prompt_completion(messages: list[dict]) -> dict:
    """Split a conversation before its last assistant turn.

    >>> to_prompt_completion([{"role": "user", "content": "q"},
    ...                       {"role": "assistant", "content": "a"}])["completion"]
    [{'role': 'assistant', 'content': 'a'}]
    """
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def rows_for(examples: list[dict], fmt: str) -> list[dict]:
    if fmt == "prompt-completion-jsonl":
        return [to_prompt_completion(e["messages"]) for e in examples]
    if fmt == "messages-jsonl":
        return [{"messages": e["messages"]} for e in examples]
    return [
        {"id": e["id"], "topic": e.get("topic") or "", "messages": e["messages"]} for e in examples
    ]


def target_problem(out: Path, ws_root: Path) -> str | None:
    """Why `out` may not receive an export of the workspace at `ws_root`, or None.

    >>> target_problem(Path("/ws"), Path("/ws"))
    'it is the workspace itself'
    >>> print(target_problem(Path("/ws/jobs/x.jsonl"), Path("/ws")))
    inside the workspace, exports go under exports/ (jobs is the studio's own)
    >>> target_problem(Path("/ws/exports/a.jsonl"), Path("/ws")) is None
    True
    """
    out, root = Path(out).resolve(), Path(ws_root).resolve()  # through any symlink
    if out == root:
        return "it is the workspace itself"
    if out in root.parents:
        return f"it holds the workspace {root}"
    if root not in out.parents:
        return None
    first = out.relative_to(root).parts[0]
    if first != "exports":
        return f"inside the workspace, exports go under exports/ ({first} is the studio's own)"
    if out == root / "exports":
        return "it is the exports folder itself: name a file or folder inside it"
    return None


def _check_overwrite(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise ExportError(f"{out} already exists; choose another path or overwrite")
    if out.is_symlink():
        raise ExportError(f"{out} is a symbolic link: not overwritten; nothing was changed")
    if out.is_dir() and not (out / MARKER).is_file():
        raise ExportError(
            f"{out} is a folder the studio did not export (it has no {MARKER} marker): it is "
            "not overwritten or removed; choose another path. Nothing was changed"
        )


def write_examples(
    examples: list[dict],
    fmt: str,
    out: str | Path,
    *,
    overwrite: bool = False,
    about: dict | None = None,
) -> Path:
    """Write examples (dicts with id, messages, topic) to `out` in `fmt`; return the path.
    `about` (dataset, version, hash...) goes into a folder export's marker file."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    _check_overwrite(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:6]}.tmp")
    rows = rows_for(examples, fmt)
    try:
        if fmt.endswith("jsonl"):
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        else:
            from datasets import Dataset

            Dataset.from_list(rows).save_to_disk(str(tmp))
            marker = {"format": fmt, "examples": len(rows), **(about or {})}
            (tmp / MARKER).write_text(json.dumps(marker, ensure_ascii=False) + "\n")
        _swap_in(tmp, out)
    except OSError as exc:
        raise ExportError(
            f"cannot write {out}: {exc.strerror or exc} (is the disk full?); nothing was "
            "written there and any earlier export at that path is unchanged"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished export in place; an existing folder (an earlier export: it carries the
    marker) is moved aside first and only removed once the new one is there."""
    if out.is_dir():
        _check_overwrite(out, True)  # checked again at the last moment
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
