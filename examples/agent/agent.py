"""A tiny tool-using agent written against the official ``anthropic`` SDK.

``run(question)`` offers two tools, ``get_weather`` and ``get_time``, runs the calls the model
makes locally and sends the results back until the model ends its turn; it returns the
model's final text.  ``arun`` is the same loop on the async client, streaming each reply.

The app knows nothing about mockserver: it reads ``ANTHROPIC_BASE_URL`` and
``ANTHROPIC_API_KEY`` like any app built on the SDK (the pytest plugin sets both in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic

MODEL = "deepseek-v3-anthropic"
MAX_TURNS = 6
CITIES = {  # city -> (weather, UTC offset in hours)
    "Paris": ("light rain, 14 °C", 2),
    "Tokyo": ("sunny, 24 °C", 9),
    "Lima": ("overcast, 17 °C", -5),
}
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": sorted(CITIES)}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Current local time in a city (24-hour clock).",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": sorted(CITIES)}},
            "required": ["city"],
        },
    },
]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def call_tool(name: str, args: dict[str, Any], now: Clock) -> str:
    """Run one tool call locally; an unknown tool or city is reported back as text."""
    city = str(args.get("city", ""))
    if city not in CITIES:
        return f"unknown city {city!r}"
    weather, offset = CITIES[city]
    if name == "get_weather":
        return f"{city}: {weather}"
    if name == "get_time":
        return f"{city}: {(now() + timedelta(hours=offset)):%H:%M}"
    return f"unknown tool {name!r}"


def _turns(content: list[Any], now: Clock) -> list[dict[str, Any]]:
    """The assistant turn as sent back (plain blocks), and the user turn with the results."""
    said: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for b in content:
        if b.type == "text":
            said.append({"type": "text", "text": b.text})
        elif b.type == "tool_use":
            said.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
            output = call_tool(b.name, b.input, now)
            results.append({"type": "tool_result", "tool_use_id": b.id, "content": output})
    return [{"role": "assistant", "content": said}, {"role": "user", "content": results}]


def _text(content: list[Any]) -> str:
    return "".join(b.text for b in content if b.type == "text")


def run(question: str, *, client: anthropic.Anthropic | None = None, now: Clock = utc_now) -> str:
    """Answer ``question``, calling tools as the model asks (sync client, plain replies)."""
    if client is None:
        with anthropic.Anthropic() as own:  # reads ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY
            return run(question, client=own, now=now)
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for _ in range(MAX_TURNS):
        reply = client.messages.create(
            model=MODEL,
            max_tokens=512,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
        )
        if reply.stop_reason != "tool_use":
            return _text(reply.content)
        messages += _turns(reply.content, now)
    raise RuntimeError(f"no answer after {MAX_TURNS} turns")


async def arun(
    question: str, *, client: anthropic.AsyncAnthropic | None = None, now: Clock = utc_now
) -> str:
    """The same loop on the async client, streaming every reply."""
    if client is None:
        async with anthropic.AsyncAnthropic() as own:
            return await arun(question, client=own, now=now)
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for _ in range(MAX_TURNS):
        async with client.messages.stream(
            model=MODEL,
            max_tokens=512,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
        ) as stream:
            reply = await stream.get_final_message()
        if reply.stop_reason != "tool_use":
            return _text(reply.content)
        messages += _turns(reply.content, now)
    raise RuntimeError(f"no answer after {MAX_TURNS} turns")
