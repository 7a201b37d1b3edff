"""Export a dataset version in the shapes training tools read.

    messages-jsonl            {"messages": [{role, content}, ...], "tools"?: [...]}
                              (TRL conversational; tool_calls and tool turns kept)
    prompt-completion-jsonl   {"prompt": [turns...], "completion": [assistant turn]}
                              (TRL conversational prompt-completion: loss on the completion)
    parquet                   columns id, topic, messages (and tools, as JSON text, when
                              any example has tools)
    hf                        a `datasets` save_to_disk folder with the same columns

In parquet and hf, an export whose conversations call tools stores each turn as JSON (Arrow's
json type, read back by `datasets` as its `Json` feature: the very dicts): as Arrow structs,
plain turns would gain a null `tool_calls` and each call's arguments the keys of every other
tool's arguments (and arguments given as text beside arguments given as objects cannot be
stored at all).

Files are written to a temporary name and renamed into place, so a reader never sees half.
A folder export carries a marker file (`.ftstudio-export`, saying what it holds), and an
overwrite removes a folder only when it carries that marker: a typed path that names some other
folder (the workspace, a project folder) is refused, never moved aside and deleted.
`target_problem` says why a path may not receive an export at all: inside a workspace exports
go under its exports/ folder, never onto the workspace itself, the studio's own files and
folders, or a folder holding the workspace.
Pure writing: backend/synth/import_actions.py `export_version` checks the role, confines the
path and records the export.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
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


def _tools(e: dict, as_text: bool = False) -> dict:
    """The example's tools (TRL and chat templates read a `tools` column), when it has any."""
    if not e.get("tools"):
        return {}
    return {"tools": json.dumps(e["tools"], ensure_ascii=False) if as_text else e["tools"]}


def calls_tools(examples: list[dict]) -> bool:
    """Whether any of `examples` has a tool call or a tool turn."""
    return any(
        m.get("tool_calls") or m.get("role") == "tool" for e in examples for m in e["messages"]
    )


def _json_turns(table, rows: list[dict] | None = None):
    """`table` with its messages column as lists of JSON turns (from `rows`, else the
    table's own, which then hold plain turns only)."""
    import pyarrow as pa

    msgs = rows if rows is not None else table.column("messages").to_pylist()
    turns = [[json.dumps(m, ensure_ascii=False) for m in r] for r in msgs]
    col = pa.array(turns, pa.list_(pa.string())).cast(pa.list_(pa.json_()))
    return table.set_column(table.schema.get_field_index("messages"), "messages", col)


def _arrow_table(batch: list[dict], fmt: str):
    """One batch of a parquet / hf export as an Arrow table."""
    import pyarrow as pa

    rows = rows_for(batch, fmt)
    if not calls_tools(batch):
        return pa.Table.from_pylist(rows)
    plain = pa.Table.from_pylist([{**r, "messages": []} for r in rows])
    return _json_turns(plain, [r["messages"] for r in rows])


def rows_for(examples: list[dict], fmt: str) -> list[dict]:
    if fmt == "prompt-completion-jsonl":
        return [to_prompt_completion(e["messages"]) | _tools(e) for e in examples]
    if fmt == "messages-jsonl":
        return [{"messages": e["messages"]} | _tools(e) for e in examples]
    with_tools = any(e.get("tools") for e in examples)  # one column type for every row
    return [
        {"id": e["id"], "topic": e.get("topic") or "", "messages": e["messages"]}
        | ({"tools": _tools(e, True).get("tools")} if with_tools else {})
        for e in examples
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


def _batches(examples: Iterable[dict] | Iterable[list[dict]]) -> Iterator[list[dict]]:
    """Batches of examples from a list of examples or an iterable of lists of them."""
    pending: list[dict] = []
    for item in examples:
        if isinstance(item, list):
            yield item
        else:
            pending.append(item)
    if pending:
        yield pending


def write_examples(
    examples: Iterable[dict] | Iterable[list[dict]],
    fmt: str,
    out: str | Path,
    *,
    overwrite: bool = False,
    about: dict | None = None,
) -> Path:
    """Write examples (dicts with id, messages, topic, tools) to `out` in `fmt`; return the
    path. `examples` may be a list, or batches of them streamed from the store: JSONL is
    written a batch at a time (memory stays flat), Parquet and HF folders gather Arrow tables
    (compact columns, not Python objects). `about` (dataset, version, hash...) goes into a
    folder export's marker file."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    _check_overwrite(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:6]}.tmp")
    count = 0
    try:
        if fmt.endswith("jsonl"):
            with open(tmp, "w", encoding="utf-8") as fh:
                for batch in _batches(examples):
                    count += len(batch)
                    fh.writelines(
                        json.dumps(r, ensure_ascii=False) + "\n" for r in rows_for(batch, fmt)
                    )
                fh.flush()
                os.fsync(fh.fileno())
        else:
            import pyarrow as pa

            tables = [_arrow_table(b, fmt) for b in _batches(examples)]
            json_type = pa.list_(pa.json_())
            if any(t.schema.field("messages").type == json_type for t in tables):
                tables = [  # one column type: the plain batches' turns as JSON too
                    t if t.schema.field("messages").type == json_type else _json_turns(t)
                    for t in tables
                ]
            count = sum(t.num_rows for t in tables)
            table = (
                pa.concat_tables(tables, promote_options="permissive")
                if tables
                else pa.Table.from_pylist([])
            )
            if fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
            else:
                from datasets import Dataset

                Dataset(table).save_to_disk(str(tmp))
                marker = {"format": fmt, "examples": count, **(about or {})}
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
