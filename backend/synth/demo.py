"""The demo workspace's sample dataset: Tasklane customer support (backend/demo/support.jsonl).

Tasklane is a fictional project-management tool; the ~40 hand-written conversations cover the
Gantt chart, permissions, billing, integrations, notifications, exports and more, so the
Datasets, Review and Training pages have real text to show before any generator is connected.
backend/synth/actions.py `seed_demo_dataset` imports it once per workspace.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DATASET = "tasklane-support"
SAMPLE = Path(__file__).resolve().parent.parent / "demo" / "support.jsonl"
NOTE = "sample data: Tasklane customer support (hand-written)"

DEMO_RECIPE = {
    "task": "Answer customer questions about Tasklane, a project-management tool, the way its "
    "support team does: friendly, short, with the exact menu path when there is one.",
    "format": "messages",
    "system_prompt": "You are the Tasklane support assistant. Answer clearly and briefly, with "
    "steps where they help.",
    "topics": ["gantt chart", "permissions", "billing", "integrations", "notifications", "exports"],
    "seed_examples": [
        {
            "user": "How do I open the Gantt chart for my project?",
            "assistant": "Open the project, then choose View > Gantt in the toolbar at the top.",
        },
    ],
    "per_topic": 5,
}
