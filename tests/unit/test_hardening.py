"""Hardening rules that are checked in code: loopback by default, no unpickling of
untrusted files, text rendered as text."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
            if "use_safetensors=True" not in _call_args(text, call.end()):
                offenders.append(f"{rel}: model loaded without use_safetensors=True")
    assert offenders == []


def test_pages_never_render_unsafe_html():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources("pages", "studio")
        if "unsafe_allow_html=True" in path.read_text() or "st.html(" in path.read_text()
    ]
    assert offenders == []
