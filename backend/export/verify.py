"""Checks an export must pass before it is marked done, with the numbers that decide them.

- logits: on fixed chat prompts, the export's next-token logits against the reference's, as
  the largest absolute difference over every position and token, relative to
  max(1, largest |reference logit|); the limit is the format's `TOLERANCE`.
- greedy: the reference's first `GREEDY_TOKENS` greedy tokens on each prompt, fed to the export
  (teacher forcing, one forward pass): the export's argmax must be the same token at every
  position. Equal argmax at every position is the same as free-running greedy decoding giving
  the same tokens. A position where the reference's own top two logits are closer than the
  format's tolerance (a near-tie, which any rounding may flip) is reported, not failed.
- stops: the export's stop ids (generation config, or GGUF metadata) include the chat
  template's end-of-turn token; `tokens_to_eos` says how many tokens the export generated
  before it stopped there on the first prompt (None: not within the budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GREEDY_TOKENS = 32
EOS_BUDGET = 128
# max |logit difference| / max(1, max |reference logit|), per format (and merged dtype)
TOLERANCE = {
    "merged-float32": 1e-4,
    "merged-float16": 1e-2,
    "merged-bfloat16": 3e-2,
    "f16": 1e-2,
    "q8_0": 5e-2,
}
PROMPTS = (
    "How do I add a teammate to my project board?",
    "Why is my Gantt chart empty?",
    "Can I export a sprint report to CSV?",
)


@dataclass
class Probe:
    """What a model does on the fixed prompts: prompt ids, logits over the prompt and its greedy
    continuation, and the greedy tokens themselves (the reference's are the target)."""

    prompt_ids: list[list[int]]
    greedy: list[list[int]]
    logits: list[Any] = field(repr=False)  # one float32 tensor [len, vocab] per prompt


def prompt_ids(tokenizer: Any, prompts: tuple[str, ...] | list[str]) -> list[list[int]]:
    """Each prompt as one user turn with the generation prompt, as token ids."""
    out = []
    for p in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def _device(model: Any):
    return next(model.parameters()).device


def logits_of(model: Any, ids: list[int]):
    import torch

    with torch.no_grad():
        x = torch.tensor([ids], device=_device(model))
        return model(input_ids=x).logits[0].float().cpu()


def probe(model: Any, ids: list[list[int]], pad_id: int | None) -> Probe:
    """Greedy `GREEDY_TOKENS` tokens on each prompt (stop tokens ignored, so every prompt gives
    the full count), and the logits over prompt + continuation."""
    import torch

    greedy, logits = [], []
    for row in ids:
        x = torch.tensor([row], device=_device(model))
        with torch.no_grad():
            out = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=GREEDY_TOKENS,
                min_new_tokens=GREEDY_TOKENS,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=pad_id,
            )
        new = out[0, len(row) :].tolist()
        greedy.append(new)
        logits.append(logits_of(model, row + new))
    return Probe(prompt_ids=ids, greedy=greedy, logits=logits)


def compare(reference: Probe, model: Any, tolerance: float) -> dict[str, Any]:
    """Logit and greedy checks of `model` against `reference` under a relative `tolerance`."""
    max_diff, scale, mismatches, ties = 0.0, 1.0, [], []
    equal_prefix = []
    for p, (row, new, ref) in enumerate(
        zip(reference.prompt_ids, reference.greedy, reference.logits, strict=True)
    ):
        got = logits_of(model, row + new)
        if got.shape[-1] != ref.shape[-1]:
            raise ValueError(
                f"vocabulary sizes differ: export {got.shape[-1]}, ref {ref.shape[-1]}"
            )
        max_diff = max(max_diff, float((got - ref).abs().max()))
        scale = max(scale, float(ref.abs().max()))
        start = len(row) - 1  # logits at position i predict token i + 1
        near = tolerance * max(1.0, float(ref.abs().max()))  # a margin rounding may flip
        prefix = None
        for k, token in enumerate(new):
            if int(got[start + k].argmax()) == token:
                continue
            prefix = k if prefix is None else prefix
            top2 = ref[start + k].topk(2).values
            margin = float(top2[0] - top2[1])
            where = {"prompt": p, "position": k, "margin": margin}
            (ties if margin <= near else mismatches).append(where)
        equal_prefix.append(len(new) if prefix is None else prefix)
    relative = max_diff / scale
    return {
        "max_logit_diff": max_diff,
        "logit_scale": scale,
        "relative_diff": relative,
        "tolerance": tolerance,
        "logits_ok": relative <= tolerance,
        "greedy_tokens": GREEDY_TOKENS,
        "greedy_equal_prefix": min(equal_prefix) if equal_prefix else 0,
        "greedy_mismatches": mismatches,
        "greedy_near_ties": ties,
        "greedy_ok": not mismatches,
    }


def tokens_to_eos(model: Any, ids: list[int], stops: list[int], pad_id: int | None) -> int | None:
    """Greedy tokens the model generates on `ids` before one of `stops` (None: not within
    `EOS_BUDGET`)."""
    import torch

    x = torch.tensor([ids], device=_device(model))
    with torch.no_grad():
        out = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=EOS_BUDGET,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
    new = out[0, len(ids) :].tolist()
    for i, token in enumerate(new):
        if token in stops:
            return i + 1
    return None


def stop_check(stops: list[int] | int | None, eot: int, where: str) -> dict[str, Any]:
    """Whether `stops` (an export's EOS id or ids) include the end-of-turn token `eot`."""
    listed = [stops] if isinstance(stops, int) else list(stops or [])
    ok = eot in listed
    message = None if ok else f"{where} stops at {listed}, not at the end-of-turn token {eot}"
    return {"where": where, "eos_ids": listed, "end_of_turn": eot, "ok": ok, "message": message}


def failures(checks: dict[str, Any]) -> list[str]:
    """One line per failed check, with its numbers (empty: the export passed)."""
    out = []
    for name, c in checks.items():
        if not isinstance(c, dict):
            continue
        if "logits_ok" in c and not c["logits_ok"]:
            out.append(
                f"{name}: max logit difference {c['max_logit_diff']:.3g} is "
                f"{c['relative_diff']:.3g} of the logit scale {c['logit_scale']:.3g}, over the "
                f"tolerance {c['tolerance']:g}"
            )
        if "greedy_ok" in c and not c["greedy_ok"]:
            first = c["greedy_mismatches"][0]
            out.append(
                f"{name}: greedy tokens differ from base+adapter at prompt {first['prompt']}, "
                f"token {first['position']} (reference margin {first['margin']:.3g}); "
                f"{len(c['greedy_mismatches'])} such positions"
            )
        if "ok" in c and not c["ok"]:
            out.append(f"{name}: {c.get('message') or c}")
    return out
