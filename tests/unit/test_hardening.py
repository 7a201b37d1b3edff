"""Hardening rules that are checked in code: loopback by default, no unpickling of
untrusted files, text rendered as text."""

from __future__ import annotations

import os
import re
import signal
import tomllib
from pathlib import Path

import pytest

from backend.cli.system import dashboard_command

ROOT = Path(__file__).resolve().parents[2]


def _sources(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_dashboard_binds_loopback_unless_told_otherwise():
    cmd = dashboard_command(8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert dashboard_command(8600, "0.0.0.0")[cmd.index("--server.address") + 1] == "0.0.0.0"


def _call_args(text: str, start: int) -> str:
    """The argument text of a call whose opening parenthesis ends at `start`."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text[start:]


def test_no_pickle_loading_and_models_load_as_safetensors():
    offenders = []
    for path in _sources("backend", "studio", "pages"):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if re.search(r"\bimport pickle\b|\bpickle\.loads?\(|joblib\.load|dill\.", text):
            offenders.append(f"{rel}: pickle")
        if re.search(r"torch\.load\((?![^)]*weights_only=True)", text):
            offenders.append(f"{rel}: torch.load without weights_only=True")
        if "trust_remote_code=True" in text:
            offenders.append(f"{rel}: trust_remote_code")
        for call in re.finditer(r"AutoModel\w*\.from_pretrained\(", text):
            args = _call_args(text, call.end())
            # a GGUF file holds tensors and metadata only, never pickled code
            if "use_safetensors=True" not in args and "gguf_file=" not in args:
                offenders.append(f"{rel}: model loaded without use_safetensors=True")
    assert offenders == []


def test_pages_never_render_unsafe_html():
    """No HTML from pages or the shell, but the one redirect of studio/session.py, which
    writes a path it built and checked itself (never user text)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources("pages", "studio")
        if "unsafe_allow_html=True" in path.read_text()
        or ("st.html(" in path.read_text() and path.name != "session.py")
    ]
    assert offenders == []
    redirect = (ROOT / "studio" / "session.py").read_text()
    assert redirect.count("st.html(") == 1 and "target = safe_next(path)" in redirect


def test_single_user_mode_refuses_a_non_loopback_address_from_the_cli(ws):
    from typer.testing import CliRunner

    from backend.cli import app

    result = CliRunner().invoke(app, ["up", "--address", "0.0.0.0", "--port", "8599"])
    assert result.exit_code == 1
    assert "single-user mode" in result.output and "0.0.0.0" in result.output


@pytest.mark.e2e
def test_single_user_mode_refuses_the_address_it_actually_bound(ws, tmp_path):
    """`streamlit run` from another folder skips .streamlit/config.toml and binds every
    interface: the page reads the socket really bound and refuses single-user mode there."""
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    port = free_port()
    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws.root), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "studio" / "server.py"),
            "--server.address",
            "0.0.0.0",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("only serves on 127.0.0.1").wait_for(timeout=60_000)
            assert "0.0.0.0" in page.content()
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
