"""`ftstudio users add|list|role`: local accounts (the first admin is created here)."""

from __future__ import annotations

import sys

import typer

from backend import cli_common as common
from backend.store import users

users_app = typer.Typer(no_args_is_help=True, help="Local accounts and roles.")


@users_app.command("add")
def add(
    username: str,
    role: str = typer.Option(..., help="reviewer, analyst, lead or admin."),
    password_stdin: bool = typer.Option(False, help="Read the password from stdin."),
) -> None:
    """Add an account; there is no default password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = common.open_store(common.workspace())
    try:
        users.add_user(store, username, password, role)
    except users.UserError as exc:
        common.fail(str(exc), code=2)
    finally:
        store.close()
    typer.echo(f"added {username} ({role})")


@users_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Accounts and roles."""
    store = common.open_store(common.workspace())
    rows = users.list_users(store)
    store.close()
    if as_json:
        common.emit_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['username']:30} {row['role']}")


@users_app.command("role")
def role(username: str, new_role: str) -> None:
    """Change a user's role."""
    store = common.open_store(common.workspace())
    try:
        users.set_role(store, username, new_role)
    except users.UserError as exc:
        common.fail(str(exc), code=2)
    finally:
        store.close()
    typer.echo(f"{username} is now {new_role}")
