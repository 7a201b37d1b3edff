"""Reachability checks for the Settings page and `ftstudio doctor`; secrets are used here,
at the point of the request, and never returned in messages."""

from __future__ import annotations

import httpx

from backend.config import Settings, secret


def check_llm(cfg: Settings, timeout: float = 5.0) -> tuple[bool, str]:
    """GET {base}/models with the key; says how many models the endpoint lists."""
    if not cfg.openai_base_url:
        return False, "no LLM endpoint configured (OPENAI_BASE_URL)"
    headers = {}
    if cfg.openai_api_key:
        headers["Authorization"] = f"Bearer {secret(cfg.openai_api_key)}"
    url = cfg.openai_base_url.rstrip("/") + "/models"
    try:
        r = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{url} is unreachable: {type(exc).__name__}"
    if r.status_code != 200:
        return False, f"{url} answered HTTP {r.status_code}"
    try:
        names = [m.get("id") for m in r.json().get("data", [])]
    except ValueError:
        return False, f"{url} did not answer JSON"
    return True, f"reachable: {len(names)} model(s): {', '.join(map(str, names[:5]))}"


def check_label_studio(cfg: Settings, timeout: float = 5.0) -> tuple[bool, str]:
    """GET /health, then an authenticated call to check the token."""
    if not cfg.label_studio_url:
        return False, "no Label Studio configured (LABEL_STUDIO_URL)"
    base = cfg.label_studio_url.rstrip("/")
    try:
        health = httpx.get(base + "/health", timeout=timeout)
        if health.status_code != 200:
            return False, f"{base}/health answered HTTP {health.status_code}"
        if not cfg.label_studio_token:
            return False, "server is up, but no token is set (LABEL_STUDIO_API_KEY)"
        me = httpx.get(
            base + "/api/current-user/whoami",
            timeout=timeout,
            headers={"Authorization": f"Token {secret(cfg.label_studio_token)}"},
        )
    except httpx.HTTPError as exc:
        return False, f"{base} is unreachable: {type(exc).__name__}"
    if me.status_code != 200:
        return False, f"server is up, but the token was refused (HTTP {me.status_code})"
    return True, f"reachable, signed in as {me.json().get('email') or me.json().get('username')}"


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
