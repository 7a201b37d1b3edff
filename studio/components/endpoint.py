"""One endpoint picker for every form that calls an OpenAI-compatible endpoint (Generate, the
Review judge, the Preferences judge and answers, the Monitoring quality judge).

Everyone picks the configured endpoint or one an admin allowed on the Settings page; only
admins may also type another base URL, and only admins see a field for that URL's API key. The
typed key is returned for the launching action (which hands it to the job in a 0600 file,
never in its spec) and is dropped from the form after a launch (`forget`). The actions check
the same rule (backend/settings/endpoints.py), so hiding a field is never the only guard.

    chosen = endpoint.picker("datasets_gen")
    actions.generate(ctx, ds, base_url=chosen.base_url, api_key=chosen.api_key)
    endpoint.forget("datasets_gen")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from backend.config import normal_url
from backend.settings.endpoints import choices
from studio import auth, resources

OTHER = "Another base URL (admins)…"
# session-state key (per picker) of a counter that renews the key field after a launch
KEY_NONCE = "{prefix}_endpoint_nonce"


@dataclass(frozen=True)
class Endpoint:
    """What a form's user chose: `base_url` (None: nothing configured, the job's default) and,
    from an admin only, a key for that URL (never shown, never stored)."""

    base_url: str | None
    api_key: str | None = field(default=None, repr=False)


def _nonce(prefix: str) -> int:
    return int(st.session_state.get(KEY_NONCE.format(prefix=prefix), 0))


def forget(prefix: str) -> None:
    """Empty the picker's key field (call after a launch, before st.rerun): the next run
    draws a new field, and the typed key is gone from this browser's session."""
    st.session_state[KEY_NONCE.format(prefix=prefix)] = _nonce(prefix) + 1


def picker(
    prefix: str,
    *,
    allow_key: bool = True,
    current: str | None = None,
    disabled: bool = False,
    label: str = "Endpoint",
    follow_configured: bool = False,
) -> Endpoint:
    """Draw the picker (inside or outside a form) and return the choice. `current`: a URL
    saved before (a monitor's judge endpoint), preselected; `allow_key` False for settings
    that outlive one job (a key typed here could not reach later jobs); `follow_configured`:
    the configured endpoint comes back as None, so what is saved follows Settings."""
    cfg = resources.settings()
    admin = auth.actor().can("settings")
    offered = choices(cfg)
    configured = normal_url(cfg.openai_base_url) if cfg.openai_base_url else None
    saved = normal_url(current) if current else None
    # a URL an admin saved before stays what a non-admin sees (and keeps), listed or not
    kept = [saved] if saved and saved not in offered and not admin else []
    options = [*offered, *kept, *([OTHER] if admin else [])]
    if not options:
        st.caption(
            f"{label}: none configured. An admin sets the LLM endpoint on the Settings page."
        )
        return Endpoint(None)
    if saved in options:
        index = options.index(saved)
    else:
        index = options.index(OTHER) if saved and admin else 0

    def describe(url: str) -> str:
        if url == OTHER:
            return url
        if url in kept:
            return f"{url} (set by an admin)"
        tags = ["configured"] if url == configured else ["allowed"]
        if url != configured and url in cfg.endpoint_keys:
            tags.append("key saved")
        return f"{url} ({', '.join(tags)})"

    chosen = st.selectbox(
        label,
        options,
        index=index,
        format_func=describe,
        disabled=disabled,
        key=f"{prefix}_endpoint",
        help="The configured endpoint, or one an admin allowed on the Settings page. Its "
        "key, when one is saved, goes only to that endpoint.",
    )
    if not admin:
        return Endpoint(None if follow_configured and chosen == configured else chosen)
    other = st.text_input(
        "Another base URL (admins only)",
        value=saved if saved and saved not in offered else "",
        disabled=disabled,
        key=f"{prefix}_endpoint_other",
        placeholder="http://host:8000/v1",
        help="Used instead of the list when filled in. The configured key never goes to "
        "another host; give this URL's own key below if it needs one.",
    ).strip()
    key = None
    if allow_key:
        key = st.text_input(
            "API key for that URL (admins only)",
            type="password",
            disabled=disabled,
            key=f"{prefix}_endpoint_key_{_nonce(prefix)}",
            help="Sent only to the URL above, for this one job: handed to the job in a "
            "private file it deletes at its start, never in its spec, the database or logs.",
        ).strip()
    if other:
        return Endpoint(other, key or None)
    if chosen == OTHER:  # nothing typed yet: the first listed, or the job's default
        chosen = offered[0] if offered else None
    if follow_configured and chosen == configured:
        chosen = None
    return Endpoint(chosen, key or None)
