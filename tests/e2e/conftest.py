"""A running dashboard (`ftstudio up` on a free loopback port) and Debian's Chromium driven by
Playwright. The browser is never downloaded: Playwright launches /usr/bin/chromium."""

from __future__ import annotations

import json
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
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """`ftstudio up` on a free loopback port over a given workspace."""

    def __init__(self, ws: Path, env_extra: dict[str, str] | None = None, port: int | None = None):
        self.ws = ws
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "FTSTUDIO_WORKSPACE": str(ws),
            "HF_HUB_OFFLINE": "1",
            **(env_extra or {}),
        }
        for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL"):
            if var not in (env_extra or {}):
                env.pop(var, None)
        ftstudio = Path(sys.executable).with_name("ftstudio")
        self.log_path = ws.parent / f"dashboard-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ftstudio), "up", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/_stcore/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dashboard did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        lock = self.ws / "worker.lock"
        if lock.exists():
            try:
                os.kill(int(lock.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        for status in self.ws.glob("jobs/*/status.json"):  # jobs outlive their worker
            try:
                pid = json.loads(status.read_text()).get("pid")
                if pid:
                    os.killpg(pid, signal.SIGKILL)
            except (ValueError, OSError):
                pass
        self._log.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """The studio on an empty workspace; yields (base_url, workspace_path)."""
    ws = tmp_path_factory.mktemp("e2e") / "workspace"
    ws.mkdir()
    server = Dashboard(ws)
    yield server.url, ws
    server.stop()


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
