"""Generators behind one small interface: `await provider.complete(prompts, ...)`.

- `OpenAIProvider`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) via
  the SDK's AsyncOpenAI. Asks for `response_format` with a JSON schema; when the endpoint refuses
  it (HTTP 400 naming response_format) it switches to prompt-JSON for the rest of the run.
  Retries 429, 5xx, timeouts and connection errors with exponential backoff (Retry-After wins),
  and spaces request starts for an optional requests-per-minute limit. The SDK's own retries are
  off so the counts are ours.
- `LocalProvider`: a transformers model folder, batched generation with left padding. The model
  is loaded once per job however many threads ask (a judge runs several), one batch runs on the
  device at a time, and a batch that runs out of memory is halved and retried
  (backend/integrations/oom.py), noted in the job's log.

A completion that still fails after its retries comes back with `error` set (it becomes a reject
row); an error that no retry can fix (bad key, unknown model) raises `ProviderFatal`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

RETRYABLE_STATUS = {408, 409, 429}


class ProviderFatal(RuntimeError):
    """The provider cannot work at all (authentication, unknown model): stop the job."""


@dataclass
class Completion:
    text: str | None
    error: str | None = None
    attempts: int = 1
    structured: bool = False
    usage: dict | None = None  # prompt_tokens / completion_tokens, when the endpoint says
    retryable: bool = False  # the endpoint failed (timeouts, 429/5xx...), not the request


class Provider(Protocol):
    name: str
    model: str
    batch_size: int
    concurrency: int

    async def complete(
        self, prompts: list[list[dict]], *, schema: dict, temperature: float, max_tokens: int
    ) -> list[Completion]: ...

    async def aclose(self) -> None: ...


class RateLimiter:
    """Space request starts `60 / rpm` seconds apart (None or 0: no limit)."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _refuses_response_format(exc: Exception) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


