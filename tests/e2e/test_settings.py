"""Settings in a real browser: an admin points the studio at another LLM endpoint (and key) on
the Settings page, and the very next Generate, queued from the Datasets page of the same running
dashboard, goes to that endpoint with that key: no restart. The key is never in the page's HTML.

Two loopback OpenAI-compatible servers (tests/support/openai_server.py) stand for the old and
the new endpoint; the generate jobs run in the dashboard's own worker. The seconds from each
job's end (its status file) to the Datasets page's counters moving are printed (`-s`).
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard
from tests.support.openai_server import OpenAIServer, default_responder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OLD_KEY = "sk-e2e-old-endpoint-31a7"
NEW_KEY = "sk-e2e-new-endpoint-8c2f"
RECIPE = {
    "task": "Answer Tasklane customer questions",
    "topics": ["billing", "exports"],
    "per_topic": 2,
    "provider": "openai",
    "model": "test-model",
}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A dashboard whose saved settings point at server `old`; `new` waits for the switch."""
    from backend.config import write_saved
    from backend.store import Store
    from backend.store import datasets as dstore
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-settings") / "workspace").ensure()
    (ws.models / "tiny-llama").mkdir()  # no demo-model job: this test is about settings
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "support", recipe=RECIPE)
        dstore.add_version(
            store,
            "support",
            [
                {
                    "messages": [
                        {"role": "user", "content": "How do I export a board?"},
                        {"role": "assistant", "content": "Open it, then Export."},
                    ]
                }
            ],
        )
    finally:
        store.close()
    with OpenAIServer(delay_s=0.05) as old, OpenAIServer(delay_s=0.05) as new:
        new.responder = _from_the_new_endpoint
        write_saved(ws.root, {"openai_base_url": old.base_url}, {"openai_api_key": OLD_KEY})
        server = Dashboard(ws.root)
        try:
            yield server, ws, old, new
        finally:
            server.stop()


NEW_ANSWERS = [
    (
        "Since this morning the {t} view shows error 4711 whenever I sync from my phone. "
        "What should I check first?",
        "Error 4711 means the phone's sync token expired: sign out there, sign back in and "
        "press Sync; the {t} view refreshes within seconds.",
    ),
    (
        "Can a guest account change the {t} settings, or is that only for workspace owners?",
        "Only owners and admins may change {t} settings; guests can read them. An owner can "
        "grant the admin role under Members > Roles.",
    ),
    (
        "Our auditor wants a yearly archive of {t} records as PDF. Is there a bulk option?",
        "Yes: Reports > Archive lets you pick a year and bundles every {t} record into one "
        "PDF per month, zipped, mailed to you when ready.",
    ),
    (
        "Why did the {t} numbers on the dashboard drop to zero after the weekend migration?",
        "The migration re-indexes history overnight; totals read zero until it finishes. "
        "Nothing is lost, and the {t} widget fills in by Tuesday.",
    ),
]


def _from_the_new_endpoint(body: dict):
    """Answers unlike the old endpoint's (so they are new examples, not near duplicates)."""
    last = body["messages"][-1]["content"]
    topic = re.search(r"Topic of this example: (.+)", last)
    number = re.search(r"number (\d+)", last)
    if not topic:
        return default_responder(body)
    t = topic.group(1).strip()
    n = int(number.group(1)) if number else 1
    q, a = NEW_ANSWERS[((n - 1) * 2 + RECIPE["topics"].index(t)) % len(NEW_ANSWERS)]
    return {
        "messages": [
            {"role": "user", "content": q.format(t=t)},
            {"role": "assistant", "content": a.format(t=t)},
        ]
    }


def _finished(ws, seen: set[str]) -> dict:
    """The status of the one generate job not in `seen`, once it has ended."""
    deadline = time.time() + 240
    while time.time() < deadline:
        for path in ws.jobs.glob("*/status.json"):
            try:
                data = json.loads(path.read_text())
            except ValueError:
                continue  # being replaced
            if (
                data.get("kind") == "generate"
                and data["id"] not in seen
                and data.get("state") in ("succeeded", "failed", "cancelled", "interrupted")
            ):
                return data
        time.sleep(0.1)
    raise AssertionError("the generate job did not end within 240 s")


def _generate(page: Page, server, ws, versions_before: int, endpoint: str) -> float:
    """Queue a generation from the Generate tab (the picker showing `endpoint` as the
    configured one); returns the seconds from the job's end to the Versions counter moving."""
    seen = {p.parent.name for p in ws.jobs.glob("*/status.json")}
    page.goto(f"{server.url}/datasets?datasets_dataset=support&datasets_tab=Generate")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("combobox", name="Endpoint")).to_have_value(
        f"{endpoint} (configured)", timeout=30_000
    )
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("Queued generation job")).to_be_visible(timeout=30_000)
    status = _finished(ws, seen)
    assert status["state"] == "succeeded", status
    versions = page.get_by_test_id("stMetric").filter(has_text="Versions")
    deadline = time.time() + 60
    while time.time() < deadline and str(versions_before + 1) not in versions.inner_text():
        time.sleep(0.1)
    latency = time.time() - status["finished"]
    expect(versions).to_contain_text(str(versions_before + 1))
    return latency


def test_a_new_endpoint_saved_in_settings_serves_the_next_generate(studio, page):
    server, ws, old, new = studio
    old_url, new_url = old.base_url.rstrip("/"), new.base_url.rstrip("/")

    first = _generate(page, server, ws, 1, old_url)
    assert old.authorizations and set(old.authorizations) == {f"Bearer {OLD_KEY}"}
    assert new.authorizations == []

    page.goto(f"{server.url}/settings")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("saved here").first).to_be_visible(timeout=30_000)
    url_box = page.get_by_label("Endpoint base URL", exact=True)
    expect(url_box).to_have_value(old_url, timeout=30_000)
    url_box.fill(new.base_url)
    page.get_by_label("Replace API key", exact=True).fill(NEW_KEY)
    page.get_by_role("button", name="Save endpoint settings").click()
    expect(page.get_by_text("Saved: API key, Endpoint base URL. In effect now.")).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_label("Endpoint base URL", exact=True)).to_have_value(new_url)
    expect(page.get_by_label("Replace API key", exact=True)).to_have_value("")
    html = page.content()
    assert NEW_KEY not in html and OLD_KEY not in html
    assert "API key: set" in html  # only whether it is set

    old_calls = len(old.authorizations)
    second = _generate(page, server, ws, 2, new_url)
    assert new.authorizations and set(new.authorizations) == {f"Bearer {NEW_KEY}"}
    assert len(old.authorizations) == old_calls  # nothing more went to the old endpoint
    html = page.content()
    assert NEW_KEY not in html and OLD_KEY not in html
    sys.stdout.write(
        f"\njob end -> Datasets counters updated: {first:.2f} s (old endpoint), "
        f"{second:.2f} s (new endpoint, no restart)\n"
    )
    assert first < 10 and second < 10, (first, second)
