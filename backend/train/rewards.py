"""GRPO reward functions, from the specs a run form or `--reward` gives.

A spec is `SPEC[@WEIGHT]` (weight 1 when absent):

    regex:PATTERN                   1 when the answer matches PATTERN (re.search), else 0
    json-schema:FILE                1 when the answer is JSON valid for the schema in FILE
    reference                       1 when the answer equals the example's reference answer
    reference:numeric:TOL           1 when the answer's last number is within TOL of the
                                    reference's last number
    length:MIN-MAX                  1 when the answer has MIN..MAX tokens
    judge:RUBRIC_FILE               an LLM judge's 0-10 score of the answer under the rubric, /10
    file:rewards/NAME.py:FUNCTION   a Python function of the workspace's rewards/ folder,
                                    called as TRL calls one: f(prompts, completions, **kwargs)

`parse_spec` checks a spec's syntax (pure); `check_specs` checks the files it names (the
schema parses, the rubric is readable, the reward function exists with a usable signature)
before a run is queued; `build_rewards` makes the callables GRPOTrainer takes. Every reward
reports what it scored to a `Recorder`, which keeps a sample of answers with their rewards
per step for the run (completions.jsonl).

    >>> parse_spec("regex:^\\\\d+$@0.5").weight
    0.5
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("regex", "json-schema", "reference", "length", "judge", "file")
REWARDS_DIR = "rewards"
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?")


class RewardError(ValueError):
    """A reward spec or file that cannot be used: the message says which and why."""


@dataclass(frozen=True)
class RewardSpec:
    """One parsed reward spec: its kind, argument and weight."""

    kind: str
    arg: str
    weight: float
    text: str

    @property
    def name(self) -> str:
        """The metric name part: reward/<name>."""
        if self.kind == "file":
            return self.arg.rsplit(":", 1)[-1]
        return self.kind.replace("-", "_")


def parse_spec(text: str) -> RewardSpec:
    """`SPEC[@WEIGHT]` -> RewardSpec; RewardError says what is wrong with it."""
    raw = text.strip()
    weight = 1.0
    head, at, tail = raw.rpartition("@")
    if at:
        try:
            weight = float(tail)
        except ValueError:
            head = raw  # an '@' inside a pattern, not a weight
        else:
            raw = head
    kind, _, arg = raw.partition(":")
    if kind not in KINDS:
        raise RewardError(f"reward {text!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if weight < 0 or weight != weight:
        raise RewardError(f"reward {text!r}: the weight must be a number >= 0")
    if kind == "regex":
        try:
            re.compile(arg)
        except re.error as exc:
            raise RewardError(f"reward {text!r}: bad regular expression ({exc})") from None
        if not arg:
            raise RewardError(f"reward {text!r}: give a pattern, regex:PATTERN")
    elif kind == "reference":
        if arg and not re.fullmatch(r"numeric:\d+(\.\d+)?(e-?\d+)?", arg):
            raise RewardError(f"reward {text!r}: use reference (exact) or reference:numeric:TOL")
    elif kind == "length":
        m = re.fullmatch(r"(\d+)-(\d+)", arg)
        if not m or int(m[1]) > int(m[2]):
            raise RewardError(f"reward {text!r}: use length:MIN-MAX with MIN <= MAX (tokens)")
    elif kind == "file":
        if not re.fullmatch(rf"{REWARDS_DIR}/[A-Za-z_][\w]*\.py:[A-Za-z_]\w*", arg):
            raise RewardError(
                f"reward {text!r}: use file:{REWARDS_DIR}/NAME.py:FUNCTION (a file in the "
                f"workspace's {REWARDS_DIR}/ folder)"
            )
    elif not arg:
        raise RewardError(f"reward {text!r}: {kind} needs a file, {kind}:FILE")
    return RewardSpec(kind, arg, weight, text.strip())


def resolve(path: str, root: Path) -> Path:
    """A file named by a spec: absolute as given, relative to the workspace `root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(root) / p


def load_schema(path: Path) -> dict:
    try:
        schema = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise RewardError(f"json-schema: cannot read {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise RewardError(f"json-schema: {path} is not JSON ({exc})") from None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise RewardError(f"json-schema: {path} is not a valid schema ({exc.message})") from None
    return schema


def load_function(path: Path, name: str) -> Callable:
    """The reward function `name` of the file at `path`, its signature checked: it must take
    `completions` (by keyword, as TRL passes it) and **kwargs."""
    if not Path(path).is_file():
        raise RewardError(f"file: no reward file {path}")
    spec = importlib.util.spec_from_file_location(f"studio_reward_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is theirs to see
        raise RewardError(f"file: {path} does not import ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise RewardError(f"file: {path} has no function {name!r}")
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    if "completions" not in names or not var_kw:
        raise RewardError(
            f"file: {path}:{name} must be def {name}(prompts, completions, **kwargs) -> "
            "list[float] (it takes completions by keyword and the dataset's columns as kwargs)"
        )
    return fn


def reward_functions(source: str) -> list[str]:
    """Names of the top-level functions in `source` that TRL can call as reward functions
    (they take `completions` and **kwargs), read without running the file.

    >>> reward_functions("def ok(prompts, completions, **kw): return []\\ndef no(x): pass")
    ['ok']
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise RewardError(f"line {exc.lineno}: {exc.msg}") from None
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
            if "completions" in names and a.kwarg is not None:
                found.append(node.name)
    return found


def check_function(path: Path, name: str) -> None:
    """The reward file exists and defines `name(prompts, completions, **kwargs)`; checked
    from its source, so nothing in it runs before the job does."""
    if not Path(path).is_file():
        raise RewardError(f"file: no reward file {path}")
    try:
        ok = reward_functions(Path(path).read_text("utf-8"))
    except RewardError as exc:
        raise RewardError(f"file: {path} does not parse ({exc})") from None
    if name not in ok:
        raise RewardError(
            f"file: {path} has no reward function {name}(prompts, completions, **kwargs)"
            + (f"; it has {', '.join(ok)}" if ok else "")
        )


def check_specs(specs: list[str], root: Path) -> list[RewardSpec]:
    """Parse every spec and check the files it names; the first problem raises RewardError."""
    out = [parse_spec(s) for s in specs]
    for s in out:
        if s.kind == "json-schema":
            load_schema(resolve(s.arg, root))
        elif s.kind == "judge":
            rubric = resolve(s.arg, root)
            if not rubric.is_file() or not rubric.read_text("utf-8").strip():
                raise RewardError(f"judge: the rubric file {rubric} is missing or empty")
        elif s.kind == "file":
            file, fn = s.arg.rsplit(":", 1)
            check_function(resolve(file, root), fn)
    return out


def file_digests(specs: list[RewardSpec], root: Path) -> dict[str, str]:
    """sha256 of each file a reward reads, for the run's lineage."""
    out = {}
    for s in specs:
        if s.kind in ("json-schema", "judge", "file"):
            path = resolve(s.arg.rsplit(":", 1)[0] if s.kind == "file" else s.arg, root)
            out[s.text] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- scoring ---------------------------------------------------------------------------------


def text_of(completion: Any) -> str:
    """An answer's text: TRL passes a string (standard) or a list of messages (chat)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text or "")
    return float(found[-1].replace(",", ".")) if found else None


def json_of(text: str) -> Any:
    """The JSON value of an answer, also inside a ```json fence; ValueError when none."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return json.loads(fenced.group(1) if fenced else text.strip())


