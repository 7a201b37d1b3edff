"""Every page renders without an exception, through the real navigation shell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "studio" / "app.py")
PAGES = re.findall(r'\("([a-z_]+)", "', (ROOT / "studio" / "app.py").read_text())


def test_navigation_lists_every_page_file():
    files = sorted(p.stem for p in (ROOT / "pages").glob("*.py"))
    assert sorted(PAGES) == files


@pytest.mark.parametrize("name", PAGES)
def test_page_renders(name):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(f"../pages/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"page {name} has no title"


def test_first_launch_queues_the_demo_model_and_says_its_text_is_noise(ws):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    from backend.jobs import queue

    kinds = [s.kind for s in queue.list_jobs(ws)]
    assert "demo-model" in kinds
    assert any("noise" in t.value for t in at.text)
    assert any("OPENAI_BASE_URL" in m.value for m in at.markdown)


def test_settings_masks_secrets(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-show")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("../pages/settings.py")
    at.run()
    values = [w.value for w in at.text_input]
    assert "http://127.0.0.1:9/v1" in values
    assert not any("sk-should-not-show" in str(v) for v in values)
    state = {key: at.session_state[key] for key in at.session_state}
    assert "sk-should-not-show" not in str(state)


def test_jobs_page_shows_a_job_and_cancels_it(ws):
    from backend.jobs import queue
    from backend.jobs.status import JobState

    job_id = queue.submit(ws, "sleep", {"steps": 3})
    (ws.models / "tiny-llama").mkdir()  # no demo job: keep this test about one job
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("../pages/jobs.py")
    at.run()
    assert not at.exception
    from studio import resources

    resources.ingestor().tick()
    at.run()
    assert any(job_id in c.value for c in at.caption)
    cancel = [b for b in at.button if b.label == "Cancel"]
    cancel[0].click()
    at.run()
    import time

    deadline = time.time() + 10
    while queue.get(ws, job_id).state != JobState.cancelled and time.time() < deadline:
        time.sleep(0.1)
    assert queue.get(ws, job_id).state == JobState.cancelled
