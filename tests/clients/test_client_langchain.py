"""``langchain-anthropic``: ``ChatAnthropic`` with ``invoke``, ``stream`` and ``bind_tools``."""

from __future__ import annotations

from typing import Any

import pytest
from clientkit import (
    API_KEY,
    BIG_PROMPT,
    FAULT_HEADERS,
    MODEL,
    PERSON_SCHEMA,
    PLAIN_PROMPT,
    RETRY_PROMPT,
    STREAM_PROMPT,
    STRUCTURED_PROMPT,
    TOOL_NAMES,
    TOOLS_PROMPT,
    Person,
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

langchain_anthropic = require("langchain_anthropic")
messages_mod = require("langchain_core.messages")
exceptions_mod = require("langchain_core.exceptions")


def chat(server: ServerThread, **kw: Any) -> Any:
    return langchain_anthropic.ChatAnthropic(
        base_url=server.base_url, api_key=API_KEY, model=MODEL, max_retries=2, max_tokens=512, **kw
    )


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return tool_result_text("get_weather", {"city": city})


def get_time(tz: str) -> str:
    """Current time in a timezone."""
    return tool_result_text("get_time", {"tz": tz})


def test_plain(server: ServerThread) -> None:
    reply = chat(server).invoke(PLAIN_PROMPT)
    ex = check_plain(server, PLAIN_PROMPT, stream=False)
    assert reply.content == reply_text(ex)
    assert reply.usage_metadata["output_tokens"] == ex.response["usage"]["output_tokens"]
    assert reply.response_metadata["stop_reason"] == "end_turn"


def test_stream(server: ServerThread) -> None:
    chunks = list(chat(server).stream(STREAM_PROMPT))
    ex = check_plain(server, STREAM_PROMPT, stream=True)
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert len(chunks) > 2 and text == reply_text(ex)


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_bind_tools_parallel_round_trip(server: ServerThread, streaming: bool) -> None:
    llm = chat(server, streaming=streaming).bind_tools([get_weather, get_time])
    history: list[Any] = [messages_mod.HumanMessage(TOOLS_PROMPT)]
    ai = llm.invoke(history)
    assert [c["name"] for c in ai.tool_calls] == TOOL_NAMES
    history.append(ai)
    tools = {"get_weather": get_weather, "get_time": get_time}
    for call in ai.tool_calls:
        history.append(
            messages_mod.ToolMessage(tools[call["name"]](**call["args"]), tool_call_id=call["id"])
        )
    final = llm.invoke(history)
    first, last = check_tool_round_trip(server)
    assert first.stream is last.stream is streaming
    assert final.text == reply_text(last) and not final.tool_calls


def test_context_limit_is_context_overflow_error(server: ServerThread) -> None:
    with pytest.raises(exceptions_mod.ContextOverflowError, match="prompt is too long") as info:
        chat(server).invoke(BIG_PROMPT)
    check_context_400(server)
    assert type(info.value).__name__ == "AnthropicContextOverflowError"


def test_529_is_retried(server: ServerThread) -> None:
    reply = chat(server, default_headers=FAULT_HEADERS).invoke(RETRY_PROMPT)
    ex = check_retried_529(server)
    assert reply.content == reply_text(ex)


# --- structured output (method="json_schema": output_config.format) ----------------------


def test_with_structured_output_json_schema(server: ServerThread) -> None:
    structured = chat(server).with_structured_output(Person, method="json_schema")
    person = structured.invoke(STRUCTURED_PROMPT)
    assert isinstance(person, Person)
    check_structured(server, person)


def test_with_structured_output_from_a_dict_schema_streams(server: ServerThread) -> None:
    schema = {"title": "Person", **PERSON_SCHEMA}
    chunks = list(
        chat(server).with_structured_output(schema, method="json_schema").stream(STRUCTURED_PROMPT)
    )
    assert chunks, "the structured stream yielded nothing"
    check_structured(server, chunks[-1])