def regex_score(pattern: str, text: str) -> float:
    return 1.0 if re.search(pattern, text) else 0.0


def schema_score(validator: Any, text: str) -> float:
    try:
        value = json_of(text)
    except ValueError:
        return 0.0
    return 1.0 if validator.is_valid(value) else 0.0


def reference_score(arg: str, text: str, reference: str | None) -> float:
    """Exact (whitespace-trimmed) or, with `numeric:TOL`, the last numbers within TOL.

    >>> reference_score("numeric:0.01", "it is 3.141", "3.14")
    1.0
    """
    if reference is None:
        return 0.0
    if not arg:
        return 1.0 if text.strip() == str(reference).strip() else 0.0
    tol = float(arg.split(":", 1)[1])
    got, want = last_number(text), last_number(str(reference))
    return 1.0 if got is not None and want is not None and abs(got - want) <= tol else 0.0


@dataclass
class Recorder:
    """What every reward scored, per step: the answers sampled and each function's rewards.
    `take(step)` hands a step's sample to the job and forgets it."""

    keep: int = 8
    steps: dict[int, dict] = field(default_factory=dict)

    def add(self, step: int, name: str, prompts: list, completions: list, values: list) -> None:
        entry = self.steps.setdefault(step, {"prompts": [], "completions": [], "rewards": {}})
        if not entry["completions"]:
            entry["prompts"] = [text_of(p) for p in prompts[: self.keep]]
            entry["completions"] = [text_of(c) for c in completions[: self.keep]]
        entry["rewards"][name] = [None if v is None else float(v) for v in values[: self.keep]]

    def take(self, upto: int) -> list[dict]:
        """Rows of the steps up to `upto`: {step, prompt, completion, rewards: {name: value}}."""
        rows = []
        for step in sorted(s for s in self.steps if s <= upto):
            entry = self.steps.pop(step)
            for i, (p, c) in enumerate(zip(entry["prompts"], entry["completions"], strict=True)):
                rewards = {n: v[i] for n, v in entry["rewards"].items() if i < len(v)}
                rows.append({"step": step, "prompt": p, "completion": c, "rewards": rewards})
        return rows


