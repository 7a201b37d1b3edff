"""What a run really used, beside what was estimated: peak memory, tokens/s and MFU.

`StudioCallback` (backend/train/callbacks.py) calls `mfu_setup` when training begins (CUDA
only: the FLOPs per token by the LoRA convention and the device's bf16 peak, from
backend/train/estimate.py) and `report` when it ends, which writes one row to the job's
resources.jsonl (ingested into `run_resources`, shown on Compare) and an event:
the memory estimate for the run's settings, the measured peak (CUDA: `max_memory_allocated`;
CPU: the process's peak RSS), their relative error, mean tokens/s and mean MFU.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

from backend.jobs.context import JobContext
from backend.train.estimate import Plan, Shape, estimate, human, read_shape
from backend.train.flops import flops_per_token, peak_flops


def device_of(args: Any) -> str:
    import torch

    return "cpu" if getattr(args, "use_cpu", False) or not torch.cuda.is_available() else "cuda"


def peak_bytes(device: str) -> tuple[int, str]:
    """(bytes, kind) of this process's peak: CUDA allocated, or RSS on CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    return _own_peak_rss(), "cpu_peak_rss"


def _own_peak_rss() -> int:
    """This program's own peak RSS. Linux's ru_maxrss carries the parent's resident size
    across fork and exec (a job started by a large process would report that process's
    size), so read the high-water mark of this address space (VmHWM) where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def trainable_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad) if model else 0


def mfu_setup(model: Any, args: Any) -> tuple[float, float] | None:
    """(FLOPs per token, peak FLOP/s) for MFU on CUDA; None on CPU or an unknown GPU."""
    if model is None or device_of(args) != "cuda":
        return None
    import torch

    try:
        shape = Shape.from_config(model.config.to_dict())
    except ValueError:
        return None
    peak = peak_flops(torch.cuda.get_device_name(0))
    if peak is None:
        return None
    length = int(getattr(args, "max_length", None) or 512)
    return flops_per_token(shape, trainable_params(model), length), peak


def _spec(ctx: JobContext) -> dict[str, Any] | None:
    from backend.jobs.read import read_spec

    try:
        kind, spec = read_spec(ctx.dir)
    except Exception:  # noqa: BLE001  (a job folder without a train spec: nothing to compare)
        return None
    return spec if kind == "train" else None


def report(
    ctx: JobContext,
    args: Any,
    *,
    tokens_per_s: float | None,
    mfu: float | None,
) -> dict[str, Any]:
    """Write the run's resources row (estimate beside measured peak) and say it in an event."""
    device = device_of(args)
    peak, kind = peak_bytes(device)
    row: dict[str, Any] = {
        "run_id": ctx.id,
        "device": device,
        "peak_bytes": peak,
        "peak_kind": kind,
        "tokens_per_s": tokens_per_s,
        "mfu": mfu,
        "t": time.time(),
    }
    spec = _spec(ctx)
    est = None
    if spec is not None:
        try:
            shape = read_shape(spec.get("base_model", ""))
        except ValueError:
            shape = None
        if shape is not None:
            ckpt = bool(getattr(args, "activation_checkpointing", False))
            est = estimate(shape, Plan.of(spec, device, checkpointing=ckpt))
    if est is not None:
        row.update(
            estimate_bytes=est.total,
            estimate=est.parts,
            error=(est.total - peak) / peak if peak else None,
        )
    if getattr(ctx, "is_main", True):
        ctx.output("resources.jsonl", [row])
        words = f"peak memory {human(peak)} ({kind})"
        if est is not None:
            words += f", estimated {human(est.total)} ({row['error']:+.0%})"
        if tokens_per_s:
            words += f"; {tokens_per_s:,.0f} tokens/s"
        if mfu is not None:
            words += f", MFU {mfu:.1%}"
        ctx.event(words, **{k: v for k, v in row.items() if k not in ("run_id", "t")})
    return row
