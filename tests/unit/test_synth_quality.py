"""Quality filters (rules, exact and near duplicates with the bundled MiniLM) and QC sampling."""

from __future__ import annotations

import pytest

from backend.synth import qc
from backend.synth.quality import distinct_n, filter_examples, rule_reason


def row(item, q, a, topic="t"):
    return {
        "item": item,
        "topic": topic,
        "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
    }


def test_rule_filters():
    assert rule_reason(row(0, "q", "ok")["messages"]).startswith("answer too short")
    long = rule_reason(row(0, "q", "x" * 50)["messages"], max_chars=20)
    assert long.startswith("answer too long")
    assert (
        rule_reason(row(0, "q", "I'm sorry, but I can't help with that request.")["messages"])
        == "refusal"
    )
    assert (
        rule_reason(row(0, "q", "As an AI language model I have no opinion.")["messages"])
        == "refusal"
    )
    assert (
        rule_reason(row(0, "q", "Open Settings, then Billing, then Invoices.")["messages"]) is None
    )


def test_exact_and_near_duplicates_removed_with_reasons():
    rows = [
        row(
            "a",
            "How do I export my Gantt chart as a PDF?",
            "In the Gantt view choose ... > Export > PDF and pick the date range.",
            "exports",
        ),
        row(
            "b",
            "how do i export my gantt chart as a pdf",
            "In the Gantt view choose ... > Export > PDF and pick the date range!",
            "exports",
        ),  # exact after normalising
        row(
            "c",
            "Can I download the Gantt chart as a PDF file?",
            "Yes: in the Gantt view, choose ... > Export > PDF and select the date range.",
            "exports",
        ),  # paraphrase
        row(
            "d",
            "Where do I find my invoices?",
            "Workspace settings > Billing > Invoices lists every invoice as a PDF.",
            "billing",
        ),
        row("e", "Why?", "No.", "billing"),
    ]
    kept, removed, report = filter_examples(rows, near_dup_threshold=0.85)
    assert [r["item"] for r in kept] == ["a", "d"]
    reasons = {r["item"]: r["reason"] for r in removed}
    assert reasons["b"] == "exact duplicate"
    assert reasons["c"].startswith("near duplicate of item a")
    assert reasons["e"].startswith("answer too short")
    assert report["per_topic"] == {"exports": 1, "billing": 1}
    assert report["near_dup_method"] == "embedding"
    assert 0 < report["embedding_spread"] <= 1.5
    assert report["removed_by_reason"]["near duplicate of item a"] == 1


def test_duplicates_of_the_existing_version_are_removed():
    base = [row("x", "Where do I find my invoices?", "Billing > Invoices.")]
    kept, removed, _ = filter_examples(
        [row("a", "Where do I find my invoices?", "Billing > Invoices.")],
        base=base,
        method="jaccard",
    )
    assert not kept and removed[0]["reason"] == "exact duplicate"


def test_distinct_n():
    assert distinct_n(["a b c", "a b c"], 1) == 0.5
    assert distinct_n(["a b c d"], 2) == 1.0
    assert distinct_n([], 2) == 0.0


def test_qc_share_bounds_and_seeded_sample():
    ids = [f"e{i}" for i in range(200)]
    sample = qc.qc_sample(ids, 0.07, seed="job-1")
    assert len(sample) == 14 and sample == qc.qc_sample(ids, 0.07, seed="job-1")
    assert sample != qc.qc_sample(ids, 0.07, seed="job-2")
    assert len(qc.qc_sample(ids[:3], 0.05)) == 1
    assert qc.qc_sample([], 0.07) == []
    for bad in (0.04, 0.11, 0.5):
        with pytest.raises(ValueError, match="outside"):
            qc.qc_sample(ids, bad)
