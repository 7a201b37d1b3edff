"""Faults: a write error while exporting (a real EFBIG from a file-size limit, as on a full
disk) gives a clear message and leaves nothing half-written; the earlier export survives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from backend.store import Store
from backend.store import datasets as ds

pytestmark = pytest.mark.slow


def _seed(ws, n: int = 400) -> None:
    store = Store.open(ws.db_path)
    ds.create_dataset(store, "big")
    examples = [
        {
            "messages": [
                {"role": "user", "content": f"question {i} " + "x" * 200},
                {"role": "assistant", "content": f"answer {i} " + "y" * 200},
            ]
        }
        for i in range(n)
    ]
    ds.add_version(store, "big", examples)
    store.close()


def _export_with_size_limit(ws, out, limit_bytes: int) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))
        from backend.action import Ctx
        from backend.config import Settings
        from backend.store import Store
        from backend.synth.import_actions import export_version
        from backend.synth.exporters import ExportError
        from backend.workspace import Workspace
        store = Store.open({str(ws.db_path)!r}, run_migrations=False)
        ctx = Ctx(store, Workspace({str(ws.root)!r}), Settings(), None)
        try:
            export_version(ctx, "big", "messages-jsonl", {str(out)!r}, overwrite=True)
        except ExportError as exc:
            print("EXPORT-ERROR:", exc)
            sys.exit(3)
        finally:
            store.close()
    """)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_disk_full_during_export_keeps_the_previous_export(ws):
    _seed(ws)
    out = ws.exports / "big.jsonl"
    out.write_text('{"messages": []}\n')  # an earlier, smaller export
    result = _export_with_size_limit(ws, out, limit_bytes=64 * 1024)
    assert result.returncode == 3, result.stderr
    assert "cannot write" in result.stdout and "disk full" in result.stdout
    assert out.read_text() == '{"messages": []}\n'
    assert [p.name for p in ws.exports.iterdir()] == ["big.jsonl"]  # no temp file left
    # with room to write, the same export succeeds and replaces the old one whole
    result = _export_with_size_limit(ws, out, limit_bytes=64 * 1024 * 1024)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 400 and json.loads(lines[-1])["messages"][1]["role"] == "assistant"
