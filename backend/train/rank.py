"""One rank of a run that trains outside its job's process:
`python -m backend.train.rank WORKSPACE JOB_ID`.

`accelerate launch` starts one per process (RANK, LOCAL_RANK and WORLD_SIZE in the
environment); a Ray job starts one on the cluster. Each reads the job's spec from its folder
and trains through the same skeleton as a local run (backend.train.common.run_method) with a
RankContext, so only rank 0 writes the run's files and every rank stops at the same step on a
cancel (the cancel file, or SIGTERM). Exit codes: 0 succeeded, 3 cancelled, 1 failed; rank 0
also leaves the end in rank_result.json for the job's owner.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from backend.jobs.context import JobCancelled
from backend.jobs.kinds import validate_spec
from backend.jobs.queue import read_spec
from backend.jobs.ranks import RankContext
from backend.train.common import run_method
from backend.train.runtime import world_size
from backend.train.sft import RUNNERS
from backend.workspace import Workspace

CANCELLED_EXIT = 3


def run_rank(ws: Workspace, job_id: str) -> int:
    """Train this rank's share of the job; returns the exit code."""
    rank = int(os.environ.get("RANK", "0"))
    ctx = RankContext(ws, ws.job_dir(job_id), rank=rank, world=world_size())
    signal.signal(signal.SIGTERM, lambda *_: ctx.request_cancel())
    ctx.log(f"rank {rank} of {ctx.world} (pid {os.getpid()}) starts")
    try:
        _, raw = read_spec(ctx.dir)
        spec = validate_spec("train", raw)
        run_method(ctx, spec, RUNNERS[spec.method])
    except JobCancelled:
        ctx.write_result("cancelled")
        return CANCELLED_EXIT
    except Exception as exc:  # the owner turns it into the job's error
        ctx.log(traceback.format_exc())
        ctx.write_result("failed", f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        ctx.close()
    ctx.write_result("succeeded")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print("usage: python -m backend.train.rank WORKSPACE JOB_ID", file=sys.stderr)  # noqa: T201
        return 2
    os.environ["FTSTUDIO_WORKSPACE"] = str(Path(args[0]).resolve())
    return run_rank(Workspace(Path(args[0])), args[1])


if __name__ == "__main__":
    sys.exit(main())
