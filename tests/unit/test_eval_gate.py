"""The promotion gate: a run that beats its base model by the margin becomes a candidate and
can be promoted; a later run is gated against the promoted one and refused when it is worse
(by hand too); missing figures fail their check and say so; the Overview shows the promoted
run per project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from backend.action import AlreadyDone
from backend.auth import Actor, PermissionDenied
from backend.cli import app
from backend.evaluate.actions import gate_run
from backend.evaluate.gate import GateError, parse_rules
from backend.store import evals
from backend.store.evals import ingest_results, insert_suite
from tests.support.seed_runs import seed_runs

OVERVIEW = str(Path(__file__).resolve().parents[2] / "pages" / "overview.py")


def seed(store, ws) -> tuple[str, str]:
    first, second = seed_runs(ws, 2, steps=3, store=store)
    rows = [{"prompt": f"q{i}", "reference": f"r{i}", "criteria": {}} for i in range(6)]
    targets = {
        "base:models/tiny-llama": [1, 0, 0, 0, 0, 1],  # mean 1/3
        first: [1, 1, 0, 1, 0, 1],  # 2/3
        second: [1, 0, 1, 0, 0, 1],  # 1/2
    }
    results = [
        {"suite_id": "faq-v1", "target": t, "idx": i, "output": "x", "scores": {"exact": v}}
        for t, values in targets.items()
        for i, v in enumerate(values)
    ]

    def write(cur):
        insert_suite(cur, "faq", rows, source="file:faq.jsonl", content_hash="h", actor="t")
        cur.execute(
            "INSERT INTO jobs (id, kind, spec, state, created) VALUES"
            " ('eval-1', 'eval', '{}', 'succeeded', now())"
        )
        ingest_results(cur, "eval-1", "".join(json.dumps(r) + "\n" for r in results).encode())

    store.write(write)
    return first, second


def test_gate_candidate_promote_and_refuse(ws, store, act, monkeypatch):
    monkeypatch.chdir(ws.root.parent)  # the seeded runs name models/tiny-llama from here
    first, second = seed(store, ws)
    with pytest.raises(PermissionDenied):
        gate_run(act(Actor("ann", "analyst")), first, "faq:exact:0.1")

    d = gate_run(act(), first, "faq:exact:0.3")  # 2/3 - 1/3 >= 0.3
    assert d["status"] == "candidate" and d["against"] == "base:models/tiny-llama"
    assert d["checks"][0]["gain"] == pytest.approx(1 / 3)
    assert gate_run(act(), first, "faq:exact:0.4")["status"] == "refused"
    d = gate_run(act(), first, ["faq:exact:0.1"], promote=True)
    assert d["status"] == "promoted"
    with pytest.raises(AlreadyDone):
        gate_run(act(), first, "faq:exact:0.1", promote=True)

    d = gate_run(act(), second, "faq:exact", promote=True)  # worse than the promoted run
    assert d["status"] == "refused" and d["against"] == first
    assert d["checks"][0]["gain"] == pytest.approx(0.5 - 2 / 3)
    d = gate_run(act(), second, "faq:exact:-0.5,faq:judge")
    assert d["status"] == "refused"
    assert d["checks"][1]["why"] == "the run has no judge on faq"
    [project] = evals.promoted(store)
    assert (project["project"], project["run_id"]) == ("tasklane-support", first)
    statuses = [p["status"] for p in evals.promotions_of(store, second)]
    assert statuses == ["refused", "refused"]

    for bad in ("faq", "faq:bleu", "faq:exact:lots", ""):
        with pytest.raises(GateError):
            parse_rules(bad)


def test_cli_gate_and_the_overview(ws, store, monkeypatch):
    monkeypatch.chdir(ws.root.parent)
    first, second = seed(store, ws)
    store.close()
    cli = CliRunner()
    ok = cli.invoke(app, ["eval", "gate", first, "--rule", "faq:exact:0.1", "--promote"])
    assert ok.exit_code == 0 and "promoted" in ok.stdout, ok.output
    refused = cli.invoke(app, ["eval", "gate", second, "--rule", "faq:exact", "--json"])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["status"] == "refused"
    st.cache_resource.clear()  # the page's store is opened (and closed) by this test
    try:
        at = AppTest.from_file(OVERVIEW, default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [d.value for d in at.dataframe if "project" in d.value.columns][0]
        assert list(shown["run_id"]) == [first]
    finally:
        st.cache_resource.clear()
