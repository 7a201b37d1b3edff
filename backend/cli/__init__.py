"""`ftstudio`: the studio from the shell. One module per command group; `COMMANDS` is the one
table that assembles them (a Typer group or a single command under each name).

Run as `ftstudio ...` or `python -m backend.cli ...`.
"""

from __future__ import annotations

import typer

from backend.cli import chat as chat_cli
from backend.cli import dataset, jobs, labelstudio, monitor, prefs, review, system, train, users
from backend.cli import evals as evals_cli
from backend.cli import export as export_cli

# name -> a command group (typer.Typer) or a single command (a function), in --help order
COMMANDS: dict[str, typer.Typer | object] = {
    "up": system.up,
    "worker": system.worker_cmd,
    "doctor": system.doctor,
    "demo-model": system.demo_model,
    "jobs": jobs.app,
    "users": users.app,
    "dataset": dataset.app,
    "generate": dataset.generate,
    "labelstudio": labelstudio.app,
    "review": review.app,
    "train": train.train_cmd,
    "sweep": train.sweep_cmd,
    "runs": train.app,
    "export": export_cli.export_cmd,
    "chat": chat_cli.chat_cmd,
    "prefs": prefs.app,
    "monitor": monitor.app,
    "eval": evals_cli.app,
}


def build() -> typer.Typer:
    # plain help: Typer's rich panels print a switch such as --json as "--json <bool>"
    root = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        help="Fine-Tuning Studio: data, review, training, comparison, preferences.",
    )
    for name, entry in COMMANDS.items():
        if isinstance(entry, typer.Typer):
            entry.rich_markup_mode = None
            root.add_typer(entry, name=name)
        else:
            root.command(name)(entry)
    return root


app = build()


def main() -> None:
    app()
