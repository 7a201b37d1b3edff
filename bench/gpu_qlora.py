"""QLoRA on a ~1B Llama-architecture model built from a config (random weights, no download):
`--steps` steps through the studio's runtime and trainer, with packing on and then off,
printing tokens/s, peak GPU memory beside the memory estimate, and utilisation two ways:

- MFU, model-FLOPs utilisation by the LoRA convention: 4 x frozen + 6 x trainable non-embedding
  parameters per token, plus attention (backend/train/estimate.py `flops_per_token`);
- HFU, hardware-FLOPs utilisation: the same plus what gradient checkpointing recomputes (one
  more forward pass: 2 x parameters + attention's forward per token).

The peak is the device's dense bf16 figure, found by its full name in
backend/train/estimate.py's table (`--peak-tflops` to give it). TF32 is on. Without CUDA it
says so and exits 0, or 2 with `--require-gpu`.

    .venv/bin/python bench/gpu_qlora.py [--steps 50] [--batch-size 8] [--seq 512]
        [--peak-tflops N] [--require-gpu]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_model(tmp: Path) -> tuple[Path, int]:
    """A TinyLlama-shaped model (22 layers, hidden 2048) in bf16, saved to `tmp/model`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from backend.train.demo_model import build_tokenizer

    tok = build_tokenizer(8192)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    return tmp / "model", n_params


def write_rows(path: Path, n: int, seq: int) -> None:
    words = "how do I add a teammate to my project board and export a sprint report".split()
    with open(path, "w") as fh:
        for i in range(n):
            # short and long answers, so padding (packing off) costs something
            length = seq // 2 if i % 2 else seq // 8
            text = " ".join(words[(i + j) % len(words)] for j in range(length))
            row = {
                "messages": [
                    {"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": text},
                ]
            }
            fh.write(json.dumps(row) + "\n")


def one_run(model_dir: Path, data: Path, out: Path, args, packing: bool) -> dict:
    """Train `args.steps` steps; tokens/s after warm-up, peak memory, MFU and HFU."""
    import torch
    from transformers import TrainerCallback

    from backend.train.config import file_fields, make_config
    from backend.train.estimate import Plan, Shape, estimate, read_shape
    from backend.train.flops import flops_per_token, peak_flops
    from backend.train.measure import trainable_params
    from backend.train.runtime import decide
    from backend.train.sft import build_trainer, load_model

    config = make_config(
        {
            "base_model": str(model_dir),
            **file_fields(data),
            "quant": "4bit",
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.seq,
            "eval_split": 0.0,
            "learning_rate": 1e-4,
            "save_steps": 10_000,
            "packing": packing,
        }
    )
    rt = decide("4bit", "cuda")
    points: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                torch.cuda.synchronize()
                points.append((time.perf_counter(), logs["num_tokens"]))

    tokenizer, model = load_model(config, rt)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    trainer = build_trainer(
        config, rt, model, tokenizer, rows, [], out, [Clock()], save_strategy="no", tf32=True
    )
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    skip = min(5, len(points) - 2)  # leave out warm-up steps
    (t0, n0), (t1, n1) = points[skip], points[-1]
    tps = (n1 - n0) / (t1 - t0)
    shape: Shape = read_shape(model_dir)
    trainable = trainable_params(trainer.model)
    name = torch.cuda.get_device_name(0)
    peak = peak_flops(name, args.peak_tflops)
    model_flops = flops_per_token(shape, trainable, args.seq)
    recompute = 2 * (shape.block_linear_params() + trainable) + (
        4 * shape.layers * shape.heads * shape.head_dim * args.seq
    )
    ckpt = bool(trainer.args.activation_checkpointing)
    est = estimate(shape, Plan.of(config, "cuda", checkpointing=ckpt))
    result = {
        "packing": packing,
        "device": name,
        "runtime": rt.describe(),
        "tokens_per_s": tps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "estimate_gib": est.total / 2**30,
        "peak_tflops": peak / 1e12 if peak else None,
        "mfu": tps * model_flops / peak if peak else None,
        "hfu": tps * (model_flops + (recompute if ckpt else 0)) / peak if peak else None,
        "trainable": trainable,
    }
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument(
        "--require-gpu", action="store_true", help="exit 2 when no CUDA device is present"
    )
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(  # noqa: T201
            "no CUDA device: this bench needs a GPU (QLoRA runs on bitsandbytes 4-bit). "
            "Nothing measured."
        )
        return 2 if args.require_gpu else 0
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    tmp = Path(tempfile.mkdtemp(prefix="ftstudio-qlora-"))
    model_dir, n_params = build_model(tmp)
    write_rows(tmp / "data.jsonl", args.batch_size * args.steps * 2, args.seq)
    print(f"model: {n_params / 1e9:.2f}B parameters (Llama architecture, random weights)")  # noqa: T201
    results = []
    for packing in (True, False):
        r = one_run(model_dir, tmp / "data.jsonl", tmp / f"out-{packing}", args, packing)
        results.append(r)
        util = (
            f"MFU {r['mfu']:.1%}, HFU {r['hfu']:.1%} of {r['peak_tflops']:.0f} TFLOP/s"
            if r["mfu"] is not None
            else "MFU unknown: give --peak-tflops"
        )
        print(  # noqa: T201
            f"packing {'on ' if packing else 'off'}: {r['tokens_per_s']:.0f} tokens/s, "
            f"peak {r['peak_gib']:.2f} GiB (estimate {r['estimate_gib']:.2f} GiB), {util} "
            f"[{r['device']}; {r['runtime']}]"
        )
    on, off = results
    print(f"packing on / off tokens/s: {on['tokens_per_s'] / off['tokens_per_s']:.2f}x")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
