"""The `drift` job: compare a window of production prompts against a reference dataset version.

The submitter (CLI or dashboard) writes two JSONL files before queueing, one object per line:
`{"text": ..., "topic": ...}` for the reference and `{"text": ...}` for the window, and names
them in the spec. The job runs every enabled method and appends one row per method to
`drift_results.jsonl`, which `backend.store.monitoring.ingest_results` loads into drift_reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from backend.drift import detectors as d
from backend.drift.monitors import MonitorConfig
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec
from backend.jsonl import read_jsonl

RESULTS = "drift_results.jsonl"
NEW = "new"
STOPWORDS = set(
    "a an and are as at be by can do does for from how i in is it my of on or our so that the "
    "this to was we what when which why with you your".split()
)


class DriftSpec(JobSpec):
    monitor_id: str = Field(description="Monitor the check belongs to.")
    monitor_name: str = Field("", description="Its name, for the job title.")
    check_id: str = Field(description="The drift check these results belong to.")
    reference_version_id: str = Field(description="Dataset version used as the reference.")
    reference_path: str = Field(description="JSONL of reference texts (written by the submitter).")
    window_path: str = Field(description="JSONL of window texts (written by the submitter).")
    config: MonitorConfig = Field(default_factory=MonitorConfig)

    def title(self) -> str:
        return f"drift check {self.monitor_name or self.monitor_id}"


def read_texts(path: Path) -> tuple[list[str], list[str | None]]:
    """Texts and topics of a JSONL file ({"text", "topic"?} lines), naming any bad line."""
    rows = list(read_jsonl(path, lambda obj: (str(obj["text"]), obj.get("topic"))))
    return [t for t, _ in rows], [topic for _, topic in rows]


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


def cluster_names(
    texts: Sequence[str], labels: np.ndarray, topics: Sequence[str | None], k: int
) -> dict[str, str]:
    """A readable name per cluster: its majority reference topic (when there is one) and the
    three words most over-represented in it."""
    overall = Counter(w for t in texts for w in set(d.tokenize(t)))
    total = max(len(texts), 1)
    names = {}
    for j in range(k):
        members = [i for i in range(len(texts)) if labels[i] == j]
        counts = Counter(
            w for i in members for w in set(d.tokenize(texts[i])) if w not in STOPWORDS
        )
        lift = sorted(
            counts, key=lambda w: -(counts[w] / max(len(members), 1) - overall[w] / total)
        )[:3]
        topic = Counter(t for i in members if (t := topics[i])).most_common(1)
        prefix = f"{topic[0][0]} · " if topic else ""
        names[f"c{j}"] = f"{prefix}{', '.join(lift) or 'empty'} (c{j})"
    return names


def detect(
    reference: Sequence[str],
    window: Sequence[str],
    config: MonitorConfig,
    *,
    reference_topics: Sequence[str | None] | None = None,
    window_topics: Sequence[str | None] | None = None,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    on_method: Callable[[str, d.DriftResult], None] | None = None,
) -> list[d.DriftResult]:
    """Run every enabled method; `embed` defaults to all-MiniLM-L6-v2."""
    if len(reference) < 2 or len(window) < 2:
        raise ValueError(
            f"a drift check needs at least 2 texts on each side; got "
            f"{len(reference)} reference and {len(window)} window texts"
        )
    results: list[d.DriftResult] = []

    def done(r: d.DriftResult) -> None:
        results.append(r)
        if on_method:
            on_method(r.method, r)

    c, seed = config, config.seed
    if c.vocabulary.enabled:
        v = c.vocabulary
        done(
            d.vocabulary_drift(
                reference,
                window,
                alpha=v.alpha,
                min_distance=v.min_distance,
                n_permutations=v.n_permutations,
                top_terms=v.top_terms,
                seed=seed,
            )
        )
    if c.length.enabled:
        done(
            d.length_shift(
                reference, window, alpha=c.length.alpha, min_statistic=c.length.min_statistic
            )
        )
    need_emb = c.classifier.enabled or c.mmd.enabled
    ref_topics = list(reference_topics or [None] * len(reference))
    win_topics = list(window_topics or [None] * len(window))
    labelled = all(ref_topics) and all(win_topics)
    if not (need_emb or (c.topics.enabled and not labelled)):
        return results
    if embed is None:
        from backend.drift.embed import encode as embed
    rng = np.random.default_rng(seed)
    ri = _subsample(len(reference), c.max_samples, rng)
    wi = _subsample(len(window), c.max_samples, rng)
    ref_texts = [reference[i] for i in ri]
    er, ew = embed(ref_texts), embed([window[i] for i in wi])
    if c.classifier.enabled:
        k = c.classifier
        done(
            d.classifier_drift(
                er,
                ew,
                auc_threshold=k.auc_threshold,
                alpha=k.alpha,
                small_sample=k.small_sample,
                n_permutations=k.n_permutations,
                folds=k.folds,
                dims=min(k.dims, len(er) + len(ew) - 1),
                seed=seed,
            )
        )
    if c.mmd.enabled:
        done(d.mmd_drift(er, ew, alpha=c.mmd.alpha, n_permutations=c.mmd.n_permutations, seed=seed))
    if c.topics.enabled:
        t = c.topics
        if labelled:
            lr, lw, names, source = ref_topics, win_topics, None, "topics"
        else:
            centres = d.kmeans(er, min(t.clusters, max(2, len(er) // 10)), seed=seed)
            ar, aw = d.assign_clusters(er, centres), d.assign_clusters(ew, centres)
            names = cluster_names(ref_texts, ar, [ref_topics[i] for i in ri], len(centres))
            # prompts farther from every centre than 99% of the reference are a topic of their
            # own: new subjects would otherwise hide inside the nearest old cluster
            far = np.quantile(d.centre_distance(er, centres, ar), 0.99)
            lr = [
                NEW if dist > far else f"c{j}"
                for j, dist in zip(ar, d.centre_distance(er, centres, ar), strict=True)
            ]
            lw = [
                NEW if dist > far else f"c{j}"
                for j, dist in zip(aw, d.centre_distance(ew, centres, aw), strict=True)
            ]
            names[NEW] = "far from every reference cluster (new)"
            source = "k-means clusters of the reference embeddings"
        r = d.topic_shift(
            lr,
            lw,
            alpha=t.alpha,
            min_distance=t.min_distance,
            n_permutations=t.n_permutations,
            seed=seed,
            names=names,
        )
        r.details["source"] = source
        done(r)
    return results


def run_job(ctx: JobContext, spec: DriftSpec) -> None:
    reference, ref_topics = read_texts(Path(spec.reference_path))
    window, win_topics = read_texts(Path(spec.window_path))
    methods = spec.config.enabled_methods()
    ctx.progress(0, len(methods), unit="methods", message="loading")
    ctx.event(f"comparing {len(window)} window texts with {len(reference)} reference texts")
    counter = {"n": 0}

    def on_method(name: str, r: d.DriftResult) -> None:
        counter["n"] += 1
        row: dict[str, Any] = {
            "check_id": spec.check_id,
            "monitor_id": spec.monitor_id,
            "reference_version_id": spec.reference_version_id,
            "n_reference": len(reference),
            "n_window": len(window),
            **r.as_dict(),
        }
        ctx.output(RESULTS, [row])
        ctx.metric(counter["n"], **{f"{name}_statistic": r.statistic})
        ctx.log(f"{name}: statistic {r.statistic:.4f} threshold {r.threshold:.4f} {r.verdict}")
        ctx.check_cancelled()
        ctx.progress(counter["n"], len(methods), message=name)

    detect(
        reference,
        window,
        spec.config,
        reference_topics=ref_topics,
        window_topics=win_topics,
        on_method=on_method,
    )
