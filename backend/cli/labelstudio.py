"""`ftstudio labelstudio up|down|status`: the workspace's local Label Studio server.

The token is printed only by `labelstudio up` (as `token: ...`); otherwise it stays in the
workspace's 0600 credentials file. `connection()` resolves the Label Studio a command talks to:
settings (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY) first, else the workspace's local server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from backend.action import Ctx
from backend.cli import common
from backend.review import labelstudio_actions as ls_actions

app = typer.Typer(no_args_is_help=True, help="A local Label Studio server.")


@contextmanager
def _ctx() -> Iterator[Ctx]:
    """The shell's action context, with the store when no dashboard holds it (then the
    start or stop is audited there; beside a dashboard it is not)."""
    store = common.try_open_store(common.workspace())
    try:
        yield common.shell(store)
    finally:
        if store is not None:
            store.close()


@app.command("up")
def ls_up(
    port: int = typer.Option(8080, help="Port on 127.0.0.1 (the next free one if busy)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Start the workspace's Label Studio (its own venv, created on first use)."""
    from backend.integrations.labelstudio.server import LabelStudioServerError

    with _ctx() as ctx:
        try:
            info, token = ls_actions.start_labelstudio(ctx, port)
        except (LabelStudioServerError, OSError, ValueError) as exc:
            common.fail(str(exc))
    if as_json:
        common.emit_json(
            {"url": info.url, "token": token, "pid": info.pid, "start_seconds": info.start_seconds}
        )
        return
    typer.echo(f"url: {info.url}")
    typer.echo(f"token: {token}")
    typer.echo(
        f"started in {info.start_seconds}s (pid {info.pid}); stop with `ftstudio labelstudio down`"
    )


@app.command("down")
def ls_down() -> None:
    """Stop the workspace's Label Studio."""
    with _ctx() as ctx:
        was = ls_actions.stop_labelstudio(ctx)
    typer.echo("stopped" if was else "no local Label Studio was running")


@app.command("status")
def ls_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether the workspace's Label Studio runs, and where."""
    from backend.integrations.labelstudio import server as srv

    report = srv.status(common.workspace())
    if as_json:
        common.emit_json(report)
        return
    for key, value in report.items():
        typer.echo(f"{key:14} {value}")


def connection() -> tuple[str, str]:
    """Label Studio url and token: settings first, else the workspace's local server."""
    from backend.integrations.labelstudio.client import connection as resolve

    url, token = resolve(common.settings(), common.workspace())
    if url is None or token is None:
        common.fail(
            "no Label Studio configured: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
            "or run `ftstudio labelstudio up`"
        )
    return url, token
