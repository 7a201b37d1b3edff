"""`ftstudio export RUN --format merged|gguf|ollama [--quant f16|q8_0] [--out DIR]`.

    ftstudio export 20250101-...-train-ab12 --format gguf --quant q8_0 --out ./ship
    ftstudio export RUN --format ollama --json

Queues the `export` job (backend.export.actions) and waits for it with a progress bar unless
`--detach`; prints where the export is, its checks and numbers, and the commands that serve
it. Exits non-zero when the export fails a check (the job's error carries the numbers).
"""

from __future__ import annotations

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.export import actions


def _result(ws, job_id: str) -> dict | None:
    """The export row the job wrote (from its folder: the dashboard may hold the database)."""
    import json

    path = ws.job_dir(job_id) / "export.jsonl"
    if not path.exists():
        return None
    lines = [x for x in path.read_text().splitlines() if x.strip()]
    return json.loads(lines[-1]) if lines else None


def _text(row: dict) -> str:
    c = row["checks"]
    lines = [
        f"{row['format']}{' ' + row['quant'] if row['quant'] else ''} export "
        f"{'verified' if row['verified'] else 'FAILED'}: {row['path']}",
        f"size {row['size_bytes']:,} bytes, sha256 {row['sha256']}",
    ]
    for name in ("merged", "gguf"):
        if name in c:
            x = c[name]
            lines.append(
                f"{name}: max logit diff {x['max_logit_diff']:.3g} "
                f"({x['relative_diff']:.3g} of scale, tolerance {x['tolerance']:g}); greedy "
                f"{x['greedy_equal_prefix']}/{x['greedy_tokens']} tokens equal"
            )
    lines.append(f"stops at end-of-turn: {c['stops']['ok']} ({c['stops']['where']})")
    lines.append(f"tokens to EOS: {c.get('tokens_to_eos')}")
    lines.append(f"wall time: {row['wall_s']}")
    lines += [f"{k}: {v}" for k, v in row["commands"].items()]
    return "\n".join(lines)


def export_cmd(
    run_id: str = typer.Argument(..., help="The training run to export."),
    fmt: str = typer.Option("merged", "--format", help="merged | gguf | ollama."),
    quant: str = typer.Option(None, help="GGUF quantisation: f16 | q8_0 (default q8_0)."),
    out: str = typer.Option(None, help="Folder to write (default runs/RUN/exports/...)."),
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Export a run as a merged model, a GGUF or an Ollama model, verified before it is done."""
    store = common.try_open_store(common.workspace())
    try:
        job_id = actions.start_export(common.shell(store), run_id, fmt, quant=quant, out=out)
    except AlreadyDone as exc:
        common.already(exc, as_json)
        return
    except ValueError as exc:
        common.fail(str(exc), code=2)
    finally:
        if store is not None:
            store.close()
    if detach:
        common.out({"job": job_id}, as_json, f"queued export job {job_id}")
        return
    ws = common.workspace()
    status = common.follow(job_id, quiet=as_json, check=False)
    row = _result(ws, job_id)
    if row is not None:
        common.out(row, as_json, _text)
    if status.state != "succeeded":
        common.fail(f"job {job_id} {status.state}: {status.error or ''}".rstrip(": "))
