"""Preference pairs in and out: the one stored shape of a pair (conversational turns, keyed by
its content hash, see `version_rows`), TRL's DPO format (prompt / chosen / rejected,
conversational or plain), pairs from stored judgements, and imports of HH-RLHF transcripts, DPO
JSONL and ratings. Pure functions and file writes: the actions store what they return.

Exports keep only decided pairs: ties, both-bad, a judge's inconsistent verdicts, analysts who
disagree and pairs whose chosen and rejected texts are identical are dropped and counted.
Imports check every row first and raise `InvalidPairs` naming the bad lines: nothing half-read,
unless the caller asks to skip invalid rows (each is then reported with its line and reason).
Files are read line by line and refused past `MAX_IMPORT_BYTES`.

>>> parse_transcript("\\n\\nHuman: hi\\n\\nAssistant: hello")
[{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.security import MAX_UPLOAD_BYTES

FORMATS = ("hh-rlhf", "dpo-jsonl", "ratings")
MAX_IMPORT_BYTES = MAX_UPLOAD_BYTES  # the largest preference file read (the upload limit)
REPORT_ROWS = 1000  # rows not stored, kept beside a version with their line and reason
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


class InvalidPairs(ValueError):
    """Preference pairs that failed validation; the message names the first bad rows."""

    def __init__(
        self, problems: list[tuple[int, str]], total: int, where: str = "row", hint: str = ""
    ):
        self.problems = problems
        shown = "; ".join(f"{where} {i}: {why}" for i, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} rows are invalid, nothing was stored: {shown}{more}"
            + (f" ({hint})" if hint else "")
        )


# --- pairs: the one shape stored ------------------------------------------------------------


def _turns(value: Any, what: str, role: str | None = None) -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what} is empty")
        return [{"role": role or "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be text or a non-empty list of {{role, content}} turns")
    turns = []
    for i, m in enumerate(value, 1):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("content"), str)
            or m.get("role") not in ("system", "user", "assistant")
        ):
            raise ValueError(f"{what} turn {i} needs a role (system/user/assistant) and text")
        turns.append({"role": m["role"], "content": m["content"]})
    return turns


def normalise_pair(row: Any) -> dict:
    """A {prompt, chosen, rejected} row in conversational form; ValueError says what is wrong.
    Identical chosen and rejected is an error: such a pair teaches nothing."""
    if not isinstance(row, dict):
        raise ValueError("not an object with prompt, chosen and rejected")
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ValueError(f"missing {key!r}")
    prompt = _turns(row["prompt"], "prompt")
    chosen = _turns(row["chosen"], "chosen", "assistant")
    rejected = _turns(row["rejected"], "rejected", "assistant")
    if chosen == rejected:
        raise ValueError("chosen and rejected are identical")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "origin": row.get("origin")}


def pair_id(pair: dict) -> str:
    """The content hash of a pair: the same prompt, chosen and rejected is the same pair."""
    body = json.dumps(
        [pair["prompt"], pair["chosen"], pair["rejected"]],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def version_rows(rows: list[dict]) -> tuple[list[dict], str, int]:
    """What a new preference set version stores: (unique pairs, each with its `id`, in order;
    the version hash over their ids; duplicates dropped). InvalidPairs names bad rows
    (1-based) and nothing is returned unless every row is good."""
    clean, problems = [], []
    for n, row in enumerate(rows, 1):
        try:
            clean.append(normalise_pair(row))
        except ValueError as exc:
            problems.append((n, str(exc)))
    if problems:
        raise InvalidPairs(problems, len(rows))
    unique: dict[str, dict] = {}
    for p in clean:
        unique.setdefault(pair_id(p), p)
    pairs = [{**p, "id": pid} for pid, p in unique.items()]
    digest = hashlib.sha256("\n".join(unique).encode()).hexdigest()
    return pairs, digest, len(clean) - len(pairs)


# --- export ---------------------------------------------------------------------------------


def _plain(turns: list[dict]) -> str:
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)


def dpo_row(pair: dict, conversational: bool = True) -> dict:
    """One TRL DPO row. Conversational: lists of {role, content} (DPOTrainer applies the chat
    template); plain: strings."""
    if conversational:
        return {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]}
    return {
        "prompt": _plain(pair["prompt"]),
        "chosen": _plain(pair["chosen"]),
        "rejected": _plain(pair["rejected"]),
    }


def write_dpo_jsonl(pairs: list[dict], path: Path, *, conversational: bool = True) -> int:
    """Write TRL DPO rows to `path` atomically (temp name, then replace); return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(dpo_row(p, conversational), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(pairs)


def dpo_jsonl(pairs: list[dict], *, conversational: bool = True) -> str:
    """The TRL DPO JSONL text of `pairs` (for a download)."""
    return "".join(json.dumps(dpo_row(p, conversational), ensure_ascii=False) + "\n" for p in pairs)


def _majority(verdicts: list[str]) -> str | None:
    """The verdict more than half of the annotators gave, or None."""
    top, count = Counter(verdicts).most_common(1)[0]
    return top if count * 2 > len(verdicts) else None


def pairs_from_judgements(rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Decided pairs from judgements (`store.prefs.judgements` rows), one per item, and the
    count of items dropped for each reason."""
    by_item: dict[str, list[dict]] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], []).append(r)
    pairs, dropped = [], Counter()
    for item_id, group in by_item.items():
        responses = group[0]["responses"]
        if group[0]["verdict"] == "ranking" or len(responses) > 2:
            ranks = [tuple(r["ranking"]) for r in group if r.get("ranking")]
            if not ranks or len({(k[0], k[-1]) for k in ranks}) > 1:
                dropped["disagreement"] += 1
                continue
            best, worst = responses[ranks[0][0]], responses[ranks[0][-1]]
        else:
            verdict = _majority([r["verdict"] for r in group])
            if verdict is None:  # no strict majority among the annotators
                dropped["disagreement"] += 1
                continue
            if verdict not in ("A", "B"):
                dropped[verdict] += 1
                continue
            best, worst = (
                (responses[0], responses[1]) if verdict == "A" else (responses[1], responses[0])
            )
        if best["text"].strip() == worst["text"].strip():
            dropped["identical"] += 1
            continue
        pairs.append(
            {
                "prompt": group[0]["prompt"],
                "chosen": [{"role": "assistant", "content": best["text"]}],
                "rejected": [{"role": "assistant", "content": worst["text"]}],
                "origin": {
                    "item": item_id,
                    "comparisons": [r["id"] for r in group],
                    "chosen_source": best["source"],
                    "rejected_source": worst["source"],
                },
            }
        )
    return pairs, dict(dropped)


# --- import ---------------------------------------------------------------------------------


def size_text(n: int) -> str:
    """Bytes in words: 512 bytes, 1.5 KiB, 200 MiB.

    >>> size_text(200 * 2**20), size_text(1536), size_text(12)
    ('200 MiB', '1.5 KiB', '12 bytes')
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


class TooLarge(ValueError):
    """A file over the size limit; the message names the file and the limit."""

    def __init__(self, name: str, limit: int, size: int | None = None):
        what = f"is {size_text(size)}, over" if size is not None else "is over"
        super().__init__(
            f"{name} {what} the {size_text(limit)} limit for a preference import; "
            "split it into smaller files"
        )


def read_jsonl(
    path: Path, *, limit: int | None = None, name: str | None = None
) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(line number, value) of every non-blank line, and (line number, why) of each line that
    is not JSON (or not UTF-8). The file is read line by line and refused with `TooLarge` as
    soon as it passes `limit` bytes (MAX_IMPORT_BYTES): a large file is never read whole."""
    limit = MAX_IMPORT_BYTES if limit is None else limit
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
        if size > limit:
            raise TooLarge(name, limit, size)
        fh = open(path, "rb")  # noqa: SIM115  (closed below; read in lines)
    except OSError as exc:
        raise InvalidPairs([(0, f"cannot read {path}: {exc.strerror or exc}")], 0) from None
    out, problems, seen = [], [], 0
    with fh:
        n = 0
        while raw := fh.readline(limit - seen + 1):  # never more than the limit, one line too
            n += 1
            seen += len(raw)
            if seen > limit:  # the file grew while it was read
                raise TooLarge(name, limit)
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError:
                problems.append((n, "not UTF-8 text"))
                continue
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line)))
            except ValueError as exc:
                problems.append((n, f"not JSON ({getattr(exc, 'msg', exc)})"))
    return out, problems


def parse_transcript(text: str) -> list[dict]:
    """HH-RLHF text ("\\n\\nHuman: ... \\n\\nAssistant: ...") to chat turns."""
    if not isinstance(text, str):
        raise ValueError("transcript is not text")
    parts = _TURN.split(text if text.startswith("\n\n") else "\n\n" + text.lstrip())
    if parts[0].strip() or len(parts) < 3:
        raise ValueError("transcript does not start with '\\n\\nHuman:'")
    return [
        {"role": _ROLE[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)
    ]


def hh_pair(row: Any) -> dict:
    """An HH-RLHF row {chosen, rejected}: both transcripts share every turn but the last
    assistant reply; that shared prefix is the prompt."""
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        raise ValueError("needs 'chosen' and 'rejected' transcripts")
    chosen, rejected = parse_transcript(row["chosen"]), parse_transcript(row["rejected"])
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1]["role"] != "assistant":
            raise ValueError(f"{name} does not end with an Assistant turn")
    if chosen[:-1] != rejected[:-1]:
        raise ValueError(
            "chosen and rejected do not share the conversation before the last Assistant turn"
        )
    if not chosen[:-1]:
        raise ValueError("no Human turn before the Assistant reply")
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}


def ratings_pair(row: Any) -> dict | None:
    """A rating row {prompt, responses: [{text, rating}]}: chosen = highest, rejected =
    lowest; None when every response has the same rating (a tie)."""
    if not isinstance(row, dict) or "prompt" not in row:
        raise ValueError("needs 'prompt' and 'responses' (a list of {text, rating})")
    responses = row.get("responses", row.get("completions"))
    if not isinstance(responses, list) or len(responses) < 2:
        raise ValueError("needs 'responses': two or more {text, rating}")
    scored = []
    for i, r in enumerate(responses, 1):
        text = r.get("text", r.get("response")) if isinstance(r, dict) else None
        rating = r.get("rating", r.get("score")) if isinstance(r, dict) else None
        if (
            not isinstance(text, str)
            or isinstance(rating, bool)
            or not isinstance(rating, int | float)
        ):
            raise ValueError(f"response {i} needs 'text' and a numeric 'rating'")
        scored.append((float(rating), text))
    best = max(scored, key=lambda s: s[0])
    worst = min(scored, key=lambda s: s[0])
    if best[0] == worst[0]:
        return None
    return {"prompt": row["prompt"], "chosen": best[1], "rejected": worst[1]}


@dataclass
class Imported:
    """What an import read: the pairs to store, counts of rows dropped (ties, identical
    pairs), the invalid rows skipped (`--skip-invalid`) and every row not stored, each with
    its line and reason (kept beside the version)."""

    pairs: list[dict]
    dropped: dict[str, int]
    invalid: list[tuple[int, str]] = field(default_factory=list)
    not_stored: list[dict] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The rows not stored, as kept beside the version (the first REPORT_ROWS of them)."""
        return {
            "invalid": len(self.invalid),
            "dropped": sum(self.dropped.values()),
            "rows": self.not_stored[:REPORT_ROWS],
            "more": max(0, len(self.not_stored) - REPORT_ROWS),
        }


def read_import(
    path: Path,
    fmt: str,
    *,
    skip_invalid: bool = False,
    limit: int | None = None,
    name: str | None = None,
) -> Imported:
    """Pairs from a file in `fmt`. By default any invalid line fails the whole import
    (`InvalidPairs` names the bad lines; nothing is returned); with `skip_invalid` the valid
    rows are kept and each invalid one is reported with its line and reason (none valid at
    all is still an error)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    name = name or Path(path).name
    rows, problems = read_jsonl(path, limit=limit, name=name)
    total = len(rows) + len(problems)  # lines that are not JSON count as rows
    pairs, dropped, not_stored = [], Counter(), []
    for n, row in rows:
        try:
            if fmt == "hh-rlhf":
                pair = hh_pair(row)
            elif fmt == "ratings":
                pair = ratings_pair(row)
                if pair is None:
                    dropped["tie"] += 1
                    not_stored.append({"line": n, "reason": "tie: every rating is the same"})
                    continue
            else:
                pair = row
            if (
                isinstance(pair, dict)
                and pair.get("chosen") == pair.get("rejected")
                and "chosen" in pair
            ):
                dropped["identical"] += 1
                not_stored.append({"line": n, "reason": "chosen and rejected are identical"})
                continue
            clean = normalise_pair(pair)
        except ValueError as exc:
            problems.append((n, str(exc)))
            continue
        clean["origin"] = {"file": name, "line": n, "format": fmt}
        pairs.append(clean)
    problems.sort()
    if problems and (not skip_invalid or not pairs):
        hint = "" if skip_invalid else "skip invalid rows to store the valid ones"
        raise InvalidPairs(problems, total, where=f"{name} line", hint=hint)
    not_stored += [{"line": n, "reason": why, "invalid": True} for n, why in problems]
    not_stored.sort(key=lambda r: r["line"])
    return Imported(pairs, dict(dropped), problems, not_stored)


def import_rows(path: Path, fmt: str) -> tuple[list[dict], dict[str, int]]:
    """Pairs from a file in `fmt`, and counts of rows dropped (ties, identical pairs).
    InvalidPairs names every bad line; nothing is returned unless all lines are good."""
    got = read_import(path, fmt)
    return got.pairs, got.dropped
