"""Scoring throughput: the same examples under the same model, scored one at a time and
batched with length bucketing, in one run. Prints the speed-up ratio last (goal: >= 4x).

    python bench/score.py [--examples 96] [--hidden 256] [--layers 4] [--batch 32]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from backend.review.scoring import load_model, score_examples
from backend.train.demo_model import build_tiny_model

WORDS = (
    "invite members settings board gantt sprint export report billing invoice admin role "
    "task due date timeline comment guest permission workspace owner"
).split()


def make_examples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        {
            "id": f"e{i}",
            "messages": [
                {"role": "user", "content": text(5, 60)},
                {"role": "assistant", "content": text(5, 120)},
            ],
        }
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=96)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "m", hidden_size=args.hidden, layers=args.layers)
        tok, model = load_model(str(path))
        examples = make_examples(args.examples)
        score_examples(tok, model, examples[:8], batch_size=8)  # warm-up
        t0 = time.perf_counter()
        single = score_examples(tok, model, examples, batch_size=1, bucket=False)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        batched = score_examples(tok, model, examples, batch_size=args.batch, bucket=True)
        t_batched = time.perf_counter() - t0
    worst = max(abs(a["nll"] - b["nll"]) for a, b in zip(single, batched, strict=True))
    device = next(model.parameters()).device
    print(f"model: hidden {args.hidden}, {args.layers} layers, vocab {len(tok)}, on {device}")
    print(f"examples: {len(examples)}, response tokens: {sum(r['n_tokens'] for r in single)}")
    print(f"one at a time: {t_single:.2f}s ({len(examples) / t_single:.1f} examples/s)")
    print(
        f"batched {args.batch} + bucketing: {t_batched:.2f}s "
        f"({len(examples) / t_batched:.1f} examples/s)"
    )
    print(f"largest |nll difference|: {worst:.2e}")
    print(f"speed-up batched/single: {t_single / t_batched:.1f}x (goal >= 4x)")


if __name__ == "__main__":
    main()
