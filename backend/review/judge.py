"""A second review signal: an LLM judge rates each example of a dataset version from 1 to 10
through the synth provider (job kind `quality-judge`, any OpenAI-compatible endpoint). Scores
are stored as method `judge_flaw` = 10 - rating, so they flag like nll and entropy (higher is
worse): a top-k cut picks the answers the judge liked least. The endpoint and key come from
Settings when the job runs; no key is ever written into a spec."""

from __future__ import annotations

from typing import Any

from backend.review.scoring import review_inputs

METHOD = "judge_flaw"


def prepare_judge_spec(
    store: Any,
    ws: Any,
    dataset: str,
    judge_model: str,
    *,
    version: str | int | None = None,
    only_unreviewed: bool = False,
    criteria: str | None = None,
    base_url: str | None = None,
    concurrency: int = 8,
) -> tuple[dict, int, dict]:
    """The `quality-judge` job spec over a dataset version. Raises ValueError when no
    judge model is named or no endpoint is configured. Returns (spec, count, version row)."""
    from backend.config import Settings

    judge_model = (judge_model or "").strip()
    if not judge_model:
        raise ValueError("name the judge model (the model id at the endpoint)")
    if not (base_url or Settings().openai_base_url):
        raise ValueError(
            "no judge endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY) in Settings, "
            "or give a base URL"
        )
    path, n, ver, rnd = review_inputs(
        store, ws, dataset, version=version, only_unreviewed=only_unreviewed
    )
    spec: dict[str, Any] = {
        "examples_path": str(path),
        "model": judge_model,
        "method": METHOD,
        "dataset": dataset,
        "version_id": ver["id"],
        "round": rnd,
        "concurrency": concurrency,
    }
    if criteria and criteria.strip():
        spec["criteria"] = criteria.strip()
    if base_url:
        spec["base_url"] = base_url
    return spec, n, ver
