"""False-alarm and detection rates of the drift methods, measured side by side in one run.

    python bench/drift_false_alarms.py [--trials 40] [--shifted 10]

Each trial draws a reference (200 prompts) and a window (60) from the synthetic support traffic
in backend/drift/synthetic.py: same-distribution trials count false alarms, shifted trials
count detections. Embeddings are the real all-MiniLM-L6-v2 ones, computed once per distinct text.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backend.drift.embed import encode
from backend.drift.job import detect
from backend.drift.monitors import METHODS, MonitorConfig
from backend.drift.synthetic import sample

_cache: dict[str, np.ndarray] = {}


def embed(texts):
    missing = [t for t in dict.fromkeys(texts) if t not in _cache]
    if missing:
        _cache.update(zip(missing, encode(missing), strict=True))
    return np.stack([_cache[t] for t in texts])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--shifted", type=int, default=10)
    ap.add_argument("--n-ref", type=int, default=200)
    ap.add_argument("--n-win", type=int, default=60)
    args = ap.parse_args()
    cfg = MonitorConfig()
    t0 = time.time()
    out = {}
    for label, n, shifted in (("same", args.trials, False), ("shifted", args.shifted, True)):
        hits = {m: 0 for m in METHODS}
        any_alert = two_alert = 0
        for i in range(n):
            ref = [r["text"] for r in sample(args.n_ref, seed=1000 + i)]
            win = [r["text"] for r in sample(args.n_win, seed=5000 + i, shifted=shifted)]
            results = detect(ref, win, cfg.model_copy(update={"seed": i}), embed=embed)
            drift = [r.method for r in results if r.verdict == "drift"]
            for m in drift:
                hits[m] += 1
            any_alert += len(drift) >= 1
            two_alert += len(drift) >= 2
        out[label] = (n, hits, any_alert, two_alert)
    print(f"{'method':12} {'false alarms (same)':>22} {'detections (shifted)':>22}")
    (ns, hs, as_, ts), (nd, hd, ad, td) = out["same"], out["shifted"]

    def row(name: str, a: int, b: int) -> None:
        print(f"{name:12} {a:>4}/{ns:<4} = {a / ns:6.1%}   {b:>4}/{nd:<4} = {b / nd:6.1%}")

    for m in METHODS:
        row(m, hs[m], hd[m])
    row("alert (>=1)", as_, ad)
    row("alert (>=2)", ts, td)
    print(f"{args.n_ref} reference vs {args.n_win} window prompts; {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
