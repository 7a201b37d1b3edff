"""Import a large messages JSONL through the studio (`import_file`: chunked read, shape check,
validation, content hashing, one bulk insert per chunk) and through DuckDB's own `read_json`
into a table, on the same file in one run; print the studio's time over DuckDB's last, with
the studio's peak memory.

    python bench/import.py [--rows 1000000] [--turns 4]

Each side runs in a fresh process (its own database), so peak memory (ru_maxrss) is that
import's alone. Goal: ratio <= 10; the studio's peak memory flat as the file grows.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "project task board sprint due date assignee label comment export invoice billing "
    "workspace member role permission archive filter view calendar timeline gantt"
).split()


def write_file(path: Path, rows: int, turns: int) -> None:
    """`rows` distinct support conversations (about 700 bytes each at 4 turns)."""
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            msgs = [{"role": "system", "content": "You are Tasklane's support assistant."}]
            for t in range(turns // 2):
                q = " ".join(rng.choice(WORDS) for _ in range(9))
                a = " ".join(rng.choice(WORDS) for _ in range(22))
                msgs += [
                    {"role": "user", "content": f"#{i}.{t} How do I {q}?"},
                    {"role": "assistant", "content": f"To do that: {a}."},
                ]
            fh.write(json.dumps({"messages": msgs, "topic": WORDS[i % len(WORDS)]}) + "\n")


def child_studio(path: str, ws_dir: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from backend.action import Ctx
    from backend.config import Settings
    from backend.store import Store
    from backend.synth.import_actions import import_file
    from backend.workspace import Workspace

    ws = Workspace(Path(ws_dir)).ensure()
    store = Store.open(ws.db_path)
    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    t0 = time.perf_counter()
    v = import_file(ctx, "bench", path)
    seconds = time.perf_counter() - t0
    stored = store.scalar("SELECT count(*) FROM version_examples WHERE version_id = ?", [v["id"]])
    store.close()
    return {"seconds": seconds, "rows": stored}


def child_duckdb(path: str, db: str) -> dict:
    import duckdb

    con = duckdb.connect(db)
    t0 = time.perf_counter()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')", [path]
    )
    seconds = time.perf_counter() - t0
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows}


def run_child(which: str, path: Path, out: Path) -> dict:
    code = (
        "import json, resource, sys; sys.path.insert(0, sys.argv[4]);"
        "import importlib.util as u; s = u.spec_from_file_location('b', sys.argv[1]);"
        "m = u.module_from_spec(s); s.loader.exec_module(m);"
        "r = getattr(m, 'child_' + sys.argv[2])(sys.argv[3], sys.argv[5]);"
        "r['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
        "print(json.dumps(r))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, __file__, which, str(path), str(ROOT), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--turns", type=int, default=4, help="user+assistant turns per example")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftstudio-bench-import-") as tmp:
        path = Path(tmp) / "examples.jsonl"
        write_file(path, args.rows, args.turns)
        size = path.stat().st_size / 2**20
        print(f"examples.jsonl: {args.rows:,} messages examples, {size:,.0f} MiB")
        duck = run_child("duckdb", path, Path(tmp) / "plain.duckdb")
        print(
            f"duckdb read_json:  {duck['seconds']:8.2f} s  ({args.rows / duck['seconds']:,.0f} "
            f"rows/s, peak {duck['peak_mib']:,.0f} MiB)"
        )
        studio = run_child("studio", path, Path(tmp) / "ws")
        assert studio["rows"] == args.rows == duck["rows"], (studio, duck)
        print(
            f"studio import:     {studio['seconds']:8.2f} s  "
            f"({args.rows / studio['seconds']:,.0f} rows/s, peak {studio['peak_mib']:,.0f} MiB)"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(the bench's own process, which wrote the file: peak {own:,.0f} MiB)")
    print(
        f"ratio (studio / duckdb read_json): {studio['seconds'] / duck['seconds']:.1f}x; "
        f"studio peak memory {studio['peak_mib']:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
