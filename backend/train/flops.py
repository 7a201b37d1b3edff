"""Model FLOPs per token and utilisation: the LoRA convention (4 x frozen + 6 x trainable
non-embedding parameters per token, plus attention) against the device's dense bf16 peak, found
by its full name in a small table of known GPUs (or given). Used live by the trainer callback
(backend/train/measure.py) and by bench/gpu_qlora.py.
"""

from __future__ import annotations

from backend.train.estimate import Shape

# dense bf16 tensor-core peak (TFLOP/s) by name fragment; the longest fragment found in the
# device's full name wins ("NVIDIA H100 PCIe" is the PCIe card, "NVIDIA H100 80GB HBM3" the SXM)
GPU_PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A800": 312.0,
    "A10G": 70.0,
    "A10": 125.0,
    "A30": 165.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "RTX 6000 Ada": 364.0,
    "RTX A6000": 155.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
    "V100": 125.0,  # fp16: V100 has no bf16
    "T4": 65.0,  # fp16
}


def flops_per_token(shape: Shape, trainable: int, length: int) -> float:
    """Training FLOPs per token by the LoRA convention: 4 x frozen + 6 x trainable
    non-embedding parameters, plus attention (12 x layers x heads x head dim x length)."""
    frozen = shape.block_linear_params()
    attention = 12 * shape.layers * shape.heads * shape.head_dim * length
    return 4 * frozen + 6 * trainable + attention


def peak_flops(device_name: str, override_tflops: float | None = None) -> float | None:
    """The device's dense bf16 peak in FLOP/s, by the longest known fragment of its full
    name; None when unknown (give `override_tflops`)."""
    if override_tflops:
        return override_tflops * 1e12
    hits = [k for k in GPU_PEAK_TFLOPS if k.lower() in device_name.lower()]
    return GPU_PEAK_TFLOPS[max(hits, key=len)] * 1e12 if hits else None


def mfu(tokens_per_s: float, shape: Shape, trainable: int, length: int, peak: float) -> float:
    """Model-FLOPs utilisation: achieved model FLOP/s over the device's peak."""
    return tokens_per_s * flops_per_token(shape, trainable, length) / peak
