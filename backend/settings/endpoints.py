"""Which OpenAI-compatible endpoint a job may call, and how a key typed for it reaches the job.

Every user may pick the configured endpoint (OPENAI_BASE_URL) or one an admin allowed on the
Settings page; only an admin may name another base URL, and only an admin may give an API key
for one job. Such a key never enters the job's spec: `hand_key` writes it, inside the launching
action, to `secret.json` (0600) in the job's folder while that folder is still hidden, so the
job finds it at its start (backend/jobs/run.py takes and deletes it; the worker deletes it when
the job ends). Every launching action of an endpoint job calls `vet` and `hand_key`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from backend.action import ActionError, Ctx
from backend.auth import LOCAL_ADMIN, PermissionDenied
from backend.config import Settings, normal_url, unique_urls
from backend.jobs.context import write_job_key

_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$", re.IGNORECASE)


def check_url(value: str | None, what: str = "base URL") -> str | None:
    """An endpoint's base URL, trimmed: http(s) only, or None when blank."""
    value = (value or "").strip()
    if not value:
        return None
    if not _URL.match(value):
        raise ActionError(f"the {what} must look like http(s)://host[:port]/path, not {value!r}")
    return value


def choices(cfg: Settings) -> list[str]:
    """The endpoints anyone may pick: the configured one first, then the allowed ones."""
    configured = [cfg.openai_base_url] if cfg.openai_base_url else []
    return unique_urls([*configured, *cfg.allowed_endpoints])


def is_admin(ctx: Ctx) -> bool:
    return (ctx.actor or LOCAL_ADMIN).can("settings")


def vet(ctx: Ctx, base_url: str | None, api_key: str | None = None) -> str | None:
    """The base URL a job of `ctx.actor` may call (None: the configured endpoint); refuses a
    URL that is neither configured nor allowed unless an admin gave it, and a key from
    anyone but an admin (PermissionDenied, a ValueError)."""
    url = check_url(base_url)
    if api_key and not is_admin(ctx):
        raise PermissionDenied(
            f"{ctx.who} may not give an API key: only admins may; pick an endpoint an admin "
            "set up on the Settings page"
        )
    if url is None or normal_url(url) in choices(ctx.settings) or is_admin(ctx):
        return url
    offered = ", ".join(choices(ctx.settings)) or "none configured yet"
    raise PermissionDenied(
        f"{ctx.who} may use only the configured endpoint or one an admin allowed on the "
        f"Settings page ({offered}), not {url}; only admins may type another base URL"
    )


def hand_key(
    ctx: Ctx,
    base_url: str | None,
    api_key: str | None,
    fn: Callable[[Any, str], Any] | None = None,
) -> Callable[[Any, str], Any] | None:
    """`fn` for `action.launch` that also leaves `api_key` (typed for `base_url`) in the job's
    folder before it is queued; `fn` itself when no key was typed."""
    key = (api_key or "").strip()
    if not key:
        return fn
    if ctx.store is None:
        raise ActionError(
            "a key typed for one job is handed over while the job is queued, which needs the "
            "database: stop the dashboard, or launch this from the dashboard"
        )

    def with_key(cur, job_id: str):
        # the job's folder while it is still hidden (backend/jobs/queue.py `stage`): the job
        # becomes visible, to a worker too, only after this transaction commits
        staged = ctx.ws.jobs / f".{job_id}.tmp"
        if not staged.is_dir():
            raise ActionError(f"job {job_id} has no staged folder to hand its key to")
        write_job_key(staged, base_url, key)
        return fn(cur, job_id) if fn else None

    return with_key
