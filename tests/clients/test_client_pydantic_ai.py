"""``pydantic-ai``: an ``Agent`` on ``AnthropicModel`` + ``AnthropicProvider(base_url, api_key)``.

pydantic-ai asks for ``max_tokens: 16384`` when the model's limit is unknown to it; this
endpoint allows 8192 and says so with a 400, so the agent sets ``max_tokens`` in its settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from clientkit import (
    API_KEY,
    BIG_PROMPT,
    FAULT_HEADERS,
    MODEL,
    PLAIN_PROMPT,
    RETRY_PROMPT,
    STREAM_PROMPT,
    STRUCTURED_PROMPT,
    TOOLS_PROMPT,
    Person,
    calls,
    check_context_400,
    check_plain,
    check_retried_529,
    check_structured,
    check_tool_round_trip,
    reply_text,
    require,
    tool_result_text,
)

from mockserver.server.running import ServerThread

pydantic_ai = require("pydantic_ai")
anthropic_models = require("pydantic_ai.models.anthropic")
anthropic_provider = require("pydantic_ai.providers.anthropic")
exceptions = require("pydantic_ai.exceptions")

T = TypeVar("T")


def agent(server: ServerThread, max_tokens: int | None = 1024) -> Any:
    provider = anthropic_provider.AnthropicProvider(base_url=server.base_url, api_key=API_KEY)
    settings = {"max_tokens": max_tokens} if max_tokens is not None else None
    model = anthropic_models.AnthropicModel(MODEL, provider=provider, settings=settings)
    return pydantic_ai.Agent(model)


def run(server: ServerThread, body: Callable[[Any], Awaitable[T]], **kw: Any) -> T:
    """Run ``body(agent)`` inside ``async with agent`` so the provider's HTTP client is closed."""

    async def go() -> T:
        a = agent(server, **kw)
        async with a:
            return await body(a)

    return asyncio.run(go())


def test_plain(server: ServerThread) -> None:
    async def body(a: Any) -> Any:
        return await a.run(PLAIN_PROMPT)

    result = run(server, body)
    ex = check_plain(server, PLAIN_PROMPT, stream=False)
    assert result.output == reply_text(ex)
    assert result.usage.output_tokens == ex.response["usage"]["output_tokens"]


def test_stream(server: ServerThread) -> None:
    async def body(a: Any) -> list[str]:
        async with a.run_stream(STREAM_PROMPT) as streamed:
            return [piece async for piece in streamed.stream_text(delta=True)]

    pieces = run(server, body)
    ex = check_plain(server, STREAM_PROMPT, stream=True)
    assert "".join(pieces) == reply_text(ex)


def test_agent_tools_parallel_round_trip(server: ServerThread) -> None:
    ran: list[tuple[str, str]] = []

    async def body(a: Any) -> Any:
        @a.tool_plain
        def get_weather(city: str) -> str:
            """Current weather for a city."""
            ran.append(("get_weather", city))
            return tool_result_text("get_weather", {"city": city})

        @a.tool_plain
        def get_time(tz: str) -> str:
            """Current time in a timezone."""
            ran.append(("get_time", tz))
            return tool_result_text("get_time", {"tz": tz})

        return await a.run(TOOLS_PROMPT)

    result = run(server, body)
    _, last = check_tool_round_trip(server)
    assert sorted(name for name, _ in ran) == ["get_time", "get_weather"]
    assert result.output == reply_text(last)


def test_context_limit_is_context_window_exceeded(server: ServerThread) -> None:
    async def body(a: Any) -> Any:
        return await a.run(BIG_PROMPT)

    with pytest.raises(exceptions.ModelContextWindowExceededError) as info:
        run(server, body)
    ex = check_context_400(server)
    assert info.value.status_code == 400
    assert info.value.body["error"]["message"] == ex.response["error"]["message"]


def test_529_is_retried(server: ServerThread) -> None:
    async def body(a: Any) -> Any:
        return await a.run(RETRY_PROMPT, model_settings={"extra_headers": FAULT_HEADERS})

    result = run(server, body)
    ex = check_retried_529(server)
    assert result.output == reply_text(ex)


def test_default_max_tokens_gets_the_endpoints_400(server: ServerThread) -> None:
    """Left to itself pydantic-ai sends ``max_tokens: 16384``; the endpoint's real answer is a
    400, which pydantic-ai raises as ``ModelHTTPError``."""

    async def body(a: Any) -> Any:
        return await a.run(PLAIN_PROMPT)

    with pytest.raises(exceptions.ModelHTTPError, match="max_tokens: 16384 > 8192"):
        run(server, body, max_tokens=None)
    (ex,) = calls(server)
    assert ex.status == 400 and ex.body["max_tokens"] == 16384


# --- structured output (NativeOutput: output_config.format) -------------------------------


def native_agent(server: ServerThread) -> Any:
    """pydantic-ai sends native structured output only to models its profile says support it
    (a claude-* allowlist): the profile of one that does, for this endpoint's model name."""
    profiles = require("pydantic_ai.profiles.anthropic")
    provider = anthropic_provider.AnthropicProvider(base_url=server.base_url, api_key=API_KEY)
    model = anthropic_models.AnthropicModel(
        MODEL,
        provider=provider,
        settings={"max_tokens": 1024},
        profile=profiles.anthropic_model_profile("claude-sonnet-4-5"),
    )
    return pydantic_ai.Agent(model, output_type=pydantic_ai.NativeOutput(Person))


def test_native_output(server: ServerThread) -> None:
    async def go() -> Any:
        a = native_agent(server)
        async with a:
            return (await a.run(STRUCTURED_PROMPT)).output

    person = asyncio.run(go())
    assert isinstance(person, Person)
    check_structured(server, person)
