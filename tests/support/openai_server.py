"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benches.

Threaded, HTTP/1.1 keep-alive, Nagle off (each reply would otherwise wait ~40 ms for a delayed
ACK). It serves `GET /v1/models` and `POST /v1/chat/completions`, and injects faults on demand:

    with OpenAIServer(delay_s=0.05) as srv:           # answers after 50 ms
        client = AsyncOpenAI(base_url=srv.base_url, api_key="x")
        srv.inject("429", "500", "timeout")           # the next three requests fail like this
        srv.refuse_response_format = True             # HTTP 400 whenever response_format is sent
        srv.responder = lambda body: {"answer": "hi"} # what the model "says" (str or JSON-able)
        srv.requests                                  # every request body received, in order

Faults: "429" (with Retry-After: 0), "500", "503", "timeout" (no reply for `timeout_sleep_s`),
"disconnect" (close the socket without a reply), "malformed" (a 200 whose body is not JSON),
"bad_json" (content that is not JSON), "schema" (JSON content that violates the schema),
"refusal" (an assistant refusal as content). The default responder answers the synth prompts
with a distinct valid example per topic and item, and anything else with a short echo.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "429",
    "500",
    "503",
    "timeout",
    "disconnect",
    "malformed",
    "bad_json",
    "schema",
    "refusal",
)
_TOPIC = re.compile(r"Topic of this example: (.+)")
_NUMBER = re.compile(r"example number (\d+)")


def default_responder(body: dict) -> str | dict:
    """A valid, distinct example for synth prompts; an echo for anything else."""
    last = next(
        (
            m.get("content", "")
            for m in reversed(body.get("messages", []))
            if m.get("role") == "user"
        ),
        "",
    )
    topic = _TOPIC.search(last or "")
    if not topic:
        return f"echo: {str(last)[:200]}"
    t, n = topic.group(1).strip(), (_NUMBER.search(last) or [0, "1"])[1]
    words = [
        "dashboard",
        "calendar",
        "workspace",
        "project",
        "timeline",
        "report",
        "team",
        "invoice",
        "webhook",
        "mobile app",
        "template",
        "milestone",
    ]
    w1, w2 = words[(int(n) * 7 + len(t)) % len(words)], words[(int(n) * 5 + 3) % len(words)]
    question = f"Question {n} about {t}: how does {t} work with my {w1} when I open the {w2}?"
    answer = (
        f"For {t} (case {n}): open the {w1}, choose {t} in the side panel, and the {w2} "
        f"updates within a minute. Variant {n}-{len(t)}."
    )
    if "prompt" in last and '"completion"' in last:
        return {"prompt": question, "completion": answer}
    if '"turns"' in last:
        return {"turns": [{"user": question, "assistant": answer}]}
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _json(self, code: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(data).encode(), headers)

    def _error(
        self,
        code: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._json(
            code,
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error" if code < 500 else "server_error",
                    "param": param,
                    "code": None,
                }
            },
            headers,
        )

    def _stream(self, content: str, model: str, n: int) -> None:
        """`"stream": true`: the answer as server-sent chunks, one per word, then [DONE]."""
        words = [w + " " for w in content.split(" ")]
        words[-1] = words[-1][:-1]
        chunks = [{"role": "assistant", "content": ""}] + [{"content": w} for w in words]
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, delta in enumerate(chunks):
                last = i == len(chunks) - 1
                event = {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                    ],
                }
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.server.owner.model,
                            "object": "model",
                            "created": 0,
                            "owned_by": "tests",
                        }
                    ],
                },
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        with owner._lock:
            owner.authorizations.append(self.headers.get("Authorization"))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "request body is not JSON")
            return
        fault = owner._next_fault(body)
        if owner.delay_s:
            time.sleep(owner.delay_s)
        if fault == "429":
            self._error(429, "rate limited", headers={"Retry-After": "0"})
            return
        if fault in ("500", "503"):
            self._error(int(fault), "the server had an error")
            return
        if fault == "timeout":
            time.sleep(owner.timeout_sleep_s)
            self.close_connection = True
            return
        if fault == "disconnect":
            self.close_connection = True
            return
        if fault == "malformed":
            self._send(200, b'{"id": "x", "choices": [{"message": ')
            self.close_connection = True
            return
        if owner.refuse_response_format and "response_format" in body:
            self._error(
                400, "response_format is not supported by this server", param="response_format"
            )
            return
        if fault == "bad_json":
            content = "Sure! Here is an example: {messages: [user says hi"
        elif fault == "schema":
            content = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
        elif fault == "refusal":
            content = json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "Can you help me with my billing question?"},
                        {"role": "assistant", "content": "I'm sorry, but I can't help with that."},
                    ]
                }
            )
        else:
            out = (owner.responder or default_responder)(body)
            content = out if isinstance(out, str) else json.dumps(out)
        with owner._lock:
            owner.served += 1
            n = owner.served
        if body.get("stream"):
            self._stream(content, body.get("model", owner.model), n)
            return
        self._json(
            200,
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", owner.model),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: OpenAIServer


class OpenAIServer:
    """Start with `start()` or a `with` block; `base_url` ends in /v1."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        model: str = "test-model",
        responder: Callable[[dict], str | dict] | None = None,
        refuse_response_format: bool = False,
        timeout_sleep_s: float = 3.0,
    ):
        self.delay_s = delay_s
        self.model = model
        self.responder = responder
        self.refuse_response_format = refuse_response_format
        self.timeout_sleep_s = timeout_sleep_s
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []  # each POST's Authorization header
        self.served = 0
        self.fault_when: Callable[[dict], str | None] | None = None
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def inject(self, *faults: str) -> None:
        """Make the next requests fail with these faults, in order."""
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self, body: dict) -> str | None:
        with self._lock:
            self.requests.append(body)
            if self._faults:
                return self._faults.popleft()
        return self.fault_when(body) if self.fault_when else None

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
