"""Does flagging save reviewers' time? A templated support dataset with 10% planted errors
(responses swapped between prompts of unrelated topics), a brief fine-tune of the tiny model on
all of it (errors included, as in real life) through the studio's `train` job, then every example
scored with the studio's scoring code under base + adapter.

Reviewing the top 20% by uncertainty should find far more of the planted errors than a random
20% (which finds 20% of them on average). Runs several seeds (data, model, training) and averages,
as one seed swings the figure by about +-1x. Prints both shares and their ratio last (goal >=
2.5x; the best possible is 5x, when all the errors sit in the top 20%).

    .venv/bin/python bench/flagging.py [--repeats 5] [--steps 200] [--hidden 384]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# topic -> (question templates with a slot {x}, the one deterministic answer of the topic).
TOPICS: dict[str, tuple[list[str], str]] = {
    "invite": (
        [
            "How do I add {x} to my board?",
            "Can I invite {x} to the project?",
            "Please help me give {x} access to our workspace.",
        ],
        "Open Settings, then Members, and invite them by email.",
    ),
    "gantt": (
        [
            "Why is the Gantt chart empty for {x}?",
            "The timeline shows nothing for {x}.",
            "Tasks of {x} are missing from the timeline.",
        ],
        "Give the tasks a start date and a due date; then they show on the timeline.",
    ),
    "export": (
        [
            "Can I export the {x} report to CSV?",
            "How do I download the {x} report?",
            "Where is the export button for the {x} report?",
        ],
        "Open Reports, pick the report, and choose Export to get a CSV file.",
    ),
    "billing": (
        [
            "When is the invoice for {x} sent?",
            "I did not get the {x} invoice.",
            "Who receives the invoice for {x}?",
        ],
        "Invoices go to the workspace owner on the first day of each month.",
    ),
    "roles": (
        ["Can {x} change roles?", "What may {x} do as a guest?", "Why can {x} not edit tasks?"],
        "Admins change roles; members edit tasks; guests can only comment.",
    ),
    "password": (
        [
            "{x} forgot the password.",
            "The reset email for {x} never arrives.",
            "How does {x} reset a password?",
        ],
        "Use Forgot password on the sign-in page and check the spam folder for the link.",
    ),
    "archive": (
        [
            "How do I archive the {x} board?",
            "Can I hide the {x} board for now?",
            "Remove the {x} board without losing cards.",
        ],
        "Open the board menu and choose Archive; cards stay and can be restored.",
    ),
    "slack": (
        [
            "Slack stopped posting updates from {x}.",
            "Connect {x} to our Slack channel.",
            "Slack messages for {x} are late.",
        ],
        "Reconnect Slack under Integrations and pick the channel again.",
    ),
}
FILLS = [
    "Alice",
    "Bob",
    "Priya",
    "Chen",
    "Sprint 12",
    "Marketing",
    "Q3",
    "Design",
    "Ops",
    "Sales",
    "Mobile",
    "Web",
]


def make_dataset(n: int, bad_share: float, seed: int) -> tuple[list[dict], set[str]]:
    """`n` {id, messages} examples, a `bad_share` of them with the response of an example from
    another topic; returns the examples and the ids of the planted errors."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    rows = []
    for i in range(n):
        topic, fill = topics[i % len(topics)], rng.choice(FILLS)
        questions, answer = TOPICS[topic]
        rows.append(
            {
                "id": f"ex{i:04d}",
                "topic": topic,
                "q": rng.choice(questions).format(x=fill),
                "a": answer,
            }
        )
    bad = set(rng.sample(range(n), round(n * bad_share)))
    originals = [r["a"] for r in rows]
    for i in sorted(bad):
        donor = rng.choice([j for j in range(n) if rows[j]["topic"] != rows[i]["topic"]])
        rows[i]["a"] = originals[donor]
    examples = [
        {
            "id": r["id"],
            "messages": [
                {"role": "user", "content": r["q"]},
                {"role": "assistant", "content": r["a"]},
            ],
        }
        for r in rows
    ]
    return examples, {rows[i]["id"] for i in bad}


