"""QLoRA on a ~1B Llama-architecture model built from a config (random weights, no download):
50 steps through the studio's runtime and trainer, printing tokens/s, peak GPU memory and an
MFU estimate. Without CUDA it says so and exits 0.

    .venv/bin/python bench/gpu_qlora.py [--steps 50] [--batch-size 8] [--seq 512] [--peak-tflops N]

MFU is estimated as 6 * N_params * tokens/s over the GPU's
peak dense bf16 FLOP/s (`--peak-tflops`, default by device name; H100/H200 SXM 989).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "4090": 165.0,
    "L4": 121.0,
    "T4": 65.0,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "no CUDA device: this bench needs a GPU (QLoRA runs on bitsandbytes 4-bit). "
            "Nothing measured."
        )
        return 0
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

    from backend.train.config import file_fields, make_config
    from backend.train.demo_model import build_tokenizer
    from backend.train.runtime import decide
    from backend.train.sft import build_trainer, load_model

    tmp = Path(tempfile.mkdtemp(prefix="ftstudio-qlora-"))
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
    del model
    words = "how do I add a teammate to my project board and export a sprint report".split()
    with open(tmp / "data.jsonl", "w") as fh:
        for i in range(args.batch_size * args.steps):
            text = " ".join(words[(i + j) % len(words)] for j in range(args.seq // 2))
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"q{i}"},
                            {"role": "assistant", "content": text},
                        ]
                    }
                )
                + "\n"
            )
    config = make_config(
        {
            "base_model": str(tmp / "model"),
            **file_fields(tmp / "data.jsonl"),
            "quant": "4bit",
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.seq,
            "eval_split": 0.0,
            "learning_rate": 1e-4,
            "save_steps": 10_000,
            "packing": True,
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
    trainer = build_trainer(
        config,
        rt,
        model,
        tokenizer,
        [json.loads(x) for x in (tmp / "data.jsonl").read_text().splitlines()],
        [],
        tmp / "out",
        [Clock()],
        save_strategy="no",
    )
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    skip = min(5, len(points) - 2)  # leave out warm-up steps
    (t0, n0), (t1, n1) = points[skip], points[-1]
    tps = (n1 - n0) / (t1 - t0)
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    print(f"device: {name}; runtime: {rt.describe()}")
    print(f"model: {n_params / 1e9:.2f}B parameters (Llama architecture, random weights)")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if peak:
        print(
            f"MFU estimate (6*N*tokens/s over {peak:.0f} TFLOP/s): "
            f"{6 * n_params * tps / (peak * 1e12):.1%}"
        )
    print(f"tokens/s: {tps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