class OpenAIProvider:
    """An OpenAI-compatible chat completions endpoint."""

    name = "openai"
    batch_size = 1

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        concurrency: int = 8,
        rpm: float | None = None,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
        structured: bool = True,
    ):
        from openai import AsyncOpenAI

        if not model:
            raise ProviderFatal("no generator model given: set --model or the recipe's model")
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.structured = structured
        self.fallbacks = 0
        self.retries = 0
        self._limiter = RateLimiter(rpm)
        # local servers accept any key; the SDK insists on one being set
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(
        self, prompts: list[list[dict]], *, schema: dict, temperature: float, max_tokens: int
    ) -> list[Completion]:
        return list(
            await asyncio.gather(*(self._one(p, schema, temperature, max_tokens) for p in prompts))
        )

    async def _backoff(self, attempt: int, exc: Exception) -> None:
        self.retries += 1
        delay = _retry_after(exc)
        if delay is None:
            delay = self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
        await asyncio.sleep(min(delay, self.max_backoff_s))

    async def _one(
        self, messages: list[dict], schema: dict, temperature: float, max_tokens: int
    ) -> Completion:
        import openai

        attempt = 0
        while True:
            attempt += 1
            await self._limiter.wait()
            structured = self.structured
            kwargs: dict = {
                "model": self.model,
                "messages": messages,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
            if structured:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "example", "schema": schema, "strict": True},
                }
            try:
                resp = await self.client.chat.completions.create(**kwargs)
            except openai.BadRequestError as exc:
                if structured and _refuses_response_format(exc):
                    if self.structured:  # ask for JSON in the prompt from now on
                        self.structured = False
                        self.fallbacks += 1
                    attempt -= 1
                    continue
                return Completion(None, f"HTTP 400: {_short(exc)}", attempt, structured)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ProviderFatal(
                    f"the endpoint refused the credentials: {_short(exc)}. "
                    "Check OPENAI_API_KEY on the Settings page."
                ) from None
            except openai.NotFoundError as exc:
                raise ProviderFatal(
                    f"the endpoint does not know model {self.model!r} (HTTP 404: {_short(exc)})"
                ) from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                reason = (
                    "timeout"
                    if isinstance(exc, openai.APITimeoutError)
                    else f"connection error ({_short(exc)})"
                )
                if attempt > self.max_retries:
                    return Completion(
                        None,
                        f"{reason} after {attempt} attempts",
                        attempt,
                        structured,
                        retryable=True,
                    )
                await self._backoff(attempt, exc)
                continue
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code in RETRYABLE_STATUS or code >= 500:
                    if attempt > self.max_retries:
                        return Completion(
                            None,
                            f"HTTP {code} after {attempt} attempts: {_short(exc)}",
                            attempt,
                            structured,
                            retryable=True,
                        )
                    await self._backoff(attempt, exc)
                    continue
                return Completion(None, f"HTTP {code}: {_short(exc)}", attempt, structured)
            except (openai.APIResponseValidationError, ValueError) as exc:
                # a 200 whose body is not the JSON the SDK expects: transient garbage
                if attempt > self.max_retries:
                    return Completion(
                        None,
                        f"unreadable response after {attempt} attempts: {_short(exc)}",
                        attempt,
                        structured,
                        retryable=True,
                    )
                await self._backoff(attempt, exc)
                continue
            choice = resp.choices[0] if resp.choices else None
            text = choice.message.content if choice is not None else None
            if text is None:
                refusal = getattr(choice.message, "refusal", None) if choice else None
                why = f"no content in the reply{': ' + refusal if refusal else ''}"
                return Completion(None, why, attempt, structured)
            usage = getattr(resp, "usage", None)
            tokens = (
                {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                if usage is not None
                else None
            )
            return Completion(text, None, attempt, structured, tokens)


def _short(exc: Exception, n: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class LocalProvider:
    """A local transformers causal LM: batched, left-padded generation on CPU or CUDA."""

    name = "local"
    concurrency = 1

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 8,
        device: str = "auto",
        note: Callable[[str], object] | None = None,
    ):
        from backend.integrations.oom import BatchSize

        path = Path(model_dir)
        if not (path / "config.json").exists():
            raise ProviderFatal(f"{path} is not a transformers model folder (no config.json)")
        self.model = str(path)
        self.batch_size = batch_size
        self._device = device
        self._tok = None
        self._lm = None
        self.loads = 0  # how many times the weights were read (once per job)
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one batch on the device at a time
        self._batch = BatchSize(batch_size)
        self.note = note or (lambda msg: sys.stderr.write(msg + "\n"))  # stderr is log.txt

    def _load(self) -> None:
        with self._load_lock:  # threads that find no model wait for the one loading it
            if self._lm is None:
                self._load_now()

    def _load_now(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self._device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tok = AutoTokenizer.from_pretrained(self.model)
        tok.padding_side = "left"  # decoder-only models continue from the right edge
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        dtype = (
            torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        )
        lm = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype, use_safetensors=True).to(
            device
        )
        lm.eval()
        self._tok, self._torch_device = tok, device
        self._lm = lm
        self.loads += 1

    def generate_texts(
        self, prompts: list[list[dict]], *, temperature: float, max_tokens: int
    ) -> list[str]:
        """Generate one reply per prompt, in left-padded batches of at most `batch_size` (halved
        on out-of-memory)."""
        from backend.integrations.oom import in_batches

        self._load()
        with self._run_lock:
            return in_batches(
                prompts,
                lambda chunk: self._generate_batch(
                    chunk, temperature=temperature, max_tokens=max_tokens
                ),
                self._batch,
                note=self.note,
                what="generation batch",
            )

    def _generate_batch(
        self, prompts: list[list[dict]], *, temperature: float, max_tokens: int
    ) -> list[str]:
        """One left-padded batch through `generate`."""
        import torch

        tok, lm = self._tok, self._lm
        texts = [
            tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self._torch_device) for k, v in enc.items()}
        sample = temperature > 0
        with torch.no_grad():
            out = lm.generate(
                **enc,
                max_new_tokens=max_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return tok.batch_decode(new, skip_special_tokens=True)

    async def complete(
        self, prompts: list[list[dict]], *, schema: dict, temperature: float, max_tokens: int
    ) -> list[Completion]:
        try:
            texts = await asyncio.to_thread(
                self.generate_texts, prompts, temperature=temperature, max_tokens=max_tokens
            )
        except (RuntimeError, ValueError) as exc:
            return [Completion(None, f"local generation failed: {_short(exc)}")] * len(prompts)
        return [Completion(t) for t in texts]

    async def aclose(self) -> None:
        self._lm = None


OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def origin(url: str | None) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, default ports filled in; what a key is bound to.

    >>> origin("https://API.openai.com/v1") == origin("https://api.openai.com:443/other")
    True
    """
    parts = urlsplit(url or OPENAI_DEFAULT_URL)
    scheme = (parts.scheme or "https").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


# keys typed for one job (the job's `secret.json`, read by backend/jobs/run.py at its start),
# by the origin they were typed for: this process is that one job
_JOB_KEYS: dict[tuple[str, str, int], str] = {}


def use_job_key(base_url: str | None, key: str | None, cfg=None) -> None:
    """Make `key` this job process's key for `base_url`'s origin (None: the configured
    endpoint); `key` None forgets every job key."""
    if key is None:
        _JOB_KEYS.clear()
        return
    if base_url is None:
        from backend.config import Settings

        base_url = (cfg or Settings()).openai_base_url
    _JOB_KEYS[origin(base_url)] = key


def api_key_for(base_url: str | None, cfg, explicit: str | None = None) -> str | None:
    """The key to send to `base_url` (None: the configured endpoint), first found of:
    `explicit`; a key typed for this job and this origin; the configured OPENAI_API_KEY when
    `base_url` is the configured endpoint's origin; the key an admin saved for an allowed
    endpoint of the same origin. Else none, so a URL typed into a form never receives a key
    that was given for another."""
    from backend.config import secret

    if explicit:
        return explicit
    target = origin(base_url or cfg.openai_base_url)
    if target in _JOB_KEYS:
        return _JOB_KEYS[target]
    if base_url is None or target == origin(cfg.openai_base_url):
        return secret(cfg.openai_api_key)
    for url, key in (getattr(cfg, "endpoint_keys", None) or {}).items():
        if origin(url) == target:
            return secret(key)
    return None


def make_provider(
    provider: str,
    model: str | None = None,
    *,
    base_url: str | None = None,
    batch_size: int = 8,
    api_key: str | None = None,
    **options,
) -> Provider:
    """The one factory for a text generator, used by generation, both judges, answers and drift.

    `provider` is "local" (a transformers model folder: `model`, else FTSTUDIO_LOCAL_MODEL) or
    "openai" (an OpenAI-compatible endpoint: `base_url`, else OPENAI_BASE_URL; `model`, else
    FTSTUDIO_LLM_MODEL). `options` go to `OpenAIProvider` (concurrency, rpm, retries, timeout).
    Keys are read here, at the point of use, each sent only to the origin it was given for
    (`api_key_for`).
    """
    from backend.config import Settings

    cfg = Settings()
    if provider == "local":
        folder = model or (str(cfg.local_model_dir) if cfg.local_model_dir else "")
        return LocalProvider(
            folder, batch_size=batch_size, device=cfg.device, note=options.get("note")
        )
    if provider != "openai":
        raise ProviderFatal(f"unknown provider {provider!r}: use 'local' or 'openai'")
    url = base_url or cfg.openai_base_url
    return OpenAIProvider(
        base_url=url,
        api_key=api_key_for(url, cfg, api_key),
        model=model or cfg.llm_model or "",
        **options,
    )
