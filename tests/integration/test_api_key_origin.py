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
