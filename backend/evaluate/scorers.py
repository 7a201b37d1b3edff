"""Reference scorers of an eval suite: pure functions from (output, prompt row) to a score.

Each takes the model's output and the suite row ({"prompt", "reference", "criteria"}) and
returns (score, note): 1.0/0.0 for the match scorers, a fraction for ROUGE-L and chrF. A row
that lacks what a scorer needs (no reference, no pattern) gets None, and the note says why, so
a suite can mix prompts with and without references. The LLM judges live in
backend.evaluate.judges; latency and tokens are measured while answering.

    >>> round(score("rouge_l", "the cat sat", {"reference": "the cat sat down"})[0], 3)
    0.857
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

Result = tuple[float | None, str]

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def exact(output: str, row: dict) -> Result:
    """1 when the output equals the reference, ignoring case and runs of whitespace."""
    ref = row.get("reference")
    if ref is None:
        return None, "no reference"
    return float(_norm(output) == _norm(ref)), ""


def regex(output: str, row: dict) -> Result:
    """1 when criteria.regex (else the reference, as a pattern) is found in the output."""
    pattern = (row.get("criteria") or {}).get("regex") or row.get("reference")
    if not pattern:
        return None, "no regex in criteria and no reference"
    try:
        return float(re.search(pattern, output, re.S) is not None), ""
    except re.error as exc:
        return None, f"bad pattern {pattern!r}: {exc}"


def parse_number(text: str) -> float | None:
    """The last number written in `text` (thousands commas allowed), or None.

    >>> parse_number("It costs 1,250.5 dollars")
    1250.5
    """
    found = _NUMBER.findall(str(text))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric(output: str, row: dict) -> Result:
    """1 when the last number in the output is within criteria.tolerance (relative,
    default 1e-6) of the reference's number."""
    want = parse_number(row.get("reference") or "")
    if want is None:
        return None, "the reference has no number"
    got = parse_number(output)
    if got is None:
        return 0.0, "no number in the output"
    tol = float((row.get("criteria") or {}).get("tolerance", 1e-6))
    return float(abs(got - want) <= tol * max(1.0, abs(want))), f"{got:g} vs {want:g}"


def _json_in(text: str) -> Any:
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


def json_schema(output: str, row: dict) -> Result:
    """1 when the output (or its ```json block) is JSON valid under criteria.schema; the
    note names the first violation."""
    import jsonschema

    schema = (row.get("criteria") or {}).get("schema")
    if not schema:
        return None, "no schema in criteria"
    try:
        data = _json_in(output.strip())
    except ValueError as exc:
        return 0.0, f"not JSON: {exc}"
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return 0.0, f"{where}: {exc.message}"
    except jsonschema.SchemaError as exc:
        return None, f"the suite's schema is invalid: {exc.message}"
    return 1.0, ""


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(output: str, row: dict) -> Result:
    """ROUGE-L F1 over lower-cased word tokens: the longest common subsequence against
    precision and recall (Lin, 2004)."""
    ref = row.get("reference")
    if ref is None:
        return None, "no reference"
    a, b = re.findall(r"\w+", output.lower()), re.findall(r"\w+", ref.lower())
    if not a or not b:
        return float(a == b), ""
    lcs = _lcs(a, b)
    if not lcs:
        return 0.0, ""
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r), ""


def _char_ngrams(text: str, n: int) -> Counter:
    s = "".join(text.split())  # chrF ignores whitespace
    return Counter(s[i : i + n] for i in range(len(s) - n + 1))


def chrf(output: str, row: dict, max_n: int = 6, beta: float = 2.0) -> Result:
    """chrF (Popović, 2015): character n-gram F-beta (n = 1..6, beta 2) averaged over n,
    as a fraction (sacreBLEU prints it x100)."""
    ref = row.get("reference")
    if ref is None:
        return None, "no reference"
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        hyp, gold = _char_ngrams(output, n), _char_ngrams(ref, n)
        if not hyp or not gold:
            continue
        common = sum((hyp & gold).values())
        precisions.append(common / sum(hyp.values()))
        recalls.append(common / sum(gold.values()))
    if not precisions:
        return 0.0, ""
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0, ""
    return (1 + beta**2) * p * r / (beta**2 * p + r), ""


# scorer name -> function; "judge", "pairwise", "latency" and "tokens" are handled by the job
REFERENCE_SCORERS: dict[str, Callable[[str, dict], Result]] = {
    "exact": exact,
    "regex": regex,
    "numeric": numeric,
    "json_schema": json_schema,
    "rouge_l": rouge_l,
    "chrf": chrf,
}
MEASURED = ("latency", "tokens")  # recorded for every answer
JUDGED = ("judge", "pairwise")
SCORERS = (*REFERENCE_SCORERS, *JUDGED, *MEASURED)
LOWER_IS_BETTER = {"latency", "tokens"}


def score(name: str, output: str, row: dict) -> Result:
    """Score `output` with the reference scorer `name`."""
    return REFERENCE_SCORERS[name](output, row)


def check_scorers(names: list[str]) -> list[str]:
    """The scorers named, deduplicated in order; ValueError naming an unknown one."""
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer {', '.join(unknown)}; known: {', '.join(SCORERS)}")
    return list(dict.fromkeys(names))
