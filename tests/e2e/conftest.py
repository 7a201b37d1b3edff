"""A running dashboard (`ftstudio up` on a free loopback port) and Debian's Chromium driven by
Playwright. The browser is never downloaded: Playwright launches /usr/bin/chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("FTSTUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """Start the studio on an empty workspace; yields (base_url, workspace_path)."""
    ws = tmp_path_factory.mktemp("e2e") / "workspace"
    port = free_port()
    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1"}
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL"):
        env.pop(var, None)
    ftstudio = Path(sys.executable).with_name("ftstudio")
    log = open(ws.parent / "dashboard.log", "wb")
    proc = subprocess.Popen([str(ftstudio), "up", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(url + "/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError(f"dashboard did not start: {(ws.parent / 'dashboard.log').read_text()}")
    yield url, ws
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    lock = ws / "worker.lock"
    if lock.exists():
        try:
            os.kill(int(lock.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(30_000)
    yield p
    context.close()
