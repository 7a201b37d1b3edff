"""Export a dataset version in the shapes training tools read.

    messages-jsonl            {"messages": [{role, content}, ...]}   (TRL conversational)
    prompt-completion-jsonl   {"prompt": [turns...], "completion": [assistant turn]}
                              (TRL conversational prompt-completion: loss on the completion)
    parquet                   columns id, topic, messages
    hf                        a `datasets` save_to_disk folder with the same columns

Files are written to a temporary name and renamed into place, so a reader never sees half.
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


def write_examples(
    examples: list[dict], fmt: str, out: str | Path, *, overwrite: bool = False
) -> Path:
    """Write examples (dicts with id, messages, topic) to `out` in `fmt`; return the path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; choose another path or overwrite")
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
    """Put the finished export in place; an existing folder is moved aside first and only
    removed once the new one is there."""
    if out.is_dir():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
