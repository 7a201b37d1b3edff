"""Export a dataset version in the shapes training tools read.

    messages-jsonl            {"messages": [{role, content}, ...]}   (TRL conversational)
    prompt-completion-jsonl   {"prompt": [turns...], "completion": [assistant turn]}
                              (TRL conversational prompt-completion: loss on the completion)
    parquet                   columns id, topic, messages
    hf                        a `datasets` save_to_disk folder with the same columns

Files are written to a temporary name and renamed into place, so a reader never sees half.
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
    return [{"id": e["id"], "topic": e.get("topic") or "", "messages": e["messages"]}
            for e in examples]


def write_examples(examples: list[dict], fmt: str, out: str | Path, *,
                   overwrite: bool = False) -> Path:
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
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        else:
            from datasets import Dataset

            Dataset.from_list(rows).save_to_disk(str(tmp))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return out


def export_version(store, dataset: str, fmt: str, out: str | Path, *,
                   version: str | int | None = None, overwrite: bool = False) -> dict:
    """Export a version (latest by default); returns {path, format, version, examples, hash}."""
    from backend.store import datasets as dstore

    v = dstore.resolve_version(store, dataset, version)
    examples = dstore.version_examples(store, v["id"])
    path = write_examples(examples, fmt, out, overwrite=overwrite)
    return {"path": str(path), "format": fmt, "dataset": v["dataset"], "version": v["number"],
            "version_id": v["id"], "examples": len(examples), "hash": v["hash"]}
