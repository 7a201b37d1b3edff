"""`ftstudio users add|list|role|email`: local accounts (the first admin is created here)."""

from __future__ import annotations

import sys

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.store import users
from backend.users import actions as user_actions

app = typer.Typer(no_args_is_help=True, help="Local accounts and roles.")


@app.command("add")
def add(
    username: str,
    role: str = typer.Option(..., help="reviewer, analyst, lead or admin."),
    password_stdin: bool = typer.Option(False, help="Read the password from stdin."),
    email: str | None = typer.Option(
        None, help="The user's Label Studio e-mail: their Label Studio work counts as theirs."
    ),
) -> None:
    """Add an account; there is no default password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with common.opened(ingest=False) as ctx:
        try:
            added = user_actions.add_user(ctx, username, password, role, email=email)
        except AlreadyDone as exc:
            typer.echo(str(exc))
            return
        except ValueError as exc:
            common.fail(str(exc), code=2)
    linked = f", Label Studio e-mail {added['email']}" if added["email"] else ""
    typer.echo(f"added {username} ({role}){linked}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Accounts and roles."""
    with common.opened(ingest=False) as ctx:
        rows = users.list_users(ctx.store)
    common.out(
        rows,
        as_json,
        lambda rs: "\n".join(f"{r['username']:30} {r['role']:9} {r['email'] or '-'}" for r in rs),
    )


@app.command("role")
def role(username: str, new_role: str) -> None:
    """Change a user's role."""
    with common.opened(ingest=False) as ctx:
        try:
            user_actions.set_role(ctx, username, new_role)
        except AlreadyDone as exc:
            typer.echo(str(exc))
            return
        except ValueError as exc:
            common.fail(str(exc), code=2)
    typer.echo(f"{username} is now {new_role}")


@app.command("email")
def email_(
    username: str,
    email: str | None = typer.Argument(None, help="The Label Studio account's e-mail."),
    clear: bool = typer.Option(False, "--clear", help="Remove the user's e-mail."),
) -> None:
    """Link a user to their Label Studio e-mail (or --clear it): verdicts and judgements from
    that Label Studio account are recorded under the user name, those already pulled too."""
    if clear == bool(email):
        common.fail("give either an EMAIL or --clear", code=2)
    with common.opened(ingest=False) as ctx:
        try:
            moved = user_actions.set_email(ctx, username, None if clear else email)
        except AlreadyDone as exc:
            typer.echo(str(exc))
            return
        except ValueError as exc:
            common.fail(str(exc), code=2)
    what = f"now {moved['email']}" if moved["email"] else "cleared"
    typer.echo(
        f"{username}: Label Studio e-mail {what}; re-attributed {moved['reviews']} verdicts, "
        f"{moved['judgements']} judgements"
    )
