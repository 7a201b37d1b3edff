"""`ftstudio up|worker|demo-model|doctor`: the dashboard, the worker, the demo model and a
health check.

ftstudio up [--port 8501]       serve the dashboard on 127.0.0.1
ftstudio worker                 run queued jobs in this terminal
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

from backend.cli import common

ROOT = Path(__file__).resolve().parents[2]


def up(
    port: int = typer.Option(8501, help="Port on 127.0.0.1."),
    address: str = typer.Option(
        "127.0.0.1",
        help="Bind address; keep loopback unless the studio sits behind an authenticating proxy.",
    ),
) -> None:
    """Serve the dashboard (Streamlit) with the demo workspace on first use."""
    ws = common.workspace()  # resolved here, from the caller's folder and settings
    if not _loopback(address) and _no_accounts(ws):
        common.fail(
            f"single-user mode (no accounts: everyone is admin) serves only on 127.0.0.1, not "
            f"{address}: create the first admin with `ftstudio users add NAME --role admin`"
        )
    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws.root)}
    typer.echo(f"dashboard: http://{address}:{port}  (workspace {ws.root})")
    raise typer.Exit(subprocess.call(dashboard_command(port, address), cwd=ROOT, env=env))


def _loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _no_accounts(ws) -> bool:
    """Whether the workspace has no accounts (False when its database is held elsewhere:
    the dashboard then checks the address it bound itself)."""
    from backend.store import StoreLockedError, users

    try:
        store = common.Store.open(ws.db_path)
    except StoreLockedError:
        return False
    try:
        return users.count_users(store) == 0
    finally:
        store.close()


def dashboard_command(port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The Streamlit command line; loopback unless an address is given."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "studio" / "server.py"),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


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


def _gpu_build(report: dict) -> None:
    """Say plainly when a CUDA GPU is present but torch is a CPU build, and how to fix it."""
    from backend import device

    gpus = device.nvidia_gpus()
    report["nvidia_gpus"] = gpus or "none found"
    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # noqa: BLE001  (no torch: reported above)
        return
    advice = device.cpu_torch_on_gpu(
        gpus, device.torch_cuda_build(), torch_version, device.driver_cuda_version()
    )
    if advice:
        report["cuda_problem"] = advice


def _quiet_bitsandbytes(report: dict):
    """Import bitsandbytes with its CPU "kernels" warning kept as a note, not printed as an
    error (the optional `kernels` package only speeds up 4-bit on CPU)."""
    import logging

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger = logging.getLogger("bitsandbytes")
    keep, propagate = Keep(), logger.propagate
    logger.addHandler(keep)
    logger.propagate = False
    try:
        import bitsandbytes as bnb
    finally:
        logger.removeHandler(keep)
        logger.propagate = propagate
    if any("kernels" in m for m in keep.messages):
        report["bnb_note"] = (
            "the optional `kernels` package is not installed: 4-bit on CPU uses bitsandbytes' "
            "slower built-in path (fine for tests; QLoRA is meant for CUDA)"
        )
    return bnb


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
    _gpu_build(report)
    try:
        bnb = _quiet_bitsandbytes(report)
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
