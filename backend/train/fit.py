"""A run that cannot fit is refused before it is queued, and a run that ran out of memory ends
naming the settings that would fit, both from the memory estimate (backend/train/estimate.py)
against the memory of the device the run trains on.
"""

from __future__ import annotations

from typing import Any

from backend.train.config import ConfigError
from backend.train.estimate import (
    HEADROOM,
    Estimate,
    Plan,
    Shape,
    device_memory,
    estimate,
    human,
    read_shape,
    suggestions,
)


class DoesNotFit(ConfigError):
    """A run whose memory estimate exceeds the device's memory; the message says what fits."""


def for_run(
    fields: dict[str, Any] | Any, device: str | None = None, capacity: int | None = None
) -> tuple[Estimate, Shape, Plan] | None:
    """The estimate of a run config (or its fields) on `device` (default: where the studio's
    jobs compute), against `capacity` (default: the device's memory); None when the base model
    is not a local folder with a config.json (a hub id is estimated when it is loaded)."""
    get = fields.get if isinstance(fields, dict) else lambda k, d=None: getattr(fields, k, d)
    try:
        shape = read_shape(get("base_model", ""))
    except ValueError:
        return None
    if device is None:
        from backend.device import configured_uses_cuda

        device = "cuda" if configured_uses_cuda() else "cpu"
    if capacity is None:
        capacity = device_memory(device)[0]
    plan = Plan.of(fields, device)
    return estimate(shape, plan, capacity), shape, plan


def advice(est: Estimate, shape: Shape, plan: Plan) -> str:
    """Why a run does not fit, and the settings that would (or that none would)."""
    assert est.capacity is not None
    head = (
        f"the run needs about {human(est.needed)} but the {est.device.upper()} has "
        f"{human(est.capacity)} (a run may use {HEADROOM:.0%} of it): "
        + ", ".join(f"{k} {human(v)}" for k, v in est.parts.items() if v)
    )
    options = suggestions(shape, plan, est.capacity)
    if not options:
        return (
            head + ". No batch size, checkpointing, 4-bit or shorter length makes it fit: "
            "use a smaller base model or a device with more memory."
        )
    return (
        head
        + ". Settings that would fit: "
        + "; ".join(f"{o['text']} (about {human(o['needed'])})" for o in options)
    )


def check_fits(fields: dict[str, Any] | Any, capacity: int | None = None) -> Estimate | None:
    """Refuse (DoesNotFit, naming what would fit) a run whose estimate exceeds the memory of
    the device it would train on; returns the estimate otherwise. A Ray run trains elsewhere
    and is not checked here."""
    get = fields.get if isinstance(fields, dict) else lambda k, d=None: getattr(fields, k, d)
    if get("executor", "local") == "ray":
        return None
    found = for_run(fields, capacity=capacity)
    if found is None:
        return None
    est, shape, plan = found
    if est.fits is False:
        raise DoesNotFit(f"memory: {advice(est, shape, plan)}")
    return est


class TrainingOutOfMemory(RuntimeError):
    """A run ran out of memory; the message gives the settings that would fit."""


def out_of_memory(exc: BaseException, fields: dict[str, Any] | Any, device: str) -> BaseException:
    """`exc` as it should end the job: an out-of-memory error becomes TrainingOutOfMemory
    naming the settings that would fit (from the estimate against the memory the run really
    had); any other error comes back as it is."""
    from backend.integrations.oom import is_oom

    if not is_oom(exc):
        return exc
    found = for_run(fields, device=device)
    if found is None:
        return TrainingOutOfMemory(f"out of memory ({exc}); try a smaller batch or 4-bit")
    est, shape, plan = found
    capacity = est.capacity or 0
    # it did not fit, whatever the estimate says: ask for settings whose reducible part (all
    # but the framework and the CUDA context) is at most half of this run's
    fixed = est.parts["framework"] + (est.needed - est.total)
    allowed = fixed + (est.needed - fixed) // 2
    options = suggestions(shape, plan, min(capacity, int(allowed / HEADROOM)))
    words = "; ".join(f"{o['text']} (about {human(o['needed'])})" for o in options)
    return TrainingOutOfMemory(
        f"out of memory on {device.upper()} (estimated {human(est.needed)} of "
        f"{human(capacity)}). Settings that would fit: "
        + (words or "none found: use a smaller base model or a device with more memory")
    )
