"""The configured API key goes only to the configured endpoint's origin: a base URL typed into
a form (another host or port) gets no key, unless one is given for it explicitly."""

from __future__ import annotations

import asyncio

from backend.integrations import llm
from tests.support.openai_server import OpenAIServer

KEY = "sk-configured-0123456789"


def _ask(base_url: str | None, api_key: str | None = None) -> None:
    provider = llm.make_provider("openai", "test-model", base_url=base_url, api_key=api_key)

    async def one() -> None:
        try:
            await provider.complete(
                [[{"role": "user", "content": "hi"}]], schema={}, temperature=0.0, max_tokens=8
            )
        finally:
            await provider.aclose()

    asyncio.run(one())


def test_the_configured_key_reaches_only_the_configured_origin(monkeypatch):
    with OpenAIServer() as configured, OpenAIServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", configured.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        _ask(None)  # the configured endpoint
        _ask(configured.base_url.rstrip("/") + "/")  # same origin, written differently
        assert configured.authorizations == [f"Bearer {KEY}"] * 2
        _ask(other.base_url)  # typed into a form: another port on the same host
        assert other.authorizations and f"Bearer {KEY}" not in other.authorizations
        _ask(other.base_url, api_key="sk-given-for-this-one")
        assert other.authorizations[-1] == "Bearer sk-given-for-this-one"


def test_origin_compares_scheme_host_and_port():
    assert llm.origin("http://127.0.0.1:8000/v1") == llm.origin("HTTP://127.0.0.1:8000/other")
    assert llm.origin("http://127.0.0.1:8000/v1") != llm.origin("http://127.0.0.1:8001/v1")
    assert llm.origin("http://example.com/v1") != llm.origin("https://example.com/v1")
    assert llm.origin(None) == llm.origin("https://api.openai.com/v1")


def test_an_allowed_endpoints_saved_key_reaches_only_its_origin(ws, monkeypatch):
    """A key an admin saved for an allowed endpoint goes to that endpoint's origin only; the
    configured key still goes only to the configured one."""
    from backend.config import write_saved

    with OpenAIServer() as configured, OpenAIServer() as allowed, OpenAIServer() as typed:
        write_saved(
            ws.root,
            {"openai_base_url": configured.base_url, "allowed_endpoints": [allowed.base_url]},
            {"openai_api_key": KEY, "endpoint_keys": {allowed.base_url.rstrip("/"): "sk-allowed"}},
        )
        _ask(None)
        _ask(allowed.base_url)
        _ask(typed.base_url)
        assert configured.authorizations == [f"Bearer {KEY}"]
        assert allowed.authorizations == ["Bearer sk-allowed"]
        assert typed.authorizations == ["Bearer not-needed"]  # no key of ours


def test_a_key_taken_by_a_job_is_bound_to_its_origin(monkeypatch):
    """What backend/jobs/run.py does with a job's secret.json: the key goes to the origin it
    was typed for, never elsewhere, and is forgotten when the job ends."""
    with OpenAIServer() as configured, OpenAIServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", configured.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        llm.use_job_key(other.base_url, "sk-typed-for-the-job")
        try:
            _ask(other.base_url)
            _ask(None)
        finally:
            llm.use_job_key(None, None)
        _ask(other.base_url)
        assert other.authorizations == ["Bearer sk-typed-for-the-job", "Bearer not-needed"]
        assert configured.authorizations == [f"Bearer {KEY}"]


def test_test_connection_never_sends_the_configured_key_elsewhere(monkeypatch):
    """`connections.check_llm` of a typed URL: no configured key in the request."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from backend import connections
    from backend.config import Settings

    seen: list[str | None] = []

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"data": [{"id": "m"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        ok, message = connections.check_llm(Settings(), base_url=url)
        assert ok, message
        ok, _ = connections.check_llm(Settings(), base_url=url, api_key="sk-given")
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        connections.check_llm(Settings())
    finally:
        srv.shutdown()
    assert seen == [None, "Bearer sk-given", f"Bearer {KEY}"]
