"""A run's Export section (studio/components/exports.py): the vLLM command, verified exports
shown as shippable with their numbers and commands, a failed one shown as not shippable, and
the form queueing an `export` job as the signed-in lead (a bad folder refused, no job)."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import read, worker
from backend.store import Store
from backend.store.exports import ingest_exports
from backend.store.runs import ingest_run_rows
from tests.support.seed_runs import seed_runs


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def _section(run_id: str) -> None:
    from studio.components.exports import run_exports

    run_exports(run_id)


def _check(quant: str | None, diff: float, ok: bool) -> dict:
    name = "gguf" if quant else "merged"
    return {
        name: {
            "max_logit_diff": diff,
            "relative_diff": diff,
            "tolerance": 0.05,
            "greedy_equal_prefix": 32,
            "greedy_tokens": 32,
        },
        "stops": {"ok": True, "where": "gguf metadata"},
        "tokens_to_eos": 12 if ok else None,
    }


def _seed(ws, tmp_path) -> str:
    store = Store.open(ws.db_path)
    try:
        run_id = seed_runs(ws, 1, steps=10, store=store)[0]
        base = tmp_path / "base"
        base.mkdir()
        (base / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
        spec_path = ws.job_dir(run_id) / "spec.json"
        spec = json.loads(spec_path.read_text())
        spec["spec"]["base_model"] = str(base)
        spec_path.write_text(json.dumps(spec))
        adapter = ws.runs / run_id / "adapter"
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text("{}")
        rows = [
            {
                "id": f"20250101-000000-export-{i}",
                "run_id": run_id,
                "format": fmt,
                "quant": quant,
                "path": f"/ship/{fmt}",
                "size_bytes": 2**20,
                "sha256": "ab" * 32,
                "verified": ok,
                "checks": _check(quant, diff, ok),
                "commands": {"vllm": "vllm serve x", "ollama": "ollama create r -f /ship/M"},
                "wall_s": {"total": 1.0},
                "error": None if ok else "gguf: max logit difference 0.9 over the tolerance",
                "t": time.time() + i,
            }
            for i, (fmt, quant, diff, ok) in enumerate(
                [
                    ("merged", None, 1e-7, True),
                    ("ollama", "q8_0", 5e-3, True),
                    ("gguf", "q8_0", 0.9, False),
                ]
            )
        ]
        store.write(
            lambda cur: ingest_exports(
                cur, "x", "".join(json.dumps(r) + "\n" for r in rows).encode()
            )
        )
        run_row = {"id": run_id, "adapter_path": str(adapter), "base_model": str(base)}
        store.write(lambda cur: ingest_run_rows(cur, run_id, (json.dumps(run_row) + "\n").encode()))
    finally:
        store.close()
    return run_id


def test_shows_exports_and_queues_one(ws, tmp_path):
    run_id = _seed(ws, tmp_path)
    at = AppTest.from_function(_section, args=(run_id,), default_timeout=30).run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert any(c.startswith("vllm serve ") and "--enable-lora" in c for c in codes)
    assert "ollama create r -f /ship/M" in codes
    assert [s.value for s in at.success] == [
        "ollama q8_0: verified, 1.0 MiB",
        "merged: verified, 1.0 MiB",
    ]
    assert any("not shippable" in e.value for e in at.error)
    assert any("over the tolerance" in t.value for t in at.text)
    assert any("max logit diff" in c.value for c in at.caption)

    at.text_input[0].input(str(tmp_path / "outside"))  # outside the workspace
    at.button[0].click().run()
    assert any("not an absolute one" in e.value for e in at.error), [e.value for e in at.error]
    assert not [s for s in read.list_jobs(ws) if s.kind == "export"]

    at.text_input[0].input("")
    at.radio[0].set_value("ollama")
    at.button[0].click().run()
    assert not at.exception
    queued = [s for s in read.list_jobs(ws) if s.kind == "export"]
    assert len(queued) == 1 and run_id in queued[0].title
    _, spec = read.read_spec(ws.job_dir(queued[0].id))
    assert spec["format"] == "ollama" and spec["quant"] == "q8_0"
