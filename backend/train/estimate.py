"""How much memory a run needs, how fast it computes, and what would make it fit.

Pure functions over a model's config.json and the run's settings (no torch import), plus a
small probe of the device's memory. Parts, in bytes:

- weights: the base model at its quantisation (4-bit NF4 linear layers of the decoder blocks
  at 0.5 bytes a parameter plus their quantisation constants; embeddings, head and norms in the
  compute dtype);
- lora: the adapter's parameters (float32), gradients: the same again, optimiser: AdamW's two
  float32 moments;
- activations: what the forward pass keeps for the backward one, for batch x length tokens
  (x2 for DPO: chosen and rejected), with or without gradient checkpointing, and the float32
  logits and their gradient;
- framework: what torch, transformers and TRL hold besides (process memory on CPU; on CUDA the
  measured peak is `max_memory_allocated`, which the CUDA context is not part of).

The estimate is compared with the device's memory (`device_memory`: CUDA total memory, or
physical memory on CPU); `suggestions` searches the settings that would fit (a smaller batch
with more accumulation, gradient checkpointing, 4-bit, a shorter length).
Refusing a run that cannot fit, and ending one that ran out of memory with the settings that
would, is backend/train/fit.py's; FLOPs and MFU are backend/train/flops.py's.

    python -m backend.train.estimate MODEL_DIR [BATCH LENGTH]   # prints the estimate as JSON
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

GIB = 2**30
HEADROOM = 0.9  # a run "fits" when its estimate is at most this share of the device's memory
# process memory of a CPU training job besides the model: torch, transformers, TRL, PEFT,
# datasets and the trainer (measured on Linux x86-64 with the pinned versions: see
# bench/estimate.py)
CPU_FRAMEWORK_BYTES = 610 * 2**20
CUDA_CONTEXT_BYTES = int(0.5 * GIB)
# calibration of the activation model against measured CPU peaks (bench/estimate.py, hidden
# 256 x 4 layers and 768 x 6 layers): the share of the listed per-token activations autograd
# keeps, and the share of the attention probabilities kept under 4-bit layers
KEPT_SHARE = 0.42
ATTN_KEPT_4BIT = 0.6  # kernels and the CUDA context, outside torch's allocator


@dataclass(frozen=True)
class Shape:
    """What memory and FLOPs depend on in a decoder-only transformer's config."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Shape:
        cfg = cfg.get("text_config") or cfg
        try:
            hidden = int(cfg.get("hidden_size") or cfg["n_embd"])
            heads = int(cfg.get("num_attention_heads") or cfg["n_head"])
            return cls(
                vocab=int(cfg["vocab_size"]),
                hidden=hidden,
                layers=int(cfg.get("num_hidden_layers") or cfg["n_layer"]),
                intermediate=int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden),
                heads=heads,
                kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or hidden // heads),
                tied=bool(cfg.get("tie_word_embeddings", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"config.json lacks a size the estimate needs ({exc})") from None

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder block."""
        h, q, kv, i = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.intermediate,
        )
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def block_linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears().values())

    def other_params(self) -> int:
        """Embeddings, head and norms: never quantised."""
        return (
            self.vocab * self.hidden * (1 if self.tied else 2) + (2 * self.layers + 1) * self.hidden
        )

    def params(self) -> int:
        return self.block_linear_params() + self.other_params()


def read_shape(model_dir: str | Path) -> Shape:
    """The shape of a local model folder, from its config.json (no weights read)."""
    path = Path(model_dir).expanduser() / "config.json"
    if not path.is_file():
        raise ValueError(f"no config.json in {Path(model_dir)}: the estimate needs one")
    return Shape.from_config(json.loads(path.read_text()))


@dataclass(frozen=True)
class Plan:
    """The settings memory depends on."""

    batch_size: int = 4
    max_length: int = 512
    lora_r: int = 16
    target_modules: tuple[str, ...] = ("all-linear",)
    quantize_4bit: bool = False
    device: str = "cpu"  # "cpu" or "cuda"
    dtype_bytes: int = 4  # compute dtype: 4 on CPU, 2 (bf16/fp16) on CUDA
    checkpointing: bool = False
    sequences_per_example: int = 1  # DPO: chosen and rejected
    lora_dropout: float = 0.05
    grad_accum: int = 1

    @classmethod
    def of(cls, config: Any, device: str, checkpointing: bool | None = None) -> Plan:
        """The plan of a run config (RunConfig or a dict of its fields) on `device`."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        quant = get("quant", "auto")
        cuda = device == "cuda"
        return cls(
            batch_size=int(get("batch_size", 4)),
            max_length=int(get("max_length", 512)),
            lora_r=int(get("lora_r", 16)),
            target_modules=tuple(get("target_modules", None) or ["all-linear"]),
            quantize_4bit=quant == "4bit" or (quant == "auto" and cuda),
            device=device,
            dtype_bytes=2 if cuda else 4,
            checkpointing=cuda if checkpointing is None else checkpointing,
            sequences_per_example=2 if get("method", "sft") == "dpo" else 1,
            lora_dropout=float(get("lora_dropout", 0.05)),
            grad_accum=int(get("grad_accum", 1)),
        )


@dataclass
class Estimate:
    """Bytes per part, their total, and the device's memory they are compared with."""

    parts: dict[str, int]
    device: str
    capacity: int | None = None
    trainable_params: int = 0
    frozen_params: int = 0
    activations_without_checkpointing: int = 0
    activations_with_checkpointing: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool | None:
        if self.capacity is None:
            return None
        return self.needed <= HEADROOM * self.capacity

    @property
    def needed(self) -> int:
        """What the device must hold: the total, plus the CUDA context on a GPU."""
        return self.total + (CUDA_CONTEXT_BYTES if self.device == "cuda" else 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(total=self.total, needed=self.needed, fits=self.fits)
        return out


def _targets(shape: Shape, modules: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    lin = shape.linears()
    if "all-linear" in modules:
        return lin
    return {n: lin[n] for n in modules if n in lin}


def lora_params(shape: Shape, plan: Plan) -> int:
    """Trainable parameters of the adapter: r x (in + out) per targeted layer."""
    return shape.layers * sum(
        plan.lora_r * (a + b) for a, b in _targets(shape, plan.target_modules).values()
    )


def weight_bytes(shape: Shape, plan: Plan) -> int:
    """The base model in memory: 4-bit blocks (with double-quantised constants) or dtype."""
    other = shape.other_params() * plan.dtype_bytes
    block = shape.block_linear_params()
    if plan.quantize_4bit:
        # 0.5 byte a weight; an 8-bit absmax per 64 weights and fp32 constants per 256 of those
        return other + math.ceil(block * (0.5 + 1 / 64 + 4 / (64 * 256)))
    return other + block * plan.dtype_bytes


def activation_bytes(shape: Shape, plan: Plan, checkpointing: bool) -> int:
    """Kept activations of the decoder blocks for batch x length tokens."""
    h, i = shape.hidden, shape.intermediate
    kv = shape.kv_heads * shape.head_dim
    q = shape.heads * shape.head_dim
    s = plan.dtype_bytes
    tokens = plan.batch_size * plan.max_length * plan.sequences_per_example
    # one block keeps: two norms' inputs and outputs (4h), q, k, v and rotated q, k (2q + 3kv),
    # the attention output and o_proj's (q + h), gate, up, act(gate) and their product (4i),
    # down's output (h)
    per_token = s * (6 * h + 3 * q + 3 * kv + 4 * i)
    targets = _targets(shape, plan.target_modules)
    if targets:
        # LoRA keeps its dropped-out input (and mask) and the rank-r hidden per layer
        ins = sum(a for a, _ in targets.values())
        per_token += (s + (1 if plan.lora_dropout > 0 else 0)) * ins + 4 * plan.lora_r * len(
            targets
        )
    # the attention kernel keeps its log-sum-exp per head and position (float32)
    per_token += 4 * shape.heads
    # autograd keeps only part of that list (a frozen layer's input is not needed for its
    # backward): the share measured on CPU over two model sizes (bench/estimate.py)
    per_token = int(KEPT_SHARE * per_token)
    # on CPU, attention with a mask takes the math path: the heads x length x length
    # probabilities are kept, and the backward of a block briefly holds two more such
    # matrices (CUDA's flash and memory-efficient kernels keep none)
    sequences = plan.batch_size * plan.sequences_per_example
    matrix = sequences * shape.heads * plan.max_length**2 * s if plan.device == "cpu" else 0
    kept_matrix = int(matrix * (ATTN_KEPT_4BIT if plan.quantize_4bit else 1.0))
    if checkpointing:
        # each block's input is kept; one block at a time is recomputed in full, and its
        # backward holds scores, probabilities and their gradients at once
        return tokens * (s * h * shape.layers + per_token) + int(3.5 * kept_matrix)
    return (tokens * per_token + kept_matrix) * shape.layers + 2 * matrix


def logits_bytes(shape: Shape, plan: Plan) -> int:
    """The head's logits, their float32 copy, log-probabilities and gradient."""
    tokens = plan.batch_size * plan.max_length * plan.sequences_per_example
    return tokens * shape.vocab * (plan.dtype_bytes + 4 * 3)


def estimate(shape: Shape, plan: Plan, capacity: int | None = None) -> Estimate:
    """Memory of one training process under `plan`, in parts (see the module docstring)."""
    trainable = lora_params(shape, plan)
    act_off = activation_bytes(shape, plan, False)
    act_on = activation_bytes(shape, plan, True)
    parts = {
        "weights": weight_bytes(shape, plan),
        "lora": trainable * 4,
        "gradients": trainable * 4,
        "optimizer": trainable * 8,
        "activations": act_on if plan.checkpointing else act_off,
        "logits": logits_bytes(shape, plan),
        "framework": CPU_FRAMEWORK_BYTES if plan.device == "cpu" else 0,
    }
    return Estimate(
        parts=parts,
        device=plan.device,
        capacity=capacity,
        trainable_params=trainable,
        frozen_params=shape.params(),
        activations_without_checkpointing=act_off,
        activations_with_checkpointing=act_on,
    )


def _changes(old: Plan, new: Plan) -> dict[str, Any]:
    """The run fields that differ between two plans, as a run config names them."""
    out: dict[str, Any] = {}
    for name in ("batch_size", "grad_accum", "max_length"):
        if getattr(old, name) != getattr(new, name):
            out[name] = getattr(new, name)
    if new.quantize_4bit and not old.quantize_4bit:
        out["quant"] = "4bit"
    if new.checkpointing and not old.checkpointing:
        out["gradient_checkpointing"] = True
    return out


def suggestions(shape: Shape, plan: Plan, capacity: int, limit: int = 3) -> list[dict[str, Any]]:
    """Settings that would fit `capacity`, least change first: each a dict of the changed
    fields, the new total in bytes and a sentence. The examples per optimiser update (batch x
    accumulation) stay the same."""
    found: list[dict[str, Any]] = []
    per_update = plan.batch_size * plan.grad_accum

    def fits(p: Plan) -> int | None:
        est = estimate(shape, p, capacity)
        return est.needed if est.fits else None

    def add(p: Plan, _: dict[str, Any], words: str) -> None:
        needed = fits(p)
        changes = _changes(plan, p)
        if needed is not None and not any(f["changes"] == changes for f in found):
            found.append({"changes": changes, "needed": needed, "text": words})

    # the studio checkpoints on CUDA always and the CPU trainer never does: only a GPU run can
    # be told to turn it on
    ckpt = plan.checkpointing or plan.device == "cuda"
    batches = [b for b in (plan.batch_size // 2**k for k in range(1, 12)) if b >= 1]
    options: list[tuple[Plan, dict[str, Any], str]] = []
    for b in batches:
        accum = math.ceil(per_update / b)
        options.append(
            (
                replace(plan, batch_size=b, grad_accum=accum),
                {"batch_size": b, "grad_accum": accum},
                f"batch size {b} with {accum} accumulation steps (same {b * accum} examples "
                "per update)",
            )
        )
    if not plan.checkpointing and ckpt:
        options.append(
            (
                replace(plan, checkpointing=True),
                {"gradient_checkpointing": True},
                "gradient checkpointing on",
            )
        )
    if not plan.quantize_4bit:
        options.append(
            (replace(plan, quantize_4bit=True), {"quant": "4bit"}, "4-bit quantisation (QLoRA)")
        )
    combos: list[tuple[Plan, dict[str, Any], str]] = []
    for p, ch, words in options[: len(batches)]:
        if not plan.checkpointing and ckpt:
            combos.append(
                (
                    replace(p, checkpointing=True),
                    {**ch, "gradient_checkpointing": True},
                    words + ", checkpointing on",
                )
            )
        if not plan.quantize_4bit:
            q = replace(p, quantize_4bit=True, checkpointing=ckpt)
            combos.append((q, {**ch, "quant": "4bit"}, words + ", 4-bit"))
    for length in (plan.max_length // 2, plan.max_length // 4):
        if length >= 64:
            combos.append(
                (
                    replace(
                        plan,
                        max_length=length,
                        batch_size=1,
                        grad_accum=per_update,
                        checkpointing=ckpt,
                        quantize_4bit=True,
                    ),
                    {
                        "max_length": length,
                        "batch_size": 1,
                        "grad_accum": per_update,
                        "quant": "4bit",
                    },
                    f"examples cut to {length} tokens, batch size 1 with {per_update} "
                    "accumulation steps, 4-bit",
                )
            )
    for p, ch, words in options + combos:
        add(p, ch, words)
        if len(found) >= limit:
            break
    return found


def device_memory(device: str) -> tuple[int, str]:
    """(bytes, what) of the memory a run on `device` has: the GPU's total memory, or the
    machine's physical memory on CPU."""
    if device == "cuda":
        from backend.device import gpu_memory

        found = gpu_memory()  # nvidia-smi: no CUDA context in the asking process
        if found is not None:
            return found
        import torch

        free, total = torch.cuda.mem_get_info(0)
        return int(total), torch.cuda.get_device_name(0)
    import psutil

    return int(psutil.virtual_memory().total), "CPU memory"


def human(n: float) -> str:
    """Bytes in words: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


if __name__ == "__main__":
    _shape = read_shape(sys.argv[1])
    _plan = Plan(
        batch_size=int(sys.argv[2]) if len(sys.argv) > 2 else 4,
        max_length=int(sys.argv[3]) if len(sys.argv) > 3 else 512,
    )
    print(json.dumps(estimate(_shape, _plan).as_dict(), indent=1))  # noqa: T201
