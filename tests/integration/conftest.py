"""Integration fixtures shared across modules: ONE real Label Studio per test session.

It runs from its own venv (.venv-labelstudio; created on first use) with a data folder copied
from the migrated template, on a free port of 127.0.0.1, and is stopped at the end.
Tests that stop it (a server dying mid-pull) start it again on the same port and data folder;
`live_server` gives the current url and token either way.
"""

from __future__ import annotations

import socket

import pytest

from backend.workspace import Workspace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """(workspace, server info, API token) of the session's Label Studio."""
    from backend.integrations.labelstudio import server as srv

    ws = Workspace(tmp_path_factory.mktemp("ls") / "workspace").ensure()
    info, token = srv.up(ws, _free_port())
    yield ws, info, token
    srv.down(ws)


@pytest.fixture
def live_server(server):
    """The session's server, started again (same port, same data) if a test stopped it."""
    from backend.integrations.labelstudio import server as srv

    ws, info, _ = server
    return srv.up(ws, info.port)