def train_adapter(
    model_dir: Path, data: Path, ws_root: Path, args: argparse.Namespace, seed: int
) -> Path:
    """A `train` job through the studio (validated config, queue, the job runner), in-process."""
    from backend.action import Ctx
    from backend.config import Settings
    from backend.jobs import queue
    from backend.jobs.run import run_job
    from backend.train.actions import start_run
    from backend.train.config import file_fields
    from backend.workspace import Workspace

    ws = Workspace(ws_root).ensure()
    fields = {
        "base_model": str(model_dir),
        **file_fields(data),
        "learning_rate": args.lr,
        "batch_size": args.batch,
        "max_steps": args.steps,
        "seed": seed,
        "max_length": 96,
        "lora_r": 16,
        "lora_alpha": 32,
        "eval_split": 0.0,
        "warmup_ratio": 0.05,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "quant": "none",
        "save_steps": 10_000,
    }
    job_id = start_run(Ctx(store=None, ws=ws, settings=Settings()), fields, start_worker=False)
    assert queue.claim_next(ws) == job_id
    with open(ws_root / "trainer.log", "w") as log, contextlib.redirect_stdout(log):
        state = run_job(ws, job_id)  # the trainer prints a dict per step; keep it in a file
    queue.release(ws, job_id)
    if state != "succeeded":
        raise SystemExit(f"train job {state}: {queue.get(ws, job_id).error}")
    losses = [
        json.loads(line) for line in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["value"] for r in losses if r["name"] == "loss"]
    print(
        f"seed {seed}: train job {args.steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}",
        flush=True,
    )
    return ws.runs / job_id / "adapter"


def one_seed(args: argparse.Namespace, seed: int, tmp: Path) -> dict[str, float]:
    """Build the data and model, train, score; the shares of planted errors found."""
    from backend.review.flagging import FlagPolicy, flag
    from backend.review.scoring import load_model, score_examples
    from backend.train.demo_model import build_tiny_model

    examples, planted = make_dataset(args.examples, args.bad, seed)
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": e["messages"]}) + "\n" for e in examples))
    model = build_tiny_model(tmp / "model", hidden_size=args.hidden, layers=args.layers, seed=seed)
    adapter = train_adapter(model, data, tmp / "workspace", args, seed)
    k = round(len(examples) * args.flag)
    policy = FlagPolicy(kind="top_k", value=k, qc_share=0)
    found = {}
    for label, adapter_path in (("base", None), ("tuned", adapter)):
        tok, lm = load_model(str(model), str(adapter_path) if adapter_path else None, "cpu")
        rows = score_examples(tok, lm, examples, batch_size=32)
        flagged = {i for i, _ in flag({r["id"]: r[args.method] for r in rows}, policy)}
        found[label] = len(flagged & planted) / len(planted)
    rng = random.Random(seed)
    ids = [e["id"] for e in examples]
    draws = [len(set(rng.sample(ids, k)) & planted) / len(planted) for _ in range(2000)]
    found["random"] = sum(draws) / len(draws)
    print(
        f"seed {seed}: top {args.flag:.0%} by {args.method} finds {found['tuned']:.1%} of "
        f"{len(planted)} planted errors under base + adapter ({found['base']:.1%} under the "
        f"base alone); random 20% draws find {found['random']:.1%}",
        flush=True,
    )
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=320)
    ap.add_argument("--bad", type=float, default=0.10, help="Share of planted errors.")
    ap.add_argument("--flag", type=float, default=0.20, help="Share of examples reviewed.")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--method", default="nll", choices=["nll", "entropy"])
    ap.add_argument("--seed", type=int, default=1, help="First seed (data, model, training).")
    ap.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="Seeds run (seed, seed+1, ...); the shares are averaged over them.",
    )
    args = ap.parse_args()

    started = time.perf_counter()
    print(
        f"dataset: {args.examples} examples over {len(TOPICS)} topics, {args.bad:.0%} planted "
        f"errors; model hidden {args.hidden}, {args.layers} layers; {args.steps} steps at lr "
        f"{args.lr}; {args.repeats} seeds",
        flush=True,
    )
    runs = []
    for seed in range(args.seed, args.seed + args.repeats):
        with tempfile.TemporaryDirectory(prefix="ftstudio-flagbench-") as tmp:
            runs.append(one_seed(args, seed, Path(tmp)))
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
    print(f"random {args.flag:.0%}: finds {args.flag:.1%} expected, {mean['random']:.1%} measured")
    print(f"flagged top {args.flag:.0%} (base only, {args.method}): finds {mean['base']:.1%}")
    print(
        f"flagged top {args.flag:.0%} (base + adapter, {args.method}): finds "
        f"{mean['tuned']:.1%} (per seed {min(r['tuned'] for r in runs):.1%}-"
        f"{max(r['tuned'] for r in runs):.1%})"
    )
    print(f"wall time: {time.perf_counter() - started:.0f}s")
    print(f"ratio flagged/random: {mean['tuned'] / args.flag:.2f}x (goal >= 2.5x)")


if __name__ == "__main__":
    main()
