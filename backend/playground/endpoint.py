"""An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, OpenAI) as a Playground
source: the same prompt and sampling, the answer streamed as it arrives.

Which endpoint a user may call and which key goes with it are decided where every other
endpoint call decides them (backend/settings/endpoints.py `vet`, backend/integrations/llm.py
`api_key_for`): a key is only ever sent to the origin it was given for.

    for piece in stream_endpoint(url, key, "my-model", messages, Sampling()):
        print(piece, end="")
"""

from __future__ import annotations

from collections.abc import Iterator

from backend.playground.chat import Sampling


class EndpointError(RuntimeError):
    """The endpoint did not answer; the message names it and says why."""


def endpoint_source(model: str) -> str:
    """The source id of an endpoint's answers in comparison sets (`endpoint:<model>`)."""
    return f"endpoint:{model}"


def stream_endpoint(
    base_url: str,
    api_key: str | None,
    model: str,
    messages: list[dict],
    sampling: Sampling,
    *,
    timeout_s: float = 60.0,
) -> Iterator[str]:
    """The endpoint's answer to `messages`, piece by piece (chat completions, stream=True)."""
    import openai

    if not model:
        raise EndpointError("name the endpoint's model")
    client = openai.OpenAI(
        base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=1
    )
    extra = {"temperature": sampling.temperature, "seed": sampling.seed}
    if sampling.temperature > 0:
        extra["top_p"] = sampling.top_p
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=sampling.max_new_tokens,
            stream=True,
            **extra,
        )
        for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                yield delta
    except openai.OpenAIError as exc:
        raise EndpointError(f"endpoint {base_url} ({model}): {exc}") from None
    finally:
        client.close()
