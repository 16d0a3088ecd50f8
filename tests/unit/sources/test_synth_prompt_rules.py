"""Two synth rules that real agent clients need (found with Claude Code, tests/clients):
path-like tool properties take the absolute path written in the prompt, and
``<system-reminder>`` blocks are not part of the user's turn."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mockserver.sources.compose import compose_message
from mockserver.sources.instances import instance


def tool_input_of(tool: dict, rng: random.Random, prompt: str = "") -> object:  # type: ignore[type-arg]
    return instance(tool["input_schema"], rng, prompt)


READ = {
    "name": "Read",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "absolute path"},
            "offset": {"type": "integer", "minimum": 0},
        },
        "required": ["file_path"],
        "additionalProperties": False,
    },
}
REMINDER = "<system-reminder>\nUse the Bash tool wisely. See /etc/motd\n</system-reminder>\n"


def compose(body: dict[str, Any]) -> dict[str, Any]:
    return compose_message(
        {"model": "m", "max_tokens": 500, **body},
        model="m",
        max_tokens=500,
        seed=0,
        count_output=lambda blocks: sum(len(str(b).split()) for b in blocks),
    )


@pytest.mark.parametrize(
    ("prompt", "path"),
    [
        ("Use the Read tool to read /tmp/work/hello.txt.", "/tmp/work/hello.txt"),
        ("Read (/a/b.txt), then stop", "/a/b.txt"),
        ('Read "/srv/data file" please', "/srv/data"),
        ("see https://x.org/y and ~/z, Read /real/one", "/real/one"),
    ],
)
def test_path_property_takes_the_prompts_absolute_path(prompt: str, path: str) -> None:
    assert tool_input_of(READ, random.Random(1), prompt) == {"file_path": path}


def test_without_a_path_the_schema_value_stays() -> None:
    plain = tool_input_of(READ, random.Random(1))
    assert tool_input_of(READ, random.Random(1), "Read hello.txt") == plain
    assert not plain["file_path"].startswith("/")


def test_constrained_and_unrelated_properties_are_left_alone() -> None:
    tool = {
        "name": "t",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "pattern": "^[a-z]+$"},
                "city": {"type": "string"},
            },
            "required": ["path", "city"],
        },
    }
    out = tool_input_of(tool, random.Random(3), "t for /tmp/x")
    assert out == tool_input_of(tool, random.Random(3))
    assert not out["city"].startswith("/")


def test_reminder_blocks_are_not_the_users_words() -> None:
    tools = [READ, {"name": "Bash", "input_schema": {"type": "object"}}]
    content = [{"type": "text", "text": REMINDER}, {"type": "text", "text": "Say hi"}]
    msg = compose({"messages": [{"role": "user", "content": content}], "tools": tools})
    assert msg["stop_reason"] == "end_turn"  # "Bash" in the reminder calls nothing
    assert msg["content"][0]["text"].startswith("Mock reply to: Say hi ")


def test_tool_results_with_a_reminder_still_end_the_loop() -> None:
    turn = [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
        {"type": "text", "text": REMINDER},
    ]
    messages = [
        {"role": "user", "content": "Use Read on /x"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}],
        },
        {"role": "user", "content": turn},
    ]
    msg = compose({"messages": messages, "tools": [READ]})
    assert msg["stop_reason"] == "end_turn"
    assert msg["content"][0]["text"].startswith("Thanks, I have the tool results.")
