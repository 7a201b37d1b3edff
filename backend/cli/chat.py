"""`ftstudio chat RUN [--base]`: talk to a run's model in the terminal.

    ftstudio chat 20250101-...-train-ab12            # the fine-tune
    ftstudio chat RUN --base --temperature 0         # the base's answer, then the run's

Loads the run's base model once with the run's adapter on it (backend/playground/chat.py) and
answers each line typed, streaming tokens as they come. With `--base` every prompt is answered
by the base (adapter off) and by the run (adapter on), one after the other. The conversation
carries on per model; an empty line or end of input ends it.
"""

from __future__ import annotations

import sys

import typer

from backend.cli import common


def chat_cmd(
    run_id: str = typer.Argument(..., help="The training run to talk to."),
    base: bool = typer.Option(False, "--base", help="Answer with the base model too."),
    temperature: float = typer.Option(0.7, help="0 = greedy."),
    top_p: float = typer.Option(0.9, help="Nucleus sampling mass."),
    max_new_tokens: int = typer.Option(128, help="Longest answer, in tokens."),
    seed: int = typer.Option(0, help="Sampling seed."),
    system: str = typer.Option(None, help="A system prompt for the conversation."),
) -> None:
    """Chat with a run's fine-tuned model (and its base, side by side, with --base)."""
    from backend.export.actions import run_parts
    from backend.playground.chat import BASE, ChatModels, Sampling

    ws = common.workspace()
    try:
        base_model, adapter = run_parts(ws, run_id)
        sampling = Sampling(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
    except ValueError as exc:
        common.fail(str(exc), code=2)
    device = "cuda" if _cuda() else "cpu"
    typer.echo(f"loading {base_model} with the adapter of {run_id} on {device} ...", err=True)
    models = ChatModels(base_model, device)
    models.add_run(run_id, adapter)
    sources = [BASE, run_id] if base else [run_id]
    start = [{"role": "system", "content": system}] if system else []
    history = {s: list(start) for s in sources}
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line.strip():
            break
        for source in sources:
            history[source].append({"role": "user", "content": line.strip()})
            typer.echo(f"{'base' if source == BASE else 'run'}> ", nl=False)
            pieces = []
            for piece in models.stream(source, history[source], sampling):
                pieces.append(piece)
                typer.echo(piece, nl=False)
            typer.echo("")
            history[source].append({"role": "assistant", "content": "".join(pieces)})


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available() and common.settings().device != "cpu"
