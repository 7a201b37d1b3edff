"""Reachability checks for the Settings page and `ftstudio doctor`; secrets are used here,
at the point of the request, and never returned in messages."""

from __future__ import annotations

import httpx

from backend.config import Settings, secret


def check_llm(
    cfg: Settings,
    timeout: float = 5.0,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> tuple[bool, str]:
    """GET {base}/models; says how many models the endpoint lists. `base_url` (default: the
    configured endpoint) gets `api_key` when given, else only a key bound to its origin
    (`llm.api_key_for`): the configured key never goes to another host."""
    from backend.integrations.llm import api_key_for

    url_base = base_url or cfg.openai_base_url
    if not url_base:
        return False, "no LLM endpoint configured (OPENAI_BASE_URL, or Settings)"
    key = api_key_for(base_url, cfg, api_key)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = url_base.rstrip("/") + "/models"
    try:
        r = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{url} is unreachable: {type(exc).__name__}"
    if r.status_code in (401, 403):
        return False, f"{url} refused the key (HTTP {r.status_code})"
    if r.status_code != 200:
        return False, f"{url} answered HTTP {r.status_code}"
    try:
        names = [m.get("id") for m in r.json().get("data", [])]
    except (ValueError, AttributeError):
        return False, f"{url} did not answer JSON"
    return True, f"reachable: {len(names)} model(s): {', '.join(map(str, names[:5]))}"


def check_label_studio(
    cfg: Settings,
    timeout: float = 5.0,
    *,
    url: str | None = None,
    token: str | None = None,
) -> tuple[bool, str]:
    """GET /health, then an authenticated call to check the token (default: the configured
    URL and token; a `url` given without a `token` is tried with none, never with the
    configured one)."""
    base_url = url or cfg.label_studio_url
    if not base_url:
        return False, "no Label Studio configured (LABEL_STUDIO_URL, or Settings)"
    token = token or (secret(cfg.label_studio_token) if url is None else None)
    base = base_url.rstrip("/")
    try:
        health = httpx.get(base + "/health", timeout=timeout)
        if health.status_code != 200:
            return False, f"{base}/health answered HTTP {health.status_code}"
        if not token:
            return False, "server is up, but no token is set (LABEL_STUDIO_API_KEY)"
        me = httpx.get(
            base + "/api/current-user/whoami",
            timeout=timeout,
            headers={"Authorization": f"Token {token}"},
        )
    except httpx.HTTPError as exc:
        return False, f"{base} is unreachable: {type(exc).__name__}"
    if me.status_code != 200:
        return False, f"server is up, but the token was refused (HTTP {me.status_code})"
    try:
        who = me.json()
        name = who.get("email") or who.get("username")
    except (ValueError, AttributeError):
        return False, f"{base} did not answer JSON for the signed-in user"
    return True, f"reachable, signed in as {name}"


def device_summary() -> dict:
    """Where jobs will run models. Imports torch, so call it from pages that need it."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "CPU",
        "cuda": cuda,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "bnb_4bit": "CUDA" if cuda else "CPU (float32)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
