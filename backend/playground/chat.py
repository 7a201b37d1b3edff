"""Talking to a base model and its fine-tunes: one base loaded once, runs' adapters attached to
it with PEFT and switched per answer, answers streamed token by token.

The Playground page keeps one `ChatModels` in a cache resource (studio/resources.py) and
`ftstudio chat` one per session; both answer "base" (the adapters switched off) or a run id
(that run's adapter switched on). Switching an adapter is a change of the shared model, so one
answer streams at a time (a lock), and the next waits for it.

    models = ChatModels(base_model)
    models.add_run(run_id, adapter_dir)
    for piece in models.stream(run_id, [{"role": "user", "content": "hi"}], Sampling()):
        print(piece, end="")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE = "base"


@dataclass(frozen=True)
class Sampling:
    """How an answer is drawn. temperature 0 is greedy (the same answer every time)."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise ValueError("max_new_tokens: between 1 and 4096")
        if not 0 <= self.temperature <= 5:
            raise ValueError("temperature: between 0 and 5")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p: above 0 and at most 1")

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature == 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


class ChatModels:
    """One base model in memory and the adapters of runs trained on it."""

    def __init__(self, base_model: str | Path, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.base_model = str(base_model)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_model)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            self.base_model, dtype=dtype, use_safetensors=True
        ).to(device)
        self.model.eval()
        self.runs: dict[str, str] = {}  # run id -> adapter name on the model
        self._lock = threading.Lock()

    def add_run(self, run_id: str, adapter: str | Path) -> None:
        """Attach a run's adapter (once; a second call is a no-op)."""
        if run_id in self.runs:
            return
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ValueError(f"run {run_id}: no adapter at {adapter}")
        name = f"run{len(self.runs)}"
        with self._lock:
            if not self.runs:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, adapter, adapter_name=name)
                self.model.eval()
            else:
                self.model.load_adapter(str(adapter), adapter_name=name)
            self.runs[run_id] = name

    def prompt_ids(self, messages: list[dict]) -> Any:
        import torch

        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return torch.tensor([ids], device=self.device)

    def stream(self, source: str, messages: list[dict], sampling: Sampling) -> Iterator[str]:
        """The answer of `source` ("base" or an attached run id) to `messages`, piece by piece."""
        import torch
        from transformers import TextIteratorStreamer

        if source != BASE and source not in self.runs:
            raise ValueError(f"run {source} is not attached to this base")
        ids = self.prompt_ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            streamer=streamer,
            **sampling.generate_kwargs(),
        )
        with self._lock:
            torch.manual_seed(sampling.seed)
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    if source == BASE and self.runs:
                        with self.model.disable_adapter():
                            self.model.generate(**kwargs)
                    else:
                        if source != BASE:
                            self.model.set_adapter(self.runs[source])
                        self.model.generate(**kwargs)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="playground-generate", daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:  # a reader that stops early still waits: the model is shared
                worker.join()
            if errors:
                raise errors[0]

    def answer(self, source: str, messages: list[dict], sampling: Sampling) -> str:
        """The whole answer at once."""
        return "".join(self.stream(source, messages, sampling))


def runs_by_base(runs: list[dict]) -> dict[str, list[dict]]:
    """Finished runs with an adapter, grouped by the base model they were trained on.

    >>> runs_by_base([{"id": "a", "state": "succeeded", "adapter_path": "/r/a",
    ...                "base_model": "m"}, {"id": "b", "state": "failed"}])
    {'m': [{'id': 'a', 'state': 'succeeded', 'adapter_path': '/r/a', 'base_model': 'm'}]}
    """
    out: dict[str, list[dict]] = {}
    for run in runs:
        if run.get("state") == "succeeded" and run.get("adapter_path") and run.get("base_model"):
            out.setdefault(run["base_model"], []).append(run)
    return out


def base_source(base_model: str) -> str:
    """The source id of a base model's answers in comparison sets (`base:<model>`)."""
    return f"base:{base_model}"


def comparison_items(prompt: str, answers: dict[str, str]) -> tuple[str, list[dict]]:
    """(mode, items) of a comparison set from one side-by-side: a pair for two answers, a
    ranking of all of them for more."""
    from backend.prefs.pairs import build_items

    mode = "pairwise" if len(answers) == 2 else "ranking"
    outputs = {source: {prompt: text} for source, text in answers.items()}
    return mode, build_items(outputs, mode=mode)


def default_device(preference: str = "auto") -> str:
    """cuda when torch sees one and the settings do not say cpu, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() and preference != "cpu" else "cpu"
