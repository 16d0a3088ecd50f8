"""The live suite's cases that expect a reply: models, text, streams, stop sequences,
``max_tokens`` cuts, tool use (forced, parallel, a ``tool_result`` round trip), count_tokens;
and ``Cases``, the helpers every case uses."""

from __future__ import annotations

from typing import Any

import jsonschema

from ..wire import protocol as p
from ..wire.streaming import FoldError, fold
from . import conformance
from .suite_client import Client, Failed, Response, fmt

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


class Cases:
    """What every case uses: the client, the request it starts from, and the checks of a
    reply, a stream and an error."""

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
            raise Failed(f"message violates the contract: {fmt(bad)}")
        return msg

    def stream(self, body: dict[str, Any]) -> tuple[Response, dict[str, Any]]:
        resp = self.c.send("POST", p.PATH_MESSAGES, {**body, "stream": True})
        self.expect_status(resp, 200)
        ctype = resp.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            raise Failed(f"content-type {ctype!r}, expected text/event-stream")
        if bad := conformance.check_stream(resp.events):
            raise Failed(f"stream violates the grammar: {fmt(bad)}")
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
            raise Failed(f"error body violates the contract: {fmt(bad)}")
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


class ReplyCases(Cases):
    """Each method named ``case_*`` is one case, run in definition order."""

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
            "Reply with exactly: alpha beta STOP gamma",
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
