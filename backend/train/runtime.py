"""Where and how a run computes: device, dtype, quantization, and the package versions that
make a run reproducible. One place decides, so the trainer, the evaluation and the benches agree.

CPU: float32, `use_cpu`, no bf16 (about 10x slower on these CPUs), no pinned memory.
CUDA: bf16 where the GPU supports it, else fp16. Quantization `auto` = 4-bit NF4 with double
quantization on CUDA and none on CPU; `4bit` forces it (on CPU with float32 compute).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16" or "float16": weights and compute
    quantize_4bit: bool
    bf16: bool
    fp16: bool
    use_cpu: bool
    pin_memory: bool
    device_name: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> str:
        quant = "4-bit NF4 (QLoRA)" if self.quantize_4bit else "no quantization (LoRA)"
        return f"{self.device_name}, {self.dtype}, {quant}"


def decide(quant: str = "auto", device: str = "auto") -> Runtime:
    """The runtime for a quantization choice (auto|4bit|none) and device preference
    (auto|cpu|cuda, from Settings.device)."""
    import torch

    cuda = torch.cuda.is_available() and device != "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device is set to cuda but torch sees no CUDA device")
    if cuda:
        bf16 = torch.cuda.is_bf16_supported()
        return Runtime(
            device="cuda",
            dtype="bfloat16" if bf16 else "float16",
            quantize_4bit=quant in ("auto", "4bit"),
            bf16=bf16,
            fp16=not bf16,
            use_cpu=False,
            pin_memory=True,
            device_name=torch.cuda.get_device_name(0),
        )
    return Runtime(
        device="cpu",
        dtype="float32",
        quantize_4bit=quant == "4bit",
        bf16=False,
        fp16=False,
        use_cpu=True,
        pin_memory=False,
        device_name=f"CPU ({platform.processor() or 'x86'})",
    )


def quantization_config(rt: Runtime):
    """BitsAndBytesConfig for 4-bit NF4 with double quantization, or None."""
    if not rt.quantize_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=rt.torch_dtype(),
    )


def model_kwargs(rt: Runtime) -> dict[str, Any]:
    """Keyword arguments for `AutoModelForCausalLM.from_pretrained` under this runtime."""
    kwargs: dict[str, Any] = {"dtype": rt.torch_dtype()}
    quant = quantization_config(rt)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if rt.device == "cuda":  # each rank its own GPU: accelerate refuses 4-bit on another
            kwargs["device_map"] = {"": local_rank()}
    return kwargs


def local_rank() -> int:
    """This process's index on its machine (0 outside a multi-process launch)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """How many processes train this run together (1 outside a multi-process launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process writes the run's files (rank 0, or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (an all-reduce; `flag` alone when this
    process trains by itself), so every rank stops at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", local_rank()) if nccl else torch.device("cpu")
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide what a run computes."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def peak_gpu_memory_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20
