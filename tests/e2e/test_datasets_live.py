"""The Datasets page in a real browser: a generation queued from the Generate form shows its
examples on the Examples tab, the counters and the Versions tab by itself once the job ends (no
reload), and the open tab and the chosen dataset live in the URL, through an action and a reload.

The generate job runs in the dashboard's own worker against the loopback OpenAI-compatible test
server (tests/support/openai_server.py). The seconds from the job's end (its status file) to the
page showing the new examples are printed (`-s` shows them).
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Dashboard
from tests.support.openai_server import OpenAIServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECIPE = {
    "task": "Answer Tasklane customer questions",
    "topics": ["billing", "exports"],
    "per_topic": 2,
    "provider": "openai",
    "model": "test-model",
}


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.store import Store
    from backend.store import datasets as dstore
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-datasets") / "workspace").ensure()
    (ws.models / "tiny-llama").mkdir()  # no demo-model job: this test is about datasets
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "live", recipe=RECIPE)
        dstore.add_version(
            store, "live", [chat(f"Old question {i}?", "Old answer.") for i in (1, 2, 3)]
        )
        dstore.create_dataset(store, "other")
        dstore.add_version(store, "other", [chat("First?", "One.")])
        dstore.add_version(store, "other", [chat("First?", "One."), chat("Second?", "Two.")])
    finally:
        store.close()
    with OpenAIServer(delay_s=0.2) as srv:
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-e2e-test"}
        server = Dashboard(ws.root, env_extra=env)
        try:
            yield server, ws
        finally:
            server.stop()


def _job_status(ws, kind: str) -> dict | None:
    for status in ws.jobs.glob("*/status.json"):
        try:
            data = json.loads(status.read_text())
        except ValueError:
            continue  # being replaced
        if data.get("kind") == kind:
            return data
    return None


def test_generated_examples_show_by_themselves_when_the_job_ends(studio, page):
    server, ws = studio
    page.goto(f"{server.url}/datasets?datasets_dataset=live&datasets_tab=Generate")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("Queued generation job")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Examples").click()
    expect(page.get_by_text("3 of 3 examples in v1")).to_be_visible(timeout=30_000)
    page.evaluate("window.__not_reloaded = 'yes'")

    deadline = time.time() + 300
    status = None
    while time.time() < deadline:
        status = _job_status(ws, "generate")
        if status and status.get("state") in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert status and status["state"] == "succeeded", status
    ended = status["finished"]

    new_count = page.get_by_text(re.compile(r"^\d+ of \d+ examples in v2$"))
    while time.time() < deadline and new_count.count() == 0:
        time.sleep(0.1)
    seen = time.time()
    expect(new_count).to_be_visible()
    latency = seen - ended
    sys.stdout.write(f"\njob end -> Examples tab updated: {latency:.2f} s\n")
    assert latency < 10, latency

    assert page.evaluate("window.__not_reloaded") == "yes"  # the same page, never reloaded
    kept = int(new_count.inner_text().split(" of ")[1].split()[0])
    assert kept > 3
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="Versions")).to_contain_text("2")
    expect(metrics.filter(has_text="Examples").first).to_contain_text(str(kept))
    expect(page.get_by_text("Export or download v2")).to_be_attached()  # the Versions tab too
    assert "datasets_tab=Examples" in page.url


def test_tab_and_dataset_stay_through_an_action_and_a_reload(studio, page):
    server, _ = studio
    page.goto(f"{server.url}/datasets")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible(timeout=60_000)
    page.get_by_role("combobox", name="Dataset").click()
    page.get_by_role("option", name="other").click()
    page.get_by_role("tab", name="Versions").click()
    expect(page.get_by_text("Export or download v2")).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"datasets_dataset=other"))
    expect(page).to_have_url(re.compile(r"datasets_tab=Versions"))

    page.get_by_role("button", name="Export", exact=True).click()
    expect(
        page.get_by_text("Wrote 2 examples of v2 to exports/other-v2-messages-jsonl.jsonl")
    ).to_be_visible(timeout=30_000)
    expect(page.get_by_role("tab", name="Versions")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("Export or download v2")).to_be_visible()

    page.reload()
    expect(page.get_by_role("tab", name="Versions")).to_have_attribute(
        "aria-selected", "true", timeout=60_000
    )
    expect(page.get_by_text("Export or download v2")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("other")
    assert "datasets_dataset=other" in page.url and "datasets_tab=Versions" in page.url
