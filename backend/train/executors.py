"""Where a run trains: `EXECUTORS[spec.executor](ctx, spec, method)`.

- `local`: in the job's own process (the default; what every run did before).
- `accelerate`: `accelerate launch` with a config written from the run's fields into the job
  folder (accelerate.yaml: data parallel, or FSDP where chosen) starts `spec.processes` ranks
  of `python -m backend.train.rank` on this machine (2 processes over gloo on CPU).
- `ray`: the same rank entry point as a Ray job on a cluster (backend.train.ray_jobs).

For the last two the job's process stays the owner: it keeps status.json and its heartbeat,
mirrors rank 0's progress, and on a cancel waits for the ranks to save a checkpoint and stop
(they read the cancel file themselves; the whole process group also gets SIGTERM). A re-queued
run resumes from the last checkpoint the ranks left, as a local run does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from backend.jobs.context import JobContext
from backend.jobs.ranks import clear, supervise
from backend.train.common import run_method
from backend.train.config import ConfigError, RunConfig, check_executor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(config: RunConfig, device: str) -> dict[str, Any]:
    """The `accelerate launch` config of a run: one machine, `processes` ranks; plain data
    parallel (gloo on CPU, NCCL on CUDA), or FSDP with full sharding on CUDA."""
    if config.fsdp and device != "cuda":
        raise ConfigError("fsdp: FSDP shards over GPUs; on CPU use plain data parallel")
    out: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        # MULTI_GPU picks accelerate's torchrun launcher; on CPU the trainer's use_cpu makes
        # each rank join over gloo (MULTI_CPU in the rank)
        "distributed_type": "FSDP" if config.fsdp else "MULTI_GPU",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": config.processes,
        "main_process_ip": "127.0.0.1",
        "main_process_port": free_port(),
        "rdzv_backend": "static",
        "same_network": True,
        "gpu_ids": "all",
        "mixed_precision": "no",  # the trainer's bf16/fp16 arguments decide precision
        "use_cpu": device == "cpu",
        "dynamo_config": {},
    }
    if config.fsdp:
        out["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_sharding_strategy": "FULL_SHARD",
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": False,
            "fsdp_offload_params": False,
        }
    return out


def rank_env(ctx: JobContext) -> dict[str, str]:
    """The ranks' environment: this one, with the workspace and the project importable."""
    from backend.config import PROJECT

    env = dict(os.environ)
    env["FTSTUDIO_WORKSPACE"] = str(ctx.workspace.root)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_local(ctx: JobContext, spec: RunConfig, method: Any) -> None:
    run_method(ctx, spec, method)


def run_accelerate(ctx: JobContext, spec: RunConfig, method: Any) -> None:
    """Train with `spec.processes` ranks through `accelerate launch`, supervised from here."""
    import yaml

    from backend.config import Settings
    from backend.train.runtime import decide

    check_executor(spec)
    rt = decide(spec.quant, Settings().device)
    cfg_path = ctx.dir / "accelerate.yaml"
    cfg_path.write_text(yaml.safe_dump(accelerate_config(spec, rt.device)))
    clear(ctx.dir)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(cfg_path),
        "--num_processes",
        str(spec.processes),
        "-m",
        "backend.train.rank",
        str(ctx.workspace.root),
        ctx.id,
    ]
    ctx.event(
        f"accelerate launch: {spec.processes} processes"
        + (" with FSDP" if spec.fsdp else " (data parallel)")
        + f" on {rt.device}",
        executor="accelerate",
        world_size=spec.processes,
    )
    log = open(ctx.dir / "log.txt", "ab")
    try:
        # same process group as this job: a cancel's SIGTERM reaches the launcher and ranks
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=rank_env(ctx)
        )
    finally:
        log.close()
    supervise(ctx, proc.poll, lambda: proc.terminate(), "accelerate launch")


def run_ray(ctx: JobContext, spec: RunConfig, method: Any) -> None:
    from backend.train.ray_jobs import run_on_ray

    run_on_ray(ctx, spec)


EXECUTORS: dict[str, Callable[[JobContext, RunConfig, Any], None]] = {
    "local": run_local,
    "accelerate": run_accelerate,
    "ray": run_ray,
}


def run_with_executor(ctx: JobContext, spec: RunConfig, method: Any) -> None:
    """The `train` job's body under the run's executor."""
    EXECUTORS[spec.executor](ctx, spec, method)
