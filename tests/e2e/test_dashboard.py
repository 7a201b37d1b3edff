"""The dashboard in a real browser: Overview shows the demo job, Jobs lists it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_overview_and_jobs_show_the_demo_job(dashboard, page, tmp_path):
    url, ws = dashboard
    page.goto(url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Running jobs", exact=True)).to_be_visible()
    expect(page.get_by_text("its text is noise").first).to_be_visible()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_be_visible()
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    # the demo-model job, started on first launch, appears with its title once ingested
    expect(page.get_by_text("build demo model tiny-llama").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("succeeded").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
    assert (tmp_path / "jobs.png").stat().st_size > 10_000
