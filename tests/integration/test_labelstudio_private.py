"""The workspace's local Label Studio keeps its secrets to its owner: its folder and its data
folder (whose database holds the API token) are 0700, its credentials file 0600, and its data
folder has a Django SECRET_KEY of its own (in a 0600 .env), never the template's. Against the
REAL server the session starts (tests/integration/conftest.py)."""

from __future__ import annotations

import shutil

import pytest

from backend.integrations.labelstudio import server as srv

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_the_running_servers_files_are_private(server):
    ws, info, token = server
    folder = srv.state_dir(ws)
    data = folder / "data"
    assert str(data) == info.data_dir
    assert _mode(folder) == 0o700 and _mode(data) == 0o700
    assert _mode(folder / "credentials.json") == 0o600
    assert _mode(data / ".env") == 0o600
    assert srv.local_credentials(ws)["token"] == token
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


def test_its_secret_key_is_its_own(server, tmp_path):
    ws, _, _ = server
    key = srv._env_secret(srv.state_dir(ws) / "data" / ".env")
    assert key and len(key) >= 50
    template = srv.VENV / "template-data"
    assert key != srv._env_secret(template / ".env")
    # a data folder copied from a template that still carries a key gets a new one, and
    # two copies never share one
    old = tmp_path / "old-template"
    old.mkdir()
    (old / ".env").write_text("\nSECRET_KEY=copied-into-every-workspace\n")
    keys = set()
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(old, copy)
        srv.own_secret_key(copy, old)
        keys.add(srv._env_secret(copy / ".env"))
        assert _mode(copy / ".env") == 0o600
        srv.own_secret_key(copy, old)  # kept from then on
        assert srv._env_secret(copy / ".env") in keys
    assert len(keys) == 2 and "copied-into-every-workspace" not in keys


def test_a_wider_folder_is_closed_again_on_start(server, live_server):
    ws, info, _ = server
    folder = srv.state_dir(ws)
    srv.down(ws)
    folder.chmod(0o755)
    (folder / "data").chmod(0o755)
    (folder / "credentials.json").chmod(0o644)
    again, _ = srv.up(ws, info.port)
    assert again.url == info.url
    assert _mode(folder) == 0o700 and _mode(folder / "data") == 0o700
    assert _mode(folder / "credentials.json") == 0o600
