"""The `ftstudio` command: the dashboard, the worker, jobs, the demo model and a health check.

ftstudio up [--port 8501]       serve the dashboard on 127.0.0.1
ftstudio worker                 run queued jobs in this terminal
ftstudio jobs list|show|cancel|resume
ftstudio demo-model --out DIR   build the tiny demo model
ftstudio doctor [--json]        what this machine and workspace can do
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from backend import cli_common as common
from backend.drift.cli import monitor_app
from backend.jobs import queue
from backend.jobs.queue import JobError
from backend.jobs.status import JobStatus, JobStatusError, format_seconds
from backend.prefs.cli import prefs_app
from backend.review.cli import labelstudio_app, review_app
from backend.synth.cli import dataset_app, generate
from backend.train.cli import runs_app, sweep_cmd, train_cmd
from backend.users_cli import users_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Fine-Tuning Studio: data, review, training, comparison, preferences.",
)
jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, cancel and resume jobs.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(users_app, name="users")
app.add_typer(labelstudio_app, name="labelstudio")
app.add_typer(review_app, name="review")
app.add_typer(prefs_app, name="prefs")
app.add_typer(runs_app, name="runs")
app.add_typer(monitor_app, name="monitor")
app.add_typer(dataset_app, name="dataset")
app.command("generate")(generate)
app.command("train")(train_cmd)
app.command("sweep")(sweep_cmd)

ROOT = Path(__file__).resolve().parent.parent


@app.command()
def up(
    port: int = typer.Option(8501, help="Port on 127.0.0.1."),
    address: str = typer.Option(
        "127.0.0.1",
        help="Bind address; keep loopback unless the studio sits behind an authenticating proxy.",
    ),
) -> None:
    """Serve the dashboard (Streamlit) with the demo workspace on first use."""
    ws = common.workspace()  # resolved here, from the caller's folder and settings
    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws.root)}
    typer.echo(f"dashboard: http://{address}:{port}  (workspace {ws.root})")
    raise typer.Exit(subprocess.call(dashboard_command(port, address), cwd=ROOT, env=env))


def dashboard_command(port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The Streamlit command line; loopback unless an address is given."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "studio" / "app.py"),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


@app.command("worker")
def worker_cmd(
    idle_exit: float = typer.Option(None, help="Exit after this many idle seconds."),
) -> None:
    """Run queued jobs (one GPU job at a time) until stopped."""
    from backend.jobs.worker import WorkerBusy, serve

    ws = common.workspace()
    typer.echo(f"worker for {ws.root}")
    try:
        serve(ws, idle_exit_s=idle_exit)
    except WorkerBusy as exc:
        common.fail(str(exc))


def _job_dict(s: JobStatus) -> dict:
    return s.model_dump(mode="json")


@jobs_app.command("list")
def jobs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every job, oldest first."""
    ws = common.workspace()
    items = queue.list_jobs(ws)
    if as_json:
        common.emit_json(
            [_job_dict(s) if isinstance(s, JobStatus) else {"error": str(s)} for s in items]
        )
        return
    if not items:
        typer.echo("no jobs yet")
    for s in items:
        if isinstance(s, JobStatusError):
            typer.echo(f"?  {s}")
            continue
        typer.echo(f"{s.id:45} {s.state:11} {s.progress_line():30} {s.title}")


