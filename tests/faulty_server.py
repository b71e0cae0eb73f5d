"""A real local HTTP server speaking OpenAI chat-completions that fails on purpose.

Used to test that LLM callers lose nothing under faults. Whether an attempt
fails, and how, is a pure function of (seed, request content, attempt number
for that content), so a run is reproducible whatever the arrival order, and a
retry of a failed request may succeed.

Failure kinds:
  timeout      sleep `timeout_sleep_s` (past the client timeout), then answer
  http_500     500 with a JSON error body
  http_429     429 with Retry-After: 0
  bad_body     200 with a body that is not JSON
  bad_content  200, valid envelope, but the message content is malformed JSON

Forced behaviour for targeted tests: a user message containing
`__force:KIND__` (KIND one of the above, or http_400) always gets that KIND.

Usage:
    with FaultyServer(fail_rate=0.3, seed=0) as srv:
        backend = make_backend({"backend": "openai", "model": "m", "base_url": srv.base_url})
    base_url, stop = start_faulty_server(fail_rate=0.3)
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

KINDS = ("timeout", "http_500", "http_429", "bad_body", "bad_content")
_FORCE = re.compile(r"__force:(\w+)__")


def default_content(body: dict[str, Any]) -> str:
    """A valid JSON QA pair derived from the last user message."""
    user = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    last = user[-1] if user else ""
    return json.dumps(
        {"question": f"What does this say: {last[:40]}?", "answer": f"It says: {last[:80]}"},
        ensure_ascii=False,
    )


def request_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body.get("messages", []), sort_keys=True).encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler asleep in a 'timeout' must not block shutdown
    request_queue_size = 256  # the default 5 drops SYNs under concurrency: 1s client stalls


class FaultyServer:
    def __init__(
        self,
        fail_rate: float = 0.3,
        seed: int = 0,
        timeout_sleep_s: float = 2.0,
        content_fn: Callable[[dict[str, Any]], str] = default_content,
        kinds: tuple[str, ...] = KINDS,
        reject_json_schema: bool = False,
        latency_s: float = 0.0,
    ) -> None:
        self.fail_rate = fail_rate
        self.seed = seed
        self.timeout_sleep_s = timeout_sleep_s
        self.content_fn = content_fn
        self.kinds = kinds
        self.reject_json_schema = reject_json_schema  # answer 400 to response_format json_schema
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()  # request key -> attempts seen
        self.outcomes: Counter[str] = Counter()  # kind or "ok" -> count
        self.log: list[dict[str, Any]] = []  # one entry per attempt: key, outcome, headers of note
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FaultyServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FaultyServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def decide(self, body: dict[str, Any], attempt: int) -> str:
        """'ok' or a failure kind for this content's `attempt`-th try (0-based)."""
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        forced = _FORCE.search(text)
        if forced:
            return forced.group(1)
        digest = hashlib.sha256(f"{self.seed}|{request_key(body)}|{attempt}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.fail_rate or not self.kinds:
            return "ok"
        return self.kinds[digest[8] % len(self.kinds)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, code: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (extra or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to do

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "faulty", "object": "model"}]}).encode())
                else:
                    self._send(200 if self.path == "/health" else 404, b"{}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "invalid JSON body"}}')
                    return
                key = request_key(body)
                with server.lock:
                    attempt = server.attempts[key]
                    server.attempts[key] += 1
                rf = body.get("response_format") or {}
                if server.reject_json_schema and rf.get("type") == "json_schema":
                    outcome = "rejected_schema"
                else:
                    outcome = server.decide(body, attempt)
                with server.lock:
                    server.outcomes[outcome] += 1
                    server.log.append(
                        {
                            "key": key,
                            "attempt": attempt,
                            "outcome": outcome,
                            "response_format": rf.get("type"),
                            "authorization": self.headers.get("Authorization"),
                        }
                    )
                if server.latency_s:
                    time.sleep(server.latency_s)
                self._respond(body, outcome)

            def _respond(self, body: dict[str, Any], outcome: str) -> None:
                if outcome == "timeout":
                    time.sleep(server.timeout_sleep_s)
                    outcome = "ok"  # answer late; the client has given up by then
                if outcome == "http_500":
                    self._send(500, b'{"error": {"message": "internal error (injected)"}}')
                elif outcome == "http_429":
                    self._send(429, b'{"error": {"message": "rate limited (injected)"}}', {"Retry-After": "0"})
                elif outcome == "http_400":
                    # echo the headers back, as a careless server might: the client must scrub its key
                    echo = json.dumps({"error": {"message": "bad request (injected)", "headers": dict(self.headers)}})
                    self._send(400, echo.encode())
                elif outcome == "rejected_schema":
                    self._send(400, b'{"error": {"message": "response_format json_schema is not supported"}}')
                elif outcome == "bad_body":
                    self._send(200, b'{"id": "x", "choices": [{"message": {"content": "trunc')
                else:
                    content = server.content_fn(body)
                    if outcome == "bad_content":
                        content = content[: max(1, len(content) // 2)]  # cut mid-JSON
                    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                    payload = {
                        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "faulty"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": len(content.split()),
                            "total_tokens": prompt_tokens + len(content.split()),
                        },
                    }
                    self._send(200, json.dumps(payload, ensure_ascii=False).encode())

        return Handler


def start_faulty_server(
    fail_rate: float = 0.3,
    seed: int = 0,
    timeout_sleep_s: float = 2.0,
    content_fn: Callable[[dict[str, Any]], str] = default_content,
    **kwargs: Any,
) -> tuple[str, Callable[[], None]]:
    """Start a FaultyServer in a thread; returns (base_url, stop)."""
    srv = FaultyServer(fail_rate, seed, timeout_sleep_s, content_fn, **kwargs).start()
    return srv.base_url, srv.stop
