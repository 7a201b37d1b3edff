"""Eval suite building blocks: each reference scorer on answers it should pass and fail,
ROUGE-L and chrF against hand-computed values, suite files (JSONL and CSV) with errors that
name the line, targets, the judges' reply parsing and the both-orders pairwise score."""

from __future__ import annotations

import math

import pytest

from backend.evaluate import judges
from backend.evaluate.scorers import check_scorers, chrf, score
from backend.evaluate.suites import SuiteError, mean_ci, parse_suite, parse_target


def test_match_scorers():
    row = {"reference": "Paris", "criteria": {}}
    assert score("exact", "  paris ", row)[0] == 1.0
    assert score("exact", "Paris, France", row)[0] == 0.0
    assert score("exact", "x", {"reference": None})[0] is None
    assert score("regex", "Order #1234 shipped", {"criteria": {"regex": r"#\d{4}\b"}})[0] == 1.0
    assert score("regex", "no number", {"criteria": {"regex": r"#\d{4}"}})[0] == 0.0
    assert "bad pattern" in score("regex", "x", {"criteria": {"regex": "("}})[1]
    assert score("numeric", "It costs 1,250.5 dollars", {"reference": "1250.5"})[0] == 1.0
    assert score("numeric", "about 12", {"reference": "13"})[0] == 0.0
    tol = {"reference": "100", "criteria": {"tolerance": 0.05}}
    assert score("numeric", "it is 104", tol)[0] == 1.0
    assert score("numeric", "none", {"reference": "3"}) == (0.0, "no number in the output")


def test_json_schema_scorer_names_the_violation():
    schema = {
        "type": "object",
        "properties": {"priority": {"enum": ["low", "high"]}},
        "required": ["priority"],
    }
    row = {"criteria": {"schema": schema}}
    assert score("json_schema", '```json\n{"priority": "low"}\n```', row)[0] == 1.0
    value, note = score("json_schema", '{"priority": "urgent"}', row)
    assert value == 0.0 and note.startswith("priority:")
    assert score("json_schema", "not json", row)[0] == 0.0
    assert score("json_schema", "[1]", {}) == (None, "no schema in criteria")


def test_rouge_l_and_chrf_match_hand_computed_values():
    # LCS("the cat sat on the mat", "the cat lay on the mat") = 5 of 6 words each way
    assert score("rouge_l", "the cat sat on the mat", {"reference": "the cat lay on the mat"})[
        0
    ] == pytest.approx(5 / 6)
    assert score("rouge_l", "", {"reference": "x"})[0] == 0.0
    assert chrf("abc", {"reference": "abc"})[0] == pytest.approx(1.0)
    assert chrf("xyz", {"reference": "abc"})[0] == 0.0
    # "ab" vs "abc": unigrams P=1 R=2/3, bigrams P=1 R=1/2; higher orders absent from "ab"
    p, r = 1.0, (2 / 3 + 1 / 2) / 2
    assert chrf("ab", {"reference": "abc"})[0] == pytest.approx(5 * p * r / (4 * p + r))


def test_unknown_scorer_is_named():
    assert check_scorers(["exact", "exact", "judge"]) == ["exact", "judge"]
    with pytest.raises(ValueError, match="unknown scorer bleu"):
        check_scorers(["bleu"])


def test_suite_files_and_their_errors():
    rows = parse_suite('{"prompt": "a", "reference": 4}\n\n{"prompt": "b"}\n', "s.jsonl")
    assert rows == [
        {"prompt": "a", "reference": "4", "criteria": {}},
        {"prompt": "b", "reference": None, "criteria": {}},
    ]
    csv_text = 'prompt,reference,criteria\nq1,r1,"{""regex"": ""r""}"\nq2,,\n'
    assert parse_suite(csv_text, "s.csv")[0]["criteria"] == {"regex": "r"}
    for text, name, where in (
        ('{"prompt": "a"}\n{"prompt": ""}\n', "s.jsonl", "s.jsonl line 2"),
        ("{oops\n", "s.jsonl", "s.jsonl line 1: not JSON"),
        ('{"prompt": "a", "answer": "b"}\n', "s.jsonl", "unknown field(s) answer"),
        ("question\nx\n", "s.csv", "needs a 'prompt' column"),
        ("prompt,criteria\nq,{bad\n", "s.csv", "s.csv line 2: 'criteria' is not JSON"),
        ("", "s.jsonl", "no prompts"),
    ):
        with pytest.raises(SuiteError, match=where.replace("(", r"\(").replace(")", r"\)")):
            parse_suite(text, name)


def test_targets():
    assert parse_target("base:models/tiny").base_model == "models/tiny"
    t = parse_target("endpoint:m1@http://127.0.0.1:9/v1")
    assert (t.kind, t.model, t.base_url) == ("endpoint", "m1", "http://127.0.0.1:9/v1")
    assert parse_target("train-abc").kind == "run"
    with pytest.raises(SuiteError, match="endpoint:MODEL@"):
        parse_target("endpoint:m1")


def test_judge_replies_and_pairwise_both_orders():
    assert judges.parse_score('sure: {"score": 8, "reason": "good"}') == (8.0, "good")
    for bad in ('{"score": 11}', '{"score": "high"}', "", "nope"):
        with pytest.raises(judges.JudgeReplyError):
            judges.parse_score(bad)
    assert judges.parse_winner('{"winner": "b"}') == "B"
    assert judges.pairwise_score("A", "B") == 1.0  # won in both positions
    assert judges.pairwise_score("B", "A") == 0.0
    assert judges.pairwise_score("A", "A") == 0.5  # the judge always picks the first slot
    assert judges.pairwise_score("tie", "tie") == 0.5


def test_mean_ci():
    low, high, mean = mean_ci([1.0, 0.0, 1.0, 1.0])
    sd = math.sqrt(((0.25**2) * 3 + 0.75**2) / 3)
    assert mean == 0.75 and high - mean == pytest.approx(1.96 * sd / 2)
    assert mean_ci([2.0])[:2] == (2.0, 2.0)
