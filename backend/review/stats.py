"""Read-only review figures for the Review page and `ftstudio review`: a batch's progress and
reviewer agreement, and the rounds table (does the flagged share fall as the data gets
cleaner and the model surer?). Store reads plus arithmetic; nothing here writes."""

from __future__ import annotations

from backend.review.flagging import share_at_or_above
from backend.review.verdicts import cohen_kappa, fleiss_kappa
from backend.store import review as rstore
from backend.store.db import Store


def agreement(reviews: list[dict], n_items: int) -> dict:
    """Per-reviewer verdict counts and agreement on the items two or more people reviewed
    (Cohen's kappa when every such item has exactly two, Fleiss' kappa always)."""
    per: dict[str, dict[str, int]] = {}
    by_item: dict[str, dict[str, str]] = {}
    for r in reviews:
        c = per.setdefault(r["reviewer"], {"accept": 0, "reject": 0, "correct": 0})
        c[r["verdict"]] += 1
        by_item.setdefault(r["example_id"], {})[r["reviewer"]] = r["verdict"]
    overlap = [v for v in by_item.values() if len(v) >= 2]
    pair_kappa = None
    if overlap and all(len(v) == 2 for v in overlap):
        a = [list(v.values())[0] for v in overlap]
        b = [list(v.values())[1] for v in overlap]
        pair_kappa = cohen_kappa(a, b)
    return {
        "items": n_items,
        "reviewed": len(by_item),
        "reviewers": per,
        "overlap_items": len(overlap),
        "cohen_kappa": pair_kappa,
        "fleiss_kappa": fleiss_kappa(list(v.values()) for v in overlap),
    }


def progress(store: Store, batch_id: str) -> dict:
    """`agreement` over a batch's stored verdicts."""
    return agreement(rstore.reviews(store, batch_id), len(rstore.batch_items(store, batch_id)))


def _round(row: dict, scores: list[float], first_cut: float | None) -> dict:
    return {
        **row,
        "share_above_first_cut": share_at_or_above(scores, first_cut),
        "mean_score": sum(scores) / len(scores) if scores else None,
    }


def rounds(store: Store, dataset: str) -> list[dict]:
    """Per round: flagged share under its own cut and under the first round's cut line (a fixed
    line, so the share moves as the data gets cleaner and the model surer). A re-scoring done
    after the last batch (the next round, not flagged yet) is the last row, with no batch."""
    out, first_cut, method = [], None, "nll"
    done = rstore.batches(store, dataset)
    for b in done:
        method = b["method"] or "nll"
        scores = list(rstore.scores_of(store, b["score_job_id"], method).values())
        flagged = rstore.n_flagged(store, b["id"])
        first_cut = b["cut"] if first_cut is None else first_cut
        row = {
            "round": b["round"],
            "batch": b["id"],
            "model": b["model"],
            "n_scored": b["n_scored"],
            "n_flagged": flagged,
            "flagged_share": flagged / b["n_scored"] if b["n_scored"] else 0.0,
        }
        out.append(_round(row, scores, first_cut))
    if done:
        used = {b["score_job_id"] for b in done}
        later = [
            j
            for j in rstore.score_jobs(store, dataset)
            if j["job_id"] not in used and (j["round"] or 1) > done[-1]["round"]
        ]
        if later:  # newest first: the latest re-scoring of the next round
            j = later[0]
            scores = list(rstore.scores_of(store, j["job_id"], method).values())
            row = {
                "round": j["round"],
                "batch": None,
                "model": j["model"],
                "n_scored": len(scores),
                "n_flagged": None,
                "flagged_share": None,
            }
            out.append(_round(row, scores, first_cut))
    return out