@jobs_app.command("show")
def jobs_show(
    job_id: str,
    as_json: bool = typer.Option(False, "--json"),
    log_lines: int = typer.Option(20, help="Lines of log to show."),
) -> None:
    """One job: status, spec and the tail of its log."""
    ws = common.workspace()
    try:
        s = queue.get(ws, job_id)
        kind, spec = queue.read_spec(ws.job_dir(job_id))
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    log = ws.job_dir(job_id) / "log.txt"
    tail = log.read_text(errors="replace").splitlines()[-log_lines:] if log.exists() else []
    if as_json:
        common.emit_json({**_job_dict(s), "spec": spec, "log_tail": tail})
        return
    typer.echo(f"{s.id}  {kind}  {s.state}  {s.progress_line()}")
    if s.started and s.finished:
        typer.echo(f"ran {format_seconds(s.finished - s.started)}")
    if s.error:
        typer.echo(f"error: {s.error}")
    typer.echo(f"spec: {spec}")
    typer.echo("\n".join(tail))


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str, grace: float = typer.Option(10.0, help="Seconds before SIGKILL.")
) -> None:
    """Cancel a queued or running job (SIGTERM, then SIGKILL after the grace period)."""
    ws = common.workspace()
    try:
        s = queue.cancel(ws, job_id, grace_s=grace)
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    typer.echo(f"{job_id}: {s.state}")


@jobs_app.command("resume")
def jobs_resume(job_id: str, detach: bool = typer.Option(False, help="Queue and return.")) -> None:
    """Queue an interrupted, failed or cancelled job again; it continues from its checkpoint."""
    from backend.jobs.worker import ensure_worker

    ws = common.workspace()
    try:
        queue.resume(ws, job_id)
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    ensure_worker(ws)
    if detach:
        typer.echo(f"{job_id}: queued")
        return
    s = common.wait_with_progress(ws, job_id)
    common.ingest_now(ws)
    typer.echo(f"{job_id}: {s.state}")
    if s.state != "succeeded":
        raise typer.Exit(1)


@app.command("demo-model")
def demo_model(
    out: Annotated[
        Path | None, typer.Option(help="Folder to write (default: workspace/models/tiny-llama).")
    ] = None,
    seed: int = typer.Option(0),
) -> None:
    """Build the tiny demo model (tokenizer + Llama-architecture weights), no download."""
    from backend.train.demo_model import NOISE_NOTE, build_tiny_model

    target = out or common.workspace().models / "tiny-llama"
    try:
        path = build_tiny_model(target, seed=seed)
    except OSError as exc:
        common.fail(f"cannot write {target}: {exc}")
    typer.echo(f"built {path}")
    typer.echo(f"note: {NOISE_NOTE}")


def doctor_report() -> dict:
    from backend.store import holder_of

    cfg = common.settings()
    report: dict = {"python": sys.version.split()[0]}
    from backend import connections

    try:
        device = connections.device_summary()
        report.update(
            torch=device["torch"], cuda=device["cuda"], device=device["device"], bf16=device["bf16"]
        )
    except ImportError as exc:
        report["torch"] = f"missing ({exc})"
    try:
        import bitsandbytes as bnb

        report["bitsandbytes"] = bnb.__version__
        report["bnb_4bit"] = (
            "available (CUDA)"
            if report.get("cuda")
            else "available on CPU with float32 compute (slow; QLoRA is meant for CUDA)"
        )
    except Exception as exc:  # bitsandbytes raises various errors on odd machines
        report["bitsandbytes"] = f"unavailable ({type(exc).__name__}: {exc})"
    ws_path = cfg.workspace
    report["workspace"] = str(ws_path)
    report["workspace_writable"] = os.access(
        ws_path if ws_path.exists() else ws_path.parent, os.W_OK
    )
    usage = shutil.disk_usage(ws_path if ws_path.exists() else ws_path.parent)
    report["disk_free_gb"] = round(usage.free / 2**30, 1)
    pid, command = holder_of(ws_path / "studio.duckdb")
    report["database_holder"] = f"pid {pid} ({command})" if pid else "nobody"
    report["llm_endpoint"] = connections.check_llm(cfg)[1]
    report["label_studio"] = connections.check_label_studio(cfg)[1]
    return report


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Python, torch, CUDA, bf16, bitsandbytes, disk, workspace, database holder, endpoints."""
    report = doctor_report()
    if as_json:
        common.emit_json(report)
        return
    for key, value in report.items():
        typer.echo(f"{key:20} {value}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
