"""The live conformance suite: ``mockserver conformance --base-url URL``.

Runs protocol cases against any endpoint (the real one, a gateway, or mockserver itself) and
checks every reply with the same schemas and stream grammar the rest of the kit uses.
Synchronous and dependency-free on the client side (``http.client``), so it measures the
endpoint, not a client library.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from ..wire import protocol as p
from ..wire.sse import Decoder, Event
from ..wire.streaming import FoldError, fold
from . import conformance

DEFAULT_MODEL = "deepseek-v3-anthropic"
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}
TIME: dict[str, Any] = {
    "name": "get_time",
    "description": "Get the current local time for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    events: list[Event] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Outcome:
    case: str
    passed: bool
    why: str = ""
    dialect: str | None = None
    status: int | None = None


class Failed(Exception):
    """A case failed; the message says why."""


class Client:
    def __init__(self, base_url: str, api_key: str, version: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.api_key = api_key
        self.version = version
        self.timeout = timeout

    def headers(self, *, key: bool = True, version: bool = True) -> dict[str, str]:
        h = {"content-type": p.CT_JSON, "accept": p.CT_JSON}
        if key:
            h[p.H_API_KEY] = self.api_key
        if version:
            h[p.H_VERSION] = self.version
        return h

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        conn_cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = conn_cls(self.host, self.port, timeout=self.timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        t0 = time.monotonic()
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers or self.headers())
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            events: list[Event] = []
            if hdrs.get("content-type", "").startswith("text/event-stream"):
                dec = Decoder()
                chunks = []
                while chunk := resp.read1(65536):
                    chunks.append(chunk)
                    events += dec.feed(chunk)
                events += dec.close()
                payload = b"".join(chunks)
            else:
                payload = resp.read()
            return Response(resp.status, hdrs, payload, events, (time.monotonic() - t0) * 1000)
        finally:
            conn.close()


def _fmt(violations: list[Any]) -> str:
    return "; ".join(f"{v.rule} at {v.path}: {v.message}" for v in violations[:3])


class Suite:
    """The cases; each method named ``case_*`` is one case, run in definition order."""

    def __init__(self, client: Client, model: str, dialect: str) -> None:
        self.c = client
        self.model = model
        self.dialect = dialect  # anthropic | deepseek | any
        self.seen_dialect: str | None = None

    # --- helpers -----------------------------------------------------------------------
    def body(self, content: Any = "Say hello in five words.", **extra: Any) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": 128,
            "messages": [{"role": "user", "content": content}],
            **extra,
        }

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.c.send("POST", p.PATH_MESSAGES, body)
        self.expect_status(resp, 200)
        msg: dict[str, Any] = resp.json()
        if bad := conformance.check_message(msg):
            raise Failed(f"message violates the contract: {_fmt(bad)}")
        return msg

    def stream(self, body: dict[str, Any]) -> tuple[Response, dict[str, Any]]:
        resp = self.c.send("POST", p.PATH_MESSAGES, {**body, "stream": True})
        self.expect_status(resp, 200)
        ctype = resp.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            raise Failed(f"content-type {ctype!r}, expected text/event-stream")
        if bad := conformance.check_stream(resp.events):
            raise Failed(f"stream violates the grammar: {_fmt(bad)}")
        try:
            msg = fold((e.name, e.json()) for e in resp.events)
        except (FoldError, ValueError) as exc:
            raise Failed(f"stream does not fold into a message: {exc}") from None
        return resp, msg

    def expect_status(self, resp: Response, status: int) -> None:
        if resp.status != status:
            raise Failed(f"HTTP {resp.status}, expected {status}: {resp.body[:200]!r}")

    def expect_error(self, resp: Response, status: int, etype: str, needle: str = "") -> str:
        self.expect_status(resp, status)
        try:
            body = resp.json()
        except ValueError:
            raise Failed(f"error body is not JSON: {resp.body[:120]!r}") from None
        if bad := conformance.check_error(body):
            raise Failed(f"error body violates the contract: {_fmt(bad)}")
        dialect = "anthropic" if body.get("type") == "error" else "deepseek"
        self.seen_dialect = dialect
        if self.dialect != "any" and dialect != self.dialect:
            raise Failed(f"{dialect}-dialect error body, expected the {self.dialect} envelope")
        err = body["error"]
        if err.get("type") != etype:
            raise Failed(f"error.type {err.get('type')!r}, expected {etype!r}")
        if needle and needle not in str(err.get("message", "")):
            raise Failed(f"error.message {err.get('message')!r} does not mention {needle!r}")
        if p.H_REQUEST_ID not in resp.headers and dialect == "anthropic":
            raise Failed("no request-id header")
        return dialect

    # --- cases: models -----------------------------------------------------------------
    def case_models_list(self) -> None:
        resp = self.c.send("GET", p.PATH_MODELS)
        self.expect_status(resp, 200)
        body = resp.json()
        for key in ("data", "has_more", "first_id", "last_id"):
            if key not in body:
                raise Failed(f"models list lacks {key!r}")
        if not any(m.get("id") == self.model for m in body["data"]):
            raise Failed(f"{self.model} is not listed")

    def case_models_retrieve(self) -> None:
        resp = self.c.send("GET", f"{p.PATH_MODELS}/{self.model}")
        self.expect_status(resp, 200)
        if resp.json().get("type") != "model":
            raise Failed("model object lacks type: model")

    def case_models_unknown(self) -> None:
        self.expect_error(
            self.c.send("GET", f"{p.PATH_MODELS}/no-such-model-xyz"), 404, p.NOT_FOUND
        )

    # --- cases: replies ----------------------------------------------------------------
    def case_text_json(self) -> None:
        msg = self.message(self.body())
        if msg["stop_reason"] != p.STOP_END_TURN or msg["content"][0]["type"] != p.BLOCK_TEXT:
            raise Failed(f"expected a text reply ending end_turn, got {msg['stop_reason']}")

    def case_request_id_header(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body())
        if not resp.headers.get(p.H_REQUEST_ID):
            raise Failed("no request-id header on a 200 reply")

    def case_text_stream(self) -> None:
        _, msg = self.stream(self.body())
        if msg.get("stop_reason") != p.STOP_END_TURN:
            raise Failed(f"stop_reason {msg.get('stop_reason')!r}")

    def case_stream_has_ping(self) -> None:
        resp, _ = self.stream(self.body())
        if not any(e.name == p.PING for e in resp.events):
            raise Failed("no ping event in the stream (the real endpoint sends one)")

    def case_stream_event_names(self) -> None:
        resp, _ = self.stream(self.body())
        for i, e in enumerate(resp.events):
            if e.name is None:
                raise Failed(f"event {i} has no event: line (SDKs drop it)")

    def case_stream_usage(self) -> None:
        resp, msg = self.stream(self.body())
        start = resp.events[0].json()["message"].get("usage", {})
        if "input_tokens" not in start:
            raise Failed("message_start carries no input usage")
        if msg.get("usage", {}).get("output_tokens", 0) <= 0:
            raise Failed("no output_tokens in message_delta")

    def case_stop_sequence(self) -> None:
        body = self.body(
            "Reply with exactly this text and nothing else: alpha beta STOP gamma",
            stop_sequences=["STOP"],
        )
        msg = self.message(body)
        if msg["stop_reason"] != p.STOP_SEQUENCE or msg["stop_sequence"] != "STOP":
            raise Failed(
                f"stop_reason {msg['stop_reason']!r}, stop_sequence {msg['stop_sequence']!r}"
            )

    def case_max_tokens_cut(self) -> None:
        msg = self.message(self.body("Write a long essay about the sea.", max_tokens=5))
        if msg["stop_reason"] != p.STOP_MAX_TOKENS:
            raise Failed(f"stop_reason {msg['stop_reason']!r}, expected max_tokens")
        if msg["usage"]["output_tokens"] > 5:
            raise Failed(f"output_tokens {msg['usage']['output_tokens']} > max_tokens 5")

    def case_max_tokens_cut_stream(self) -> None:
        _, msg = self.stream(self.body("Write a long essay about the sea.", max_tokens=5))
        if msg.get("stop_reason") != p.STOP_MAX_TOKENS:
            raise Failed(f"stop_reason {msg.get('stop_reason')!r}, expected max_tokens")

    def _tool_msg(self, stream: bool, **extra: Any) -> dict[str, Any]:
        body = self.body("What is the weather in Paris? Use get_weather.", tools=[WEATHER], **extra)
        body["max_tokens"] = 256
        msg = self.stream(body)[1] if stream else self.message(body)
        uses = [b for b in msg["content"] if b.get("type") == p.BLOCK_TOOL_USE]
        if not uses or msg["stop_reason"] != p.STOP_TOOL_USE:
            raise Failed(f"no tool_use (stop_reason {msg['stop_reason']!r})")
        for use in uses:
            try:
                jsonschema.validate(use["input"], WEATHER["input_schema"])
            except jsonschema.ValidationError as exc:
                raise Failed(f"tool input does not match input_schema: {exc.message}") from None
        return msg

    def case_tool_use_forced(self) -> None:
        self._tool_msg(False, tool_choice={"type": "tool", "name": "get_weather"})

    def case_tool_use_stream(self) -> None:
        self._tool_msg(True, tool_choice={"type": "tool", "name": "get_weather"})

    def case_tool_use_any(self) -> None:
        self._tool_msg(False, tool_choice={"type": "any"})

    def _parallel(self) -> tuple[dict[str, Any], dict[str, Any]]:
        body = self.body(
            "Call get_weather and get_time for Paris, both at once, in parallel.",
            tools=[WEATHER, TIME],
            tool_choice={"type": "any"},
        )
        body["max_tokens"] = 400
        msg = self.message(body)
        uses = [b for b in msg["content"] if b.get("type") == p.BLOCK_TOOL_USE]
        if len(uses) < 2:
            raise Failed(f"{len(uses)} tool_use block(s), expected parallel calls")
        return body, msg

    def case_parallel_tool_use(self) -> None:
        self._parallel()

    def case_tool_result_round_trip(self) -> None:
        body, msg = self._parallel()
        results = [
            {"type": "tool_result", "tool_use_id": b["id"], "content": "sunny, 21C, 14:00"}
            for b in msg["content"]
            if b.get("type") == p.BLOCK_TOOL_USE
        ]
        body["messages"] = [
            *body["messages"],
            {"role": "assistant", "content": msg["content"]},
            {"role": "user", "content": results},
        ]
        body.pop("tool_choice")
        reply = self.message(body)
        if reply["stop_reason"] != p.STOP_END_TURN:
            raise Failed(f"after tool results: stop_reason {reply['stop_reason']!r}")

    def case_count_tokens(self) -> None:
        resp = self.c.send(
            "POST", p.PATH_COUNT_TOKENS, {k: v for k, v in self.body().items() if k != "max_tokens"}
        )
        self.expect_status(resp, 200)
        n = resp.json().get("input_tokens")
        if not isinstance(n, int) or n <= 0:
            raise Failed(f"input_tokens {n!r}")

    def case_count_tokens_matches_usage(self) -> None:
        body = self.body("Count these words for me please.", system="Be brief.")
        resp = self.c.send(
            "POST", p.PATH_COUNT_TOKENS, {k: v for k, v in body.items() if k != "max_tokens"}
        )
        self.expect_status(resp, 200)
        counted = resp.json()["input_tokens"]
        u = self.message(body)["usage"]
        total = sum(
            u.get(k) or 0
            for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
        if abs(total - counted) > max(2, counted // 20):
            raise Failed(f"count_tokens {counted} vs usage {total}")

    # --- cases: errors -----------------------------------------------------------------
    def case_error_no_key(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(), self.c.headers(key=False))
        self.expect_error(resp, 401, p.AUTHENTICATION)

    def case_error_bad_key(self) -> None:
        h = self.c.headers()
        h[p.H_API_KEY] = "sk-invalid-conformance-key"
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, self.body(), h), 401, p.AUTHENTICATION
        )

    def case_error_no_version(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(), self.c.headers(version=False))
        self.expect_error(resp, 400, p.INVALID_REQUEST, "anthropic-version")

    def case_error_missing_max_tokens(self) -> None:
        body = self.body()
        del body["max_tokens"]
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "max_tokens"
        )

    def case_error_missing_messages(self) -> None:
        body = self.body()
        del body["messages"]
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "messages"
        )

    def case_error_bad_role(self) -> None:
        body = self.body()
        body["messages"][0]["role"] = "robot"
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "role"
        )

    def case_error_unknown_model(self) -> None:
        body = self.body(model="no-such-model-xyz")
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 404, p.NOT_FOUND, "no-such-model-xyz"
        )

    def case_error_max_tokens_over_limit(self) -> None:
        body = self.body(max_tokens=1_000_000)
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "max_tokens"
        )

    def case_error_context_limit(self) -> None:
        text = " ".join(f"token{i}" for i in range(120_000))
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(text))
        dialect = self.expect_error(resp, 400, p.INVALID_REQUEST)
        message = resp.json()["error"]["message"]
        wanted = "prompt is too long" if dialect == "anthropic" else "maximum context length"
        if wanted not in message:
            raise Failed(f"context-limit message {message[:100]!r} lacks {wanted!r}")

    def case_error_image_block(self) -> None:
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        }
        body = self.body([image, {"type": "text", "text": "What is this?"}])
        self.expect_error(self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST)

    def case_error_bad_tool_name(self) -> None:
        body = self.body(tools=[{**WEATHER, "name": "bad name!"}])
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "name"
        )

    def case_error_orphan_tool_result(self) -> None:
        body = self.body([{"type": "tool_result", "tool_use_id": "toolu_01Nope", "content": "x"}])
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "tool_use"
        )

    def case_error_body_not_json(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, raw=b"{this is not json")
        self.expect_error(resp, 400, p.INVALID_REQUEST)

    def case_error_unknown_path(self) -> None:
        resp = self.c.send("POST", "/v1/chat/completions", {"model": self.model, "messages": []})
        self.expect_error(resp, 404, p.NOT_FOUND)

    def cases(self) -> Iterator[tuple[str, Callable[[], None]]]:
        for name in type(self).__dict__:
            if name.startswith("case_"):
                yield name.removeprefix("case_"), getattr(self, name)


def run_suite(
    base_url: str,
    *,
    api_key: str = "sk-conformance",
    model: str = DEFAULT_MODEL,
    dialect: str = "anthropic",
    version: str = "2023-06-01",
    timeout: float = 60.0,
    only: list[str] | None = None,
) -> list[Outcome]:
    suite = Suite(Client(base_url, api_key, version, timeout), model, dialect)
    outcomes = []
    for name, fn in suite.cases():
        if only and name not in only:
            continue
        suite.seen_dialect = None
        try:
            fn()
            outcomes.append(Outcome(name, True, dialect=suite.seen_dialect))
        except Failed as exc:
            outcomes.append(Outcome(name, False, str(exc), suite.seen_dialect))
        except (
            OSError,
            http.client.HTTPException,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
        ) as exc:
            outcomes.append(
                Outcome(name, False, f"{type(exc).__name__}: {exc}", suite.seen_dialect)
            )
    return outcomes


def format_table(outcomes: list[Outcome]) -> str:
    width = max(len(o.case) for o in outcomes) if outcomes else 10
    lines = [f"{'case':<{width}}  result  dialect    why", "-" * (width + 40)]
    for o in outcomes:
        result = "pass" if o.passed else "FAIL"
        lines.append(f"{o.case:<{width}}  {result:<6}  {o.dialect or '-':<9}  {o.why}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    outcomes = run_suite(
        args.base_url,
        api_key=args.api_key,
        model=args.model,
        dialect=args.dialect,
        version=args.anthropic_version,
        timeout=args.timeout,
        only=args.case or None,
    )
    print(format_table(outcomes))
    if args.report:
        report = {
            "base_url": args.base_url,
            "model": args.model,
            "expected_dialect": args.dialect,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "passed": sum(o.passed for o in outcomes),
            "failed": sum(not o.passed for o in outcomes),
            "cases": [asdict(o) for o in outcomes],
        }
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(o.passed for o in outcomes) else 1


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "conformance",
        help="run the live protocol suite against any base URL",
        description="Run the live protocol suite against an Anthropic-format endpoint (the real "
        "one, a gateway, or mockserver). Prints a table and exits 1 when a case fails.",
    )
    sp.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    sp.add_argument("--api-key", default="sk-conformance", help="key to send (x-api-key)")
    sp.add_argument("--model", default=DEFAULT_MODEL)
    sp.add_argument(
        "--dialect",
        choices=("anthropic", "deepseek", "any"),
        default="anthropic",
        help="error envelope to expect (default anthropic, the alias's contract)",
    )
    sp.add_argument("--anthropic-version", default="2023-06-01")
    sp.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    sp.add_argument("--case", action="append", help="run only this case (repeatable)")
    sp.add_argument("--report", help="write a JSON report to this file")
    sp.set_defaults(func=_cmd)
