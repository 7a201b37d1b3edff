"""Settings an admin changes in the browser, in effect at once (no restart).

`save_settings` writes plain values to `workspace/settings.json` and secrets to
`workspace/secrets.json` (both 0600; `backend/config.py` reads them, after the environment and
before `.env`); the audit row names what changed, never a secret's value. Saving what is saved
already answers `AlreadyDone`. `reveal_local_labelstudio` hands an admin the local Label Studio's
sign-in (audited); the page shows it only on that request.

    save_settings(ctx, values={"openai_base_url": "http://127.0.0.1:8000/v1"},
                  secrets={"openai_api_key": "sk-..."})
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store
from backend.auth import require
from backend.config import (
    SAVED_FIELDS,
    SECRET_FIELDS,
    normal_url,
    saved_values,
    unique_urls,
    write_saved,
)
from backend.integrations.labelstudio import server as lss
from backend.settings.endpoints import check_url

URL_FIELDS = {"openai_base_url": "LLM endpoint URL", "label_studio_url": "Label Studio URL"}
SECRET_NAMES = ("openai_api_key", "label_studio_token")


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One saver at a time per workspace (threads of the dashboard, a CLI beside it)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(root / ".settings.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_values(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values checked: URLs http(s), the allowed list as normalised URLs; blank: None
    (the saved value is removed, so .env or secrets.toml apply again)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SAVED_FIELDS:
            raise ActionError(
                f"{name!r} cannot be saved here; settings that can: {', '.join(SAVED_FIELDS)}"
            )
        if name == "allowed_endpoints":
            items = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
            for url in items:
                check_url(url, "allowed endpoint")
            out[name] = unique_urls(items) or None
        elif name in URL_FIELDS:
            url = check_url(value, URL_FIELDS[name])
            out[name] = normal_url(url) if url else None
        else:
            out[name] = (value or "").strip() or None
    return out


def _split(saved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    plain = {k: v for k, v in saved.items() if k in SAVED_FIELDS}
    secret = {k: v for k, v in saved.items() if k in SECRET_FIELDS}
    return plain, secret


def save_settings(
    ctx: Ctx,
    *,
    values: dict[str, Any] | None = None,
    secrets: dict[str, str | None] | None = None,
    endpoint_keys: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Save settings edited in the browser. `values`: plain settings (SAVED_FIELDS; blank
    removes the saved value); `secrets`: openai_api_key / label_studio_token -> a new value,
    None to remove the saved one (absent: unchanged); `endpoint_keys`: an allowed endpoint's
    base URL -> its key (None removes it). Returns {"changed": [names]}; nothing to change
    answers AlreadyDone."""
    require(ctx.actor, "settings")
    need_store(ctx)
    clean = _clean_values(values or {})
    typed: dict[str, str | None] = {}
    for name, value in (secrets or {}).items():
        if name not in SECRET_NAMES:
            raise ActionError(f"{name!r} is not a secret setting: {', '.join(SECRET_NAMES)} are")
        typed[name] = value.strip() if isinstance(value, str) and value.strip() else None
    keys = {normal_url(u): (k or "").strip() or None for u, k in (endpoint_keys or {}).items()}
    root = ctx.ws.root

    with _locked(root):
        old_plain, old_secret = _split(saved_values(root))
        wrote = False

        def fn(cur) -> dict[str, Any]:
            nonlocal wrote
            # read again inside the transaction: a save between the page's draw and this one
            plain, secret = _split(saved_values(root))
            new_plain = {**plain, **clean}
            new_secret = {**secret, **typed}
            allowed = new_plain.get("allowed_endpoints") or []
            stored = dict(secret.get("endpoint_keys") or {})
            for url, key in keys.items():
                if key and url not in allowed:
                    raise ActionError(
                        f"{url} is not an allowed endpoint: add it to the list first, then its key"
                    )
                stored[url] = key
            # a key of an endpoint no longer allowed goes with it
            new_secret["endpoint_keys"] = {u: k for u, k in stored.items() if k and u in allowed}
            new_plain = {k: v for k, v in new_plain.items() if v not in (None, "", [])}
            new_secret = {k: v for k, v in new_secret.items() if v not in (None, "", {})}
            changed = sorted(
                {k for k in {*plain, *new_plain} if plain.get(k) != new_plain.get(k)}
                | {k for k in {*secret, *new_secret} if secret.get(k) != new_secret.get(k)}
            )
            if not changed:
                raise AlreadyDone("nothing to change: the settings are saved as they are")
            write_saved(root, new_plain, new_secret)
            wrote = True
            return {
                "changed": changed,
                "values": {k: new_plain.get(k) for k in changed if k in SAVED_FIELDS},
                "secrets": {
                    k: ("set" if new_secret.get(k) else "removed")
                    for k in changed
                    if k in SECRET_NAMES
                },
                "endpoint_keys": sorted(new_secret.get("endpoint_keys", {}))
                if "endpoint_keys" in changed
                else None,
            }

        try:
            result = action.change(ctx, "settings", "settings.save", None, fn, detail=_detail)
        except BaseException:
            if wrote:  # the audit row did not commit: neither does the change
                write_saved(root, old_plain, old_secret)
            raise
    return result


def _detail(result: dict[str, Any]) -> dict[str, Any]:
    """The audit row: what changed, plain values as saved, secrets only as set / removed,
    and for endpoint keys only the URLs that have one."""
    return {k: v for k, v in result.items() if v not in (None, {}, [])}


def reveal_local_labelstudio(ctx: Ctx) -> dict[str, str]:
    """The local Label Studio's url, admin user, password and API token, for an admin who asked
    (audited, the values never written anywhere). ActionError when none was started here."""
    require(ctx.actor, "settings")
    creds = lss.local_credentials(ctx.ws)
    if not creds:
        raise ActionError("no local Label Studio was started in this workspace: press Start first")
    if ctx.store is not None:
        action.record(ctx, "settings", "settings.reveal_labelstudio", creds.get("url") or None)
    return creds