class Reward:
    """One reward function as GRPOTrainer calls it; its `__name__` names its metric."""

    def __init__(self, name: str, score: Callable[..., list], recorder: Recorder | None):
        self.__name__ = name
        self._score = score
        self._recorder = recorder

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list:
        values = self._score(prompts=prompts, completions=completions, **kwargs)
        if len(values) != len(completions):
            raise RewardError(
                f"reward {self.__name__} returned {len(values)} values for "
                f"{len(completions)} answers"
            )
        if self._recorder is not None:
            state = kwargs.get("trainer_state")
            step = state.global_step if state is not None else 0
            self._recorder.add(step, self.__name__, prompts, completions, values)
        return values


def _builtin(spec: RewardSpec, root: Path) -> Callable[..., list]:
    if spec.kind == "regex":
        pattern = re.compile(spec.arg)
        return lambda completions, **_: [regex_score(pattern, text_of(c)) for c in completions]
    if spec.kind == "json-schema":
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(load_schema(resolve(spec.arg, root)))
        return lambda completions, **_: [schema_score(validator, text_of(c)) for c in completions]
    if spec.kind == "reference":

        def ref(completions: list, reference: list | None = None, **_: Any) -> list:
            refs = reference or [None] * len(completions)
            return [
                reference_score(spec.arg, text_of(c), r)
                for c, r in zip(completions, refs, strict=True)
            ]

        return ref
    if spec.kind == "length":
        lo, hi = (int(x) for x in spec.arg.split("-"))

        def length(completions: list, completion_ids: list | None = None, **_: Any) -> list:
            sizes = [len(i) for i in completion_ids] if completion_ids else None
            sizes = sizes or [len(text_of(c).split()) for c in completions]
            return [1.0 if lo <= n <= hi else 0.0 for n in sizes]

        return length
    file, fn = spec.arg.rsplit(":", 1)
    return load_function(resolve(file, root), fn)


def build_rewards(
    specs: list[str],
    root: Path,
    recorder: Recorder | None = None,
    judge: Callable[[RewardSpec], Callable[..., list]] | None = None,
) -> tuple[list[Reward], list[float]]:
    """(reward functions, weights) for GRPOTrainer's reward_funcs / reward_weights. Names
    repeat-proof: a second regex is regex_2. `judge` builds the judge reward (needs an
    endpoint, see backend.train.judge_reward)."""
    funcs, weights, seen = [], [], {}
    for spec in check_specs(specs, root):
        seen[spec.name] = seen.get(spec.name, 0) + 1
        name = spec.name if seen[spec.name] == 1 else f"{spec.name}_{seen[spec.name]}"
        if spec.kind == "judge":
            if judge is None:
                raise RewardError("judge: this run has no judge endpoint configured")
            score = judge(spec)
        else:
            score = _builtin(spec, root)
        funcs.append(Reward(name, score, recorder))
        weights.append(spec.weight)
    return funcs, weights
