"""Ollama and vLLM: a Modelfile beside a GGUF, and the commands that serve a run.

Ollama templates are Go templates, not Jinja, so the chat template is not copied but measured:
it is rendered on small conversations and cut into what comes before and after each role's
content (`Pieces`). The Go template is written from those pieces, and `render_pieces` applies
the same pieces in Python, so a test (and every export) checks that the Modelfile reproduces
the chat template's text on a conversation with a system turn, two user turns and an answer.

    pieces = template_pieces(tokenizer)
    text = modelfile("model-q8_0.gguf", pieces, stops=["<|end|>"], context=4096)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from backend.export.gguf import adds_bos

_S, _U, _A, _U2 = "Sys7q", "Usr3k", "Ast9w", "Usr5m"
DEFAULTS = {"temperature": 0.7, "top_p": 0.9}  # Ollama's sampling defaults for a chat model


class TemplateTranslationError(ValueError):
    """The chat template does not split into per-role pieces, so no Ollama TEMPLATE is written."""


@dataclass(frozen=True)
class Pieces:
    head: str  # text before the first turn when there is no system turn (e.g. BOS)
    system: tuple[str, str] | None  # (before, after) a system turn's content, head included
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # what opens the model's turn
    bos: str = ""  # BOS text the template writes and the runtime adds itself (left out here)


def _render(tok: Any, messages: list[dict], gen: bool = False) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def _around(segment: str, content: str, what: str) -> tuple[str, str]:
    if segment.count(content) != 1:
        raise TemplateTranslationError(f"the {what} turn does not render its content once")
    before, after = segment.split(content)
    return before, after


def _grow(shorter: str, longer: str, what: str) -> str:
    if not longer.startswith(shorter):
        raise TemplateTranslationError(
            f"adding the {what} turn rewrites earlier text (the template is not turn by turn)"
        )
    return longer[len(shorter) :]


def template_pieces(tok: Any) -> Pieces:
    """The per-role pieces of `tok`'s chat template, found by rendering it."""
    if not getattr(tok, "chat_template", None):
        raise TemplateTranslationError("the tokenizer has no chat template")
    u = [{"role": "user", "content": _U}]
    ua = u + [{"role": "assistant", "content": _A}]
    uau = ua + [{"role": "user", "content": _U2}]
    try:
        t_u, t_ua, t_uau = _render(tok, u), _render(tok, ua), _render(tok, uau)
        gen = _grow(t_u, _render(tok, u, gen=True), "generation prompt")
        try:
            t_su = _render(tok, [{"role": "system", "content": _S}, *u])
        except Exception:  # noqa: BLE001 - a template may refuse system turns
            t_su = None
    except TemplateTranslationError:
        raise
    except Exception as exc:  # noqa: BLE001 - jinja errors of any kind
        raise TemplateTranslationError(f"the chat template fails to render: {exc}") from None
    user = _around(_grow(t_ua, t_uau, "user"), _U2, "user")
    assistant = _around(_grow(t_u, t_ua, "assistant"), _A, "assistant")
    first = user[0] + _U + user[1]
    if not t_u.endswith(first):
        raise TemplateTranslationError("the first user turn renders differently from later ones")
    head = t_u[: len(t_u) - len(first)]
    system = None
    if t_su is not None and t_su.endswith(first) and _S in t_su:
        system = _around(t_su[: len(t_su) - len(first)], _S, "system")
    bos = ""
    if tok.bos_token and adds_bos(tok) and head.startswith(tok.bos_token):
        # llama.cpp adds BOS when the file says so; the template's own would make two
        bos = tok.bos_token
        head = head[len(bos) :]
        if system and system[0].startswith(bos):
            system = (system[0][len(bos) :], system[1])
    return Pieces(head=head, system=system, user=user, assistant=assistant, generation=gen, bos=bos)


def render_pieces(p: Pieces, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """What the Go template written by `go_template` renders for `messages`, in Python."""
    out = []
    turns = list(messages)
    if turns and turns[0]["role"] == "system" and p.system:
        out.append(p.system[0] + turns[0]["content"] + p.system[1])
        turns = turns[1:]
    else:
        out.append(p.head)
    for i, m in enumerate(turns):
        last = i == len(turns) - 1
        if m["role"] == "user":
            out.append(p.user[0] + m["content"] + p.user[1])
            out.append(p.generation if last and add_generation_prompt else "")
        else:  # a last assistant turn stays open, so the model continues it
            out.append(p.assistant[0] + m["content"] + ("" if last else p.assistant[1]))
    return "".join(out)


def _go(text: str) -> str:
    """Literal text inside a Go template (only `{{` needs escaping)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(p: Pieces) -> str:
    """The Ollama TEMPLATE for `p` (system from .System or a system message, then .Messages).
    One line with no `{{-` trim markers, so every newline of the pieces is kept."""
    sys_part = (
        f"{{{{ if .System }}}}{_go(p.system[0])}{{{{ .System }}}}{_go(p.system[1])}"
        f"{{{{ else }}}}{_go(p.head)}{{{{ end }}}}"
        if p.system
        else _go(p.head)
    )
    return (
        sys_part
        + "{{ range $i, $m := .Messages }}"
        + "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        + f'{{{{ if eq $m.Role "user" }}}}{_go(p.user[0])}{{{{ $m.Content }}}}{_go(p.user[1])}'
        + f"{{{{ if $last }}}}{_go(p.generation)}{{{{ end }}}}"
        + f'{{{{ else if eq $m.Role "assistant" }}}}{_go(p.assistant[0])}{{{{ $m.Content }}}}'
        + f"{{{{ if not $last }}}}{_go(p.assistant[1])}{{{{ end }}}}"
        + "{{ end }}{{ end }}"
    )


def check_pieces(tok: Any, p: Pieces) -> dict[str, Any]:
    """Whether the pieces reproduce the chat template on a test conversation."""
    messages = [
        {"role": "system", "content": "You answer questions about Tasklane."},
        {"role": "user", "content": "How do I add a teammate?"},
        {"role": "assistant", "content": "Open Settings, then Members."},
        {"role": "user", "content": "And remove one?"},
    ]
    if p.system is None:
        messages = messages[1:]
    want = _render(tok, messages, gen=True)
    got = p.bos + render_pieces(p, messages)
    return {"ok": want == got, "message": None if want == got else "template text differs"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile(
    gguf_name: str,
    pieces: Pieces,
    *,
    stops: list[str],
    context: int,
    system: str | None = None,
) -> str:
    """An Ollama Modelfile for the GGUF next to it."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{go_template(pieces)}"""']
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {_quote(s)}" for s in stops]
    lines += [f"PARAMETER {k} {v}" for k, v in DEFAULTS.items()]
    lines.append(f"PARAMETER num_ctx {min(context, 8192)}")
    return "\n".join(lines) + "\n"


def ollama_command(name: str, modelfile_path: str) -> str:
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(modelfile_path)}"


def vllm_command(base_model: str, name: str, adapter: str) -> str:
    """The command that serves a run's adapter on its base with vLLM's LoRA support."""
    return (
        f"vllm serve {shlex.quote(base_model)} --enable-lora "
        f"--lora-modules {shlex.quote(f'{name}={adapter}')}"
    )


def served_name(run_id: str) -> str:
    """A model name Ollama and vLLM accept, from a run id."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id.lower())
    return name.strip("-.") or "run"


def serve_command(run: dict) -> str | None:
    """The vLLM command of a run as the store lists it (None until it has an adapter)."""
    if not run.get("adapter_path") or not run.get("base_model"):
        return None
    return vllm_command(run["base_model"], served_name(run["id"]), run["adapter_path"])
