"""Ingest a 1M-row metrics JSONL through the store (byte-offset tail, Arrow parse, one bulk
insert per chunk) and through a per-row Python insert loop, in one run; print the ratio last.

    python bench/ingest.py [--rows 1000000]

Goal: >= 20x.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from backend.ingest.jobs import ingest_all
from backend.jobs import queue
from backend.store import Store
from backend.workspace import Workspace


def write_metrics(path: Path, rows: int) -> None:
    rng = random.Random(0)
    names = ["loss", "learning_rate", "grad_norm"]
    with open(path, "w") as fh:
        for i in range(rows):
            step = i // len(names)
            fh.write(
                json.dumps(
                    {
                        "step": step,
                        "name": names[i % len(names)],
                        "value": rng.random(),
                        "t": 1.7e9 + step * 0.1,
                    }
                )
                + "\n"
            )


def per_row_loop(store: Store, job_id: str, path: Path) -> int:
    cur = store.cursor()
    cur.execute("BEGIN TRANSACTION")
    n = 0
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            cur.execute(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                [job_id, r["step"], r["name"], r["value"], r["t"]],
            )
            n += 1
    cur.execute("COMMIT")
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        job_id = queue.submit(ws, "sleep", {"steps": 1})
        path = ws.job_dir(job_id) / "metrics.jsonl"
        write_metrics(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(f"metrics.jsonl: {args.rows:,} rows, {size_mb:.0f} MiB")

        store = Store.open(ws.db_path)
        t0 = time.perf_counter()
        report = ingest_all(store, ws)
        fast = time.perf_counter() - t0
        assert report.rows["metrics.jsonl"] == args.rows, report
        print(f"store ingest:      {fast:7.2f} s  ({args.rows / fast:,.0f} rows/s)")

        t0 = time.perf_counter()
        n = per_row_loop(store, "loop", path)
        slow = time.perf_counter() - t0
        assert n == args.rows
        print(f"per-row insert:    {slow:7.2f} s  ({args.rows / slow:,.0f} rows/s)")
        same = store.scalar(
            "SELECT count(*) FROM (SELECT step, name, value FROM metrics WHERE job_id = ? "
            "EXCEPT SELECT step, name, value FROM metrics WHERE job_id = 'loop')",
            [job_id],
        )
        assert same == 0, "both paths must store the same rows"
        store.close()
    print(f"ratio (per-row / store): {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
