"""Out-of-memory on the accelerator, handled rather than fatal: work in batches, and when a batch
raises `torch.OutOfMemoryError`, free the cache, halve the batch and retry, down to one item.

Generation (`LocalProvider`), answers, the local judge and uncertainty scoring all run their
batches through `in_batches`; each halving is reported through `note` (a job passes its log),
and the smaller size is kept for the rest of the work. An item that runs out of memory on its
own re-raises the error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def is_oom(exc: BaseException) -> bool:
    """True for torch's out-of-memory error (CUDA, or any accelerator torch names so)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom)


def free_cache() -> None:
    """Give cached accelerator memory back, so the retry starts from what is really in use."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class BatchSize:
    """A batch size that only shrinks: shared by calls, so one halving holds for the job."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"batch size must be at least 1, not {size}")
        self.size = size
        self.halvings = 0


def in_batches(
    items: Sequence[T],
    fn: Callable[[list[T]], list[R]],
    size: int | BatchSize,
    *,
    note: Callable[[str], Any] | None = None,
    what: str = "batch",
) -> list[R]:
    """`fn` over `items` in batches of `size`, results in input order. On out-of-memory the
    cache is freed, the batch halved and retried; a single item that still does not fit
    re-raises."""
    state = size if isinstance(size, BatchSize) else BatchSize(size)
    out: list[R] = []
    i = 0
    while i < len(items):
        chunk = list(items[i : i + state.size])
        try:
            results = fn(chunk)
        except Exception as exc:
            if not is_oom(exc) or len(chunk) == 1:
                raise
            results = None
        if results is None:  # outside the handler: its traceback held the batch's tensors
            free_cache()
            state.size = max(1, len(chunk) // 2)
            state.halvings += 1
            if note is not None:
                note(
                    f"out of memory on a {what} of {len(chunk)}: freed the cache, "
                    f"retrying with {state.size}"
                )
            continue
        out.extend(results)
        i += len(chunk)
    return out
