"""``litellm``: the ``anthropic/`` provider with ``api_base`` (OpenAI-shaped calls and replies,
Anthropic on the wire), streaming, tools, and litellm's own exception types."""

from __future__ import annotations

import json
import os
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
    TOOL_SCHEMAS,
    TOOLS_PROMPT,
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
from mockserver.wire import protocol as p

# litellm fetches its model price map from the internet at import unless told not to
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = require("litellm")
litellm.suppress_debug_info = True

#: litellm's own TypedDicts use ``ReadOnly``, which pydantic warns about when it builds them
pytestmark = pytest.mark.filterwarnings(
    "ignore:Items? .* using the `ReadOnly` qualifier:UserWarning:pydantic"
)

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": t["name"],
            "description": t["description"],
            "parameters": t["input_schema"],
        },
    }
    for t in TOOL_SCHEMAS
]


def complete(server: ServerThread, prompt: str | list[dict[str, Any]], **kw: Any) -> Any:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return litellm.completion(
        model=f"anthropic/{MODEL}",
        api_base=server.base_url,
        api_key=API_KEY,
        max_tokens=512,
        messages=messages,
        **kw,
    )


def test_plain(server: ServerThread) -> None:
    resp = complete(server, PLAIN_PROMPT)
    ex = check_plain(server, PLAIN_PROMPT, stream=False)
    assert resp.choices[0].message.content == reply_text(ex)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == ex.response["usage"]["output_tokens"]
    assert ex.headers[p.H_API_KEY] == "***" and ex.headers[p.H_VERSION] == "2023-06-01"


def test_stream(server: ServerThread) -> None:
    chunks = list(complete(server, STREAM_PROMPT, stream=True))
    ex = check_plain(server, STREAM_PROMPT, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 2 and text == reply_text(ex)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_tools_parallel_round_trip(server: ServerThread, stream: bool) -> None:
    history: list[dict[str, Any]] = [{"role": "user", "content": TOOLS_PROMPT}]
    if stream:
        chunks = list(complete(server, history, tools=OPENAI_TOOLS, stream=True))
        message = litellm.stream_chunk_builder(chunks, messages=history).choices[0].message
    else:
        message = complete(server, history, tools=OPENAI_TOOLS).choices[0].message
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert [name for _, name, _ in calls] == TOOL_NAMES
    history.append(message.model_dump(exclude_none=True))
    for call_id, name, args in calls:
        history.append(
            {"role": "tool", "tool_call_id": call_id, "content": tool_result_text(name, args)}
        )
    final = complete(server, history, tools=OPENAI_TOOLS)
    first, last = check_tool_round_trip(server)
    assert first.stream is stream and not last.stream
    assert final.choices[0].message.content == reply_text(last)
    assert final.choices[0].finish_reason == "stop"


def test_context_limit_is_context_window_exceeded(server: ServerThread) -> None:
    with pytest.raises(litellm.ContextWindowExceededError, match="prompt is too long") as info:
        complete(server, BIG_PROMPT)
    check_context_400(server)
    assert isinstance(info.value, litellm.BadRequestError) and info.value.status_code == 400


def test_529_is_retried(server: ServerThread) -> None:
    """litellm retries with ``num_retries`` (it sends no ``x-stainless-retry-count``)."""
    resp = complete(server, RETRY_PROMPT, extra_headers=FAULT_HEADERS, num_retries=2)
    ex = check_retried_529(server, retry_header=False)
    assert resp.choices[0].message.content == reply_text(ex)


# --- structured output --------------------------------------------------------------------


def test_output_config_passes_through(server: ServerThread) -> None:
    fmt = {"type": "json_schema", "schema": PERSON_SCHEMA}
    reply = complete(server, STRUCTURED_PROMPT, output_config={"format": fmt})
    check_structured(server, json.loads(reply.choices[0].message.content))


def test_native_response_format_sends_top_level_output_format(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """litellm's native structured output (for models it knows support it) sends the older
    top-level ``output_format``: the mock honours it the same way."""
    monkeypatch.setattr(litellm, "model_cost", dict(litellm.model_cost))  # (restored after)
    litellm.register_model(
        {
            f"anthropic/{MODEL}": {
                "litellm_provider": "anthropic",
                "mode": "chat",
                "supports_native_structured_output": True,
                "supports_response_schema": True,
            }
        }
    )
    schema = {"name": "Person", "schema": PERSON_SCHEMA, "strict": True}
    reply = complete(
        server, STRUCTURED_PROMPT, response_format={"type": "json_schema", "json_schema": schema}
    )
    check_structured(server, json.loads(reply.choices[0].message.content), key="output_format")
