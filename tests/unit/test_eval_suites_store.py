"""Eval suite versions in the store: a file makes version 1, the same rows again are "already
done", changed rows make version 2; a suite from the prompts a monitor received keeps the
newest distinct prompts; a bad file or an empty monitor is refused saying why."""

from __future__ import annotations

import json

import pytest

from backend.action import ActionError, AlreadyDone
from backend.drift.actions import ingest
from backend.evaluate.actions import create_suite_from_file, create_suite_from_monitor
from backend.evaluate.suites import SuiteError
from backend.store import evals
from backend.store import monitoring as mon
from backend.store.datasets import add_version, create_dataset


def test_versions_from_files(ws, store, act):
    path = ws.root / "faq.jsonl"
    path.write_text(json.dumps({"prompt": "a", "reference": "b"}) + "\n")
    assert create_suite_from_file(act(), "faq", path)["id"] == "faq-v1"
    with pytest.raises(AlreadyDone, match="faq-v1 already holds these prompts"):
        create_suite_from_file(act(), "faq", path)
    path.write_text(json.dumps({"prompt": "a", "reference": "c"}) + "\n")
    v2 = create_suite_from_file(act(), "faq", path)
    assert (v2["id"], v2["version"], v2["source"]) == ("faq-v2", 2, "file:faq.jsonl")
    assert evals.suite_rows(store, "faq-v2")[0]["reference"] == "c"
    assert [s["id"] for s in evals.list_suites(store)] == ["faq-v2"]
    assert evals.get_suite(store, "faq", 1)["id"] == "faq-v1"
    with pytest.raises(ActionError, match="suite name 'bad name'"):
        create_suite_from_file(act(), "bad name", path)
    with pytest.raises(SuiteError, match="no file"):
        create_suite_from_file(act(), "faq", ws.root / "missing.jsonl")


def test_a_suite_from_a_monitors_prompts(ws, store, act):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    create_dataset(store, "support")
    add_version(store, "support", [{"messages": turns}])
    mon.create_monitor(store, "prod", reference="support")
    with pytest.raises(SuiteError, match="has received no prompts yet"):
        create_suite_from_monitor(act(), "prod-prompts", "prod")
    for name, prompts in (("a.jsonl", ["p1", "p2", "p1"]), ("b.jsonl", ["p3", "p2"])):
        data = "".join(json.dumps({"prompt": p}) + "\n" for p in prompts).encode()
        ingest(act(), "prod", data, name)
    suite = create_suite_from_monitor(act(), "prod-prompts", "prod", limit=3)
    assert suite["source"] == "monitor:prod" and suite["n_prompts"] == 3
    rows = evals.suite_rows(store, suite["id"])
    assert [r["prompt"] for r in rows] == ["p3", "p2", "p1"]  # the newest batch first
    assert all(r["reference"] is None for r in rows)
    with pytest.raises(SuiteError, match="no monitor 'nope'"):
        create_suite_from_monitor(act(), "x", "nope")
