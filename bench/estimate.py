"""Memory estimate against measured peak, over a grid of CPU training runs.

Each grid point (batch, length, quantisation, checkpointing) trains a few SFT steps on a small
Llama-architecture model built locally, in a fresh process, and reports that process's peak
RSS beside `backend.train.estimate`'s total for the same settings; the worst relative error is
printed last (goal: within 25%).

    python bench/estimate.py [--quick] [--steps 3] [--hidden 256] [--layers 4] [--vocab 8000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def examples(n: int, words: int) -> list[dict]:
    """Chat rows long enough that packing fills every sequence to max_length."""
    text = " ".join(f"word{k % 97}" for k in range(words))
    return [
        {
            "messages": [
                {"role": "user", "content": f"q{i} {text}"},
                {"role": "assistant", "content": text},
            ]
        }
        for i in range(n)
    ]


def one(args: argparse.Namespace) -> None:
    """Child: train `steps` steps at one grid point and print the peak RSS as JSON."""
    from backend.train.common import load_model
    from backend.train.config import SFTRunConfig
    from backend.train.runtime import decide
    from backend.train.sft import build_trainer

    data = Path(args.model) / "bench_rows.jsonl"
    cfg = SFTRunConfig(
        base_model=args.model,
        dataset="bench",
        data_path=str(data),
        batch_size=args.batch,
        max_length=args.length,
        quant=args.quant,
        max_steps=args.steps,
        eval_split=0.0,
        packing=True,
        assistant_only_loss=False,
    )
    rt = decide(cfg.quant, "cpu")
    tok, model = load_model(cfg, rt)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(
            cfg,
            rt,
            model,
            tok,
            rows,
            [],
            Path(out),
            [],
            save_strategy="no",
            activation_checkpointing=args.ckpt,
        )
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
    from backend.train.measure import peak_bytes

    peak, _ = peak_bytes("cpu")  # what a run stores as its measured peak (VmHWM)
    print(json.dumps({"peak": peak, "wall_s": wall}))  # noqa: T201


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="4 grid points instead of 16")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--length", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--quant", default="none", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        args.ckpt = bool(args.ckpt)
        one(args)
        return

    from backend.train.demo_model import build_tiny_model
    from backend.train.estimate import Plan, estimate, human, read_shape

    tmp = Path(tempfile.mkdtemp(prefix="bench-estimate-"))
    model = build_tiny_model(
        tmp / "model", hidden_size=args.hidden, layers=args.layers, vocab_size=args.vocab
    )
    rows = examples(64, 400)
    (model / "bench_rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    shape = read_shape(model)
    grid = list(itertools.product((1, 4), (128, 512), ("none", "4bit"), (False, True)))
    if args.quick:
        grid = [
            (1, 128, "none", False),
            (4, 512, "none", False),
            (4, 512, "4bit", False),
            (4, 512, "none", True),
        ]
    params = shape.params()
    head = f"model: hidden {args.hidden}, {args.layers} layers, vocabulary {shape.vocab}"
    print(f"{head}, {params:,} parameters")  # noqa: T201
    worst = 0.0
    for batch, length, quant, ckpt in grid:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            "--model",
            str(model),
            "--batch",
            str(batch),
            "--length",
            str(length),
            "--quant",
            quant,
            "--ckpt",
            str(int(ckpt)),
            "--steps",
            str(args.steps),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not lines:
            print(
                f"batch {batch} length {length} {quant} ckpt {ckpt}: failed\n{out.stderr[-2000:]}"
            )  # noqa: T201
            continue
        measured = json.loads(lines[-1])
        plan = Plan(
            batch_size=batch, max_length=length, quantize_4bit=quant == "4bit", checkpointing=ckpt
        )
        est = estimate(shape, plan)
        err = (est.total - measured["peak"]) / measured["peak"]
        worst = max(worst, abs(err))
        parts = ", ".join(f"{k} {human(v)}" for k, v in est.parts.items() if v)
        print(  # noqa: T201
            f"batch {batch:2d} length {length:4d} {quant:5s} ckpt {str(ckpt):5s}: "
            f"estimate {human(est.total):>10s}  measured {human(measured['peak']):>10s}  "
            f"error {err:+.1%}  ({measured['wall_s']:.1f}s; {parts})"
        )
    print(f"worst relative error: {worst:.1%} (goal: within 25%)")  # noqa: T201


if __name__ == "__main__":
    main()
