"""The agent's tests: offline and deterministic, replayed by the mockserver pytest plugin from
``cassettes/test_agent/*.yaml`` (see README.md for how they were recorded)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import agent
import pytest

from mockserver.testing.plugin import MockServer

QUESTION = "Use get_weather and get_time: what are the weather and the local time in Lima?"


def noon() -> datetime:
    """A fixed clock: a tool result is part of the next request, so it must not change."""
    return datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def final_text(mockserver: MockServer) -> str:
    content = mockserver.journal.last.response["content"]
    return "".join(block["text"] for block in content if block["type"] == "text")


@pytest.mark.mockserver(assert_all_used=True)
def test_weather_and_time(mockserver: MockServer) -> None:
    answer = agent.run(QUESTION, now=noon)

    journal = mockserver.journal
    assert journal.count == 2  # one tool round, then the answer
    assert journal.tools_offered(0) == ["get_weather", "get_time"]
    calls = journal.tool_calls(0)
    assert [call["name"] for call in calls] == ["get_weather", "get_time"]
    # the app ran both calls locally and sent each result back under its call's id
    results = journal.tool_results(1)
    assert [r["tool_use_id"] for r in results] == [call["id"] for call in calls]
    assert [r["content"] for r in results] == [
        agent.call_tool(call["name"], call["input"], noon) for call in calls
    ]
    assert journal.tool_calls(1) == []  # the second reply ends the loop
    assert answer and answer == final_text(mockserver)
    assert journal.retries() == 0


@pytest.mark.mockserver(cassette="test_weather_and_time")
def test_async_streaming_client(mockserver: MockServer) -> None:
    """The async client streaming each reply, replayed from the same (non-stream) recording."""
    answer = asyncio.run(agent.arun(QUESTION, now=noon))

    assert [ex.stream for ex in mockserver.journal] == [True, True]
    assert answer and answer == final_text(mockserver)


@pytest.mark.mockserver(
    cassette="test_weather_and_time", fault="overloaded;times=1;retry_after_ms=1"
)
def test_overloaded_endpoint_is_retried(mockserver: MockServer) -> None:
    """Every distinct request first gets a 529; the SDK retries and the agent still answers."""
    answer = agent.run(QUESTION, now=noon)

    journal = mockserver.journal
    assert [ex.status for ex in journal] == [529, 200, 529, 200]
    assert journal.retries() == 2
    assert answer == final_text(mockserver)


@pytest.mark.mockserver(cassette="test_weather_and_time")
def test_unmodified_app_reaches_the_mock() -> None:
    """The marker alone is enough: ANTHROPIC_BASE_URL points at the mock during the test."""
    assert agent.run(QUESTION, now=noon)
