"""Reward actions: adding a Python reward function file to the workspace's rewards/ folder
(leads and admins only), and vetting a GRPO run's reward specs before it is queued.

    add_reward_file(ctx, "format_checks", source)   # -> rewards/format_checks.py
    vet_rewards(ctx, ["regex:^\\\\d+$@1", "file:rewards/format_checks.py:has_digits@0.5"])

A reward file is checked from its source (it parses; the named function takes `completions`
and **kwargs, as TRL calls it): nothing in it runs in the dashboard, only in the job.
"""

from __future__ import annotations

import re
from pathlib import Path

from backend import action
from backend.action import ActionError, Ctx
from backend.auth import require
from backend.security import allowed_roots, confine_any
from backend.settings import endpoints
from backend.train.rewards import (
    REWARDS_DIR,
    RewardError,
    check_specs,
    parse_spec,
    reward_functions,
)

_NAME = re.compile(r"^[A-Za-z_]\w{0,63}$")
MAX_BYTES = 256 * 1024


def rewards_dir(ctx: Ctx) -> Path:
    return ctx.ws.root / REWARDS_DIR


def reward_files(ctx: Ctx) -> dict[str, list[str]]:
    """rewards/NAME.py -> its usable reward functions, for the run form's picker."""
    folder = rewards_dir(ctx)
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        try:
            out[f"{REWARDS_DIR}/{path.name}"] = reward_functions(path.read_text("utf-8"))
        except (RewardError, OSError, UnicodeDecodeError):
            out[f"{REWARDS_DIR}/{path.name}"] = []
    return out


def add_reward_file(ctx: Ctx, name: str, source: str, *, replace: bool = False) -> dict:
    """Save `source` as rewards/NAME.py (audited `train.add_reward`); it must parse and define
    at least one reward function. An existing file is kept unless `replace`. Returns
    {path, functions}."""
    require(ctx.actor, "launch_job")
    name = name.removesuffix(".py")
    if not _NAME.match(name):
        raise ActionError(
            f"reward file name {name!r} is not allowed: use letters, digits and '_', "
            "starting with a letter"
        )
    if len(source.encode()) > MAX_BYTES:
        raise ActionError(f"reward file {name}.py is larger than {MAX_BYTES // 1024} KiB")
    try:
        functions = reward_functions(source)
    except RewardError as exc:
        raise ActionError(f"{name}.py does not parse: {exc}") from None
    if not functions:
        raise ActionError(
            f"{name}.py defines no reward function: write def NAME(prompts, completions, "
            "**kwargs) -> list[float]"
        )
    path = rewards_dir(ctx) / f"{name}.py"
    if path.exists() and not replace:
        raise ActionError(f"{REWARDS_DIR}/{name}.py exists; replace it explicitly")

    def write(_cur) -> dict:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(source, encoding="utf-8")
        tmp.replace(path)
        return {"path": f"{REWARDS_DIR}/{path.name}", "functions": functions}

    if ctx.store is None:  # the shell beside a running dashboard: the file is the record
        return write(None)
    return action.change(
        ctx,
        "launch_job",
        "train.add_reward",
        f"{REWARDS_DIR}/{path.name}",
        write,
        detail={"functions": functions},
    )


def vet_rewards(ctx: Ctx, specs: list[str], judge_base_url: str | None = None) -> list[str]:
    """A GRPO run's reward specs, checked before it is queued: the syntax, the files they name
    (a form user's files confined to the workspace), the schema, the rubric, each reward
    function's signature, and a judge's endpoint (the configured one or an allowed one, any
    for an admin, as for every job that calls an endpoint). RewardError or PermissionDenied
    (ValueErrors) name the first problem."""
    require(ctx.actor, "launch_job")
    if not specs:
        raise RewardError("rewards: give at least one reward function")
    parsed = [parse_spec(s) for s in specs]
    if any(s.kind == "judge" for s in parsed):
        endpoints.vet(ctx, judge_base_url)
    if ctx.actor is not None:
        roots = allowed_roots(ctx.settings, ctx.ws)
        for s in parsed:
            if s.kind in ("json-schema", "judge"):
                confine_any(s.arg, roots)  # relative to the workspace, inside it
    check_specs([s.text for s in parsed], ctx.ws.root)
    return [s.text for s in parsed]
