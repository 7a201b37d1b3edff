"""Near-duplicate detection that scales: MinHash signatures over word 3-gram shingles, and
locality-sensitive hashing (LSH) by bands, so only examples that share a band are compared:
about linear in the number of examples, never all pairs.

    sigs = signatures(texts)                       # (n, 64) uint64, one row per text
    pairs = near_duplicate_pairs(sigs, 0.8)        # [(i, j, similarity)], i < j
    groups = duplicate_groups(pairs)               # [[i, j, k], ...] connected by a pair

The similarity of a pair is the share of equal signature values, an unbiased estimate of
the Jaccard similarity of the two texts' shingle sets. With 16 bands of 4 rows, pairs at
Jaccard 0.5 are found half the time and pairs at 0.8 or more 99.9% of the time. Pure
functions (numpy): `ftstudio dataset dups` streams a version's texts through them.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

NUM_PERM = 64
BANDS = 16
PRIME = np.uint64(4_294_967_311)  # the first prime above 2**32
MAX_BUCKET = 64  # a bigger bucket (many copies of one text) is compared to its first member
_WORD = re.compile(r"\w+")


def _params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 2**31, size=num_perm, dtype=np.uint64)
    return a, b


def shingle_hashes(text: str, k: int = 3) -> np.ndarray:
    """crc32 of each word k-gram of the lower-cased text (one hash for a shorter text).

    >>> len(shingle_hashes("How do I export my board?"))
    4
    """
    words = _WORD.findall(text.lower())
    grams = {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


def signatures(texts: Iterable[str], num_perm: int = NUM_PERM, seed: int = 0) -> np.ndarray:
    """One MinHash signature per text: row i holds min over its shingles of (a*x + b) mod p."""
    a, b = _params(num_perm, seed)
    rows = []
    for text in texts:
        hashes = shingle_hashes(text)
        rows.append(((a[:, None] * hashes[None, :] + b[:, None]) % PRIME).min(axis=1))
    return np.vstack(rows) if rows else np.zeros((0, num_perm), dtype=np.uint64)


def candidate_pairs(sigs: np.ndarray, bands: int = BANDS) -> set[tuple[int, int]]:
    """Pairs of rows that agree on every value of at least one band."""
    n, width = sigs.shape
    rows = width // bands
    out: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        for i in range(n):
            buckets[block[i].tobytes()].append(i)
        for members in buckets.values():
            if len(members) < 2:
                continue
            if len(members) > MAX_BUCKET:
                out.update((members[0], j) for j in members[1:])
                continue
            out.update(
                (members[x], members[y])
                for x in range(len(members))
                for y in range(x + 1, len(members))
            )
    return out


def near_duplicate_pairs(
    sigs: np.ndarray, threshold: float = 0.8, bands: int = BANDS
) -> list[tuple[int, int, float]]:
    """Candidate pairs whose estimated similarity is at least `threshold`, most similar
    first."""
    found = []
    for i, j in candidate_pairs(sigs, bands):
        sim = float(np.mean(sigs[i] == sigs[j]))
        if sim >= threshold:
            found.append((i, j, round(sim, 4)))
    return sorted(found, key=lambda p: (-p[2], p[0], p[1]))


def duplicate_groups(pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Rows joined by pairs, as groups (each sorted, groups by their first row).

    >>> duplicate_groups([(0, 3, 0.9), (3, 5, 0.85), (1, 2, 1.0)])
    [[0, 3, 5], [1, 2]]
    """
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for x in parent:
        groups[root(x)].append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def version_near_duplicates(
    batches: Iterable[list[tuple[str, list[dict]]]], threshold: float = 0.8
) -> dict:
    """Near-duplicate groups among examples given as batches of (id, messages): the text of
    each is its user and assistant turns. Returns {examples, threshold, pairs, groups:
    [{ids, similarity}]}: the largest groups first, similarity the lowest pair's in it."""
    ids: list[str] = []
    parts = []
    for batch in batches:
        ids += [i for i, _ in batch]
        texts = (
            "\n".join(m["content"] for m in msgs if m["role"] in ("user", "assistant"))
            for _, msgs in batch
        )
        parts.append(signatures(texts))
    sigs = np.vstack(parts) if parts else np.zeros((0, NUM_PERM), dtype=np.uint64)
    pairs = near_duplicate_pairs(sigs, threshold)
    low: dict[int, float] = {}
    for i, j, sim in pairs:
        low[i] = min(low.get(i, 1.0), sim)
        low[j] = min(low.get(j, 1.0), sim)
    groups = [
        {"ids": [ids[k] for k in g], "similarity": min(low[k] for k in g)}
        for g in duplicate_groups(pairs)
    ]
    groups.sort(key=lambda g: (-len(g["ids"]), -g["similarity"]))
    return {"examples": len(ids), "threshold": threshold, "pairs": len(pairs), "groups": groups}
