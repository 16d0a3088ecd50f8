"""Request checks: the real endpoint's status, type and message for each bad request
(what real traffic and real clients send: ``test_rules_traffic.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from checks_cases import (
    MODEL,
    WEATHER,
    assert_invalid,
    assistant,
    ok_body,
    raises,
    rejected,
    req,
    text,
    tool_result,
    tool_use,
    user,
    variant,
)

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import Profile
from mockserver.server.checks import body as rules
from mockserver.server.checks.wording import NOT_UNION_DICT
from mockserver.wire import protocol as p
from mockserver.wire.errors import ApiError

# --- auth and version -------------------------------------------------------------------


def test_missing_key_is_401(profile: Profile, counter: TokenCounter) -> None:
    err = rejected(ok_body(), profile, counter, headers={p.H_VERSION: "2023-06-01"})
    assert (err.status, err.error_type, err.message) == (
        401,
        p.AUTHENTICATION,
        "x-api-key header is required",
    )


@pytest.mark.parametrize(
    "auth", [{p.H_API_KEY: "sk-1"}, {p.H_AUTHORIZATION: "Bearer sk-1"}], ids=["x-api-key", "bearer"]
)
def test_both_forms_of_key_are_accepted(
    profile: Profile, counter: TokenCounter, auth: dict[str, str]
) -> None:
    headers = {**auth, p.H_VERSION: "2026-10-21"}
    checked = rules.check(req(ok_body(), headers), profile, counter, api_keys=("sk-1",))
    assert checked.model == MODEL


def test_unknown_key_is_401_when_keys_are_configured(
    profile: Profile, counter: TokenCounter
) -> None:
    headers = {p.H_AUTHORIZATION: "Bearer sk-wrong-key-1234", p.H_VERSION: "2023-06-01"}
    err = raises(lambda: rules.check(req(ok_body(), headers), profile, counter, api_keys=("a",)))
    assert (err.status, err.error_type, err.message) == (401, p.AUTHENTICATION, "invalid x-api-key")
    assert err.deepseek_message == "Authentication Fails, Your api key: ****1234 is invalid"
    # without configured keys any non-empty key passes
    assert rules.check(req(ok_body(), headers), profile, counter).model == MODEL


def test_missing_version_is_400(profile: Profile, counter: TokenCounter) -> None:
    err = rejected(ok_body(), profile, counter, headers={p.H_API_KEY: "k"})
    assert_invalid(err, "anthropic-version: header is required")


def test_unsupported_version_names_value_and_accepted_ones(
    profile: Profile, counter: TokenCounter
) -> None:
    err = rejected(
        ok_body(), profile, counter, headers={p.H_API_KEY: "k", p.H_VERSION: "1999-01-01"}
    )
    assert_invalid(
        err,
        "anthropic-version: '1999-01-01' is not a supported version; supported versions are "
        "2023-01-01, 2023-06-01, 2026-10-21",
    )


def test_version_optional_profile_ignores_the_header(
    profile: Profile, counter: TokenCounter
) -> None:
    relaxed = variant(profile, version_required=False)
    for headers in ({p.H_API_KEY: "k"}, {p.H_API_KEY: "k", p.H_VERSION: "whatever"}):
        assert rules.check(req(ok_body(), headers), relaxed, counter).model == MODEL


def test_order_auth_then_version_then_body_then_model_then_limits(
    profile: Profile, counter: TokenCounter
) -> None:
    bad = {"model": "nope", "max_tokens": 99_999, "messages": "x"}
    assert rejected(bad, profile, counter, headers={}).status == 401
    err = rejected(bad, profile, counter, headers={p.H_API_KEY: "k"})
    assert err.message == "anthropic-version: header is required"
    assert rejected([1], profile, counter).message == "Input should be a valid dictionary"
    assert rejected(bad, profile, counter).message == "messages: Input should be a valid list"
    err = rejected(ok_body(model="nope", max_tokens=99_999), profile, counter)
    assert (err.status, err.message) == (404, "model: nope")


# --- required fields and types ----------------------------------------------------------


@pytest.mark.parametrize("field", ["model", "max_tokens", "messages"])
def test_missing_required_field(profile: Profile, counter: TokenCounter, field: str) -> None:
    body = ok_body()
    del body[field]
    assert_invalid(rejected(body, profile, counter), f"{field}: Field required")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": 5}, "model: Input should be a valid string"),
        ({"max_tokens": "100"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        (
            {"max_tokens": 10.5},
            "max_tokens: Input should be a valid integer, got a number with a fractional part",
        ),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": {"role": "user"}}, "messages: Input should be a valid list"),
        ({"messages": ["hi"]}, "messages.0: Input should be a valid dictionary"),
        ({"messages": [{"content": "hi"}]}, "messages.0.role: Field required"),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": 7}]},
            "messages.0.content: Input should be a valid list",
        ),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences.1: Input should be a valid string"),
        ({"temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
        ({"temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
        ({"temperature": "hot"}, "temperature: Input should be a valid number"),
        ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        (
            {"top_k": 2.5},
            "top_k: Input should be a valid integer, got a number with a fractional part",
        ),
        ({"metadata": "u"}, "metadata: Input should be a valid dictionary"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string"),
        ({"system": 5}, "system: Input should be a valid list"),
        ({"system": [{"type": "image", "text": "x"}]}, "system.0.type: Input should be 'text'"),
        ({"system": [{"type": "text"}]}, "system.0.text: Field required"),
    ],
)
def test_field_errors(
    profile: Profile, counter: TokenCounter, changes: dict[str, Any], message: str
) -> None:
    assert_invalid(rejected(ok_body(**changes), profile, counter), message)


def test_temperature_bound_is_profile_data(profile: Profile, counter: TokenCounter) -> None:
    assert rules.check(req(ok_body(temperature=1.5)), profile, counter).model == MODEL
    anthropic_like = variant(profile, temperature_max=1.0)
    err = rejected(ok_body(temperature=1.5), anthropic_like, counter)
    assert_invalid(err, "temperature: Input should be less than or equal to 1")


def test_nulls_and_integral_floats_are_accepted(profile: Profile, counter: TokenCounter) -> None:
    body = ok_body(max_tokens=512.0, temperature=None, top_p=None, system=None, tools=None)
    assert rules.check(req(body), profile, counter).max_tokens == 512


# --- content blocks ---------------------------------------------------------------------


TAGS = "found using 'type' does not match any of the expected tags:"
ALL_TAGS = (
    "'document', 'image', 'redacted_thinking', 'search_result', 'text', 'thinking', "
    "'tool_result', 'tool_use'"
)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [user({"type": "video", "url": "x"})],
            f"messages.0.content.0: Input tag 'video' {TAGS} {ALL_TAGS}",
        ),
        (
            [user({"text": "no type"})],
            "messages.0.content.0: Unable to extract tag using discriminator 'type'",
        ),
        (
            [user("just a string")],
            "messages.0.content.0: " + NOT_UNION_DICT,
        ),  # type: ignore[arg-type]
        ([user(text("a"), {"type": "text"})], "messages.0.content.1.text.text: Field required"),
        (
            [user(text("a")), assistant({"type": "tool_use", "id": "t1", "name": "x"})],
            "messages.1.content.0.tool_use.input: Field required",
        ),
        (
            [user(text("a")), assistant(tool_use("bad id!"))],
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        ),
        (
            [
                user(text("a")),
                assistant({"type": "tool_use", "id": "t1", "name": "x", "input": []}),
            ],
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        ),
        (
            [user(text("a")), assistant({"type": "thinking", "thinking": "hm"})],
            "messages.1.content.0.thinking.signature: Field required",
        ),
        (
            [
                user(text("a")),
                assistant(tool_use("t1")),
                user(tool_result("t1", [{"type": "thinking", "thinking": "x", "signature": "s"}])),
            ],
            f"messages.2.content.0.tool_result.content.0: Input tag 'thinking' {TAGS} "
            "'document', 'image', 'search_result', 'text', 'tool_reference'",
        ),
    ],
)
def test_block_errors(
    profile: Profile, counter: TokenCounter, messages: list[Any], message: str
) -> None:
    assert_invalid(rejected(ok_body(messages=messages, tools=[WEATHER]), profile, counter), message)


def test_system_role_turns_inside_messages_are_accepted(
    profile: Profile, counter: TokenCounter
) -> None:
    messages = [
        user(text("Read it")),
        {"role": "system", "content": "Agent types: ..."},
        assistant(text("Reading."), tool_use("toolu_1", city="Paris")),
        user(tool_result("toolu_1", "done")),
    ]
    checked = rules.check(req(ok_body(messages=messages, tools=[WEATHER])), profile, counter)
    assert checked.input_tokens == counter.request(checked.body)


# --- tool_result placement (texts of the real API, samples 038 and 039) -----------------


def sample_message(traffic_dir: Path, prefix: str) -> str:
    (path,) = traffic_dir.glob(f"{prefix}-*.json")
    message: str = json.loads(path.read_text())["error"]["message"]
    return message


def test_tool_result_without_tool_use_matches_sample_038(
    traffic_dir: Path, profile: Profile, counter: TokenCounter
) -> None:
    messages = [user(text("Hi"), tool_result("toolu_01GHndag5wQmbzNihYmV2UBj"))]
    err = rejected(ok_body(messages=messages, tools=[WEATHER]), profile, counter)
    assert_invalid(err, sample_message(traffic_dir, "038"))


def test_tool_use_without_result_matches_sample_039(
    traffic_dir: Path, profile: Profile, counter: TokenCounter
) -> None:
    messages = [user(text("Hi")), assistant(tool_use("toolu_issue8112_custom")), user(text("?"))]
    err = rejected(ok_body(messages=messages, tools=[WEATHER]), profile, counter)
    assert_invalid(err, sample_message(traffic_dir, "039"))


def test_tool_result_placement_errors(profile: Profile, counter: TokenCounter) -> None:
    def check(messages: list[Any]) -> ApiError:
        return rejected(ok_body(messages=messages, tools=[WEATHER]), profile, counter)

    wrong_id = [
        user(text("q")),
        assistant(tool_use("t1")),
        user(tool_result("t1"), tool_result("t9")),
    ]
    assert check(wrong_id).message.startswith(
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: t9."
    )
    two_missing = [user(text("q")), assistant(tool_use("t1"), tool_use("t2")), user(text("?"))]
    assert check(two_missing).message.startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "t1, t2."
    )
    late = [user(text("q")), assistant(tool_use("t1")), user(text("here:"), tool_result("t1"))]
    assert_invalid(
        check(late),
        "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message. "
        "Messages following `tool_use` blocks must begin with a matching number of "
        "`tool_result` blocks.",
    )
    ok = [
        user(text("q")),
        assistant(tool_use("t1"), tool_use("t2")),
        user(tool_result("t2"), tool_result("t1"), text("more")),
    ]
    assert rules.check(req(ok_body(messages=ok, tools=[WEATHER])), profile, counter).tools


def test_final_assistant_tool_use_is_a_prefill_and_passes(
    profile: Profile, counter: TokenCounter
) -> None:
    messages = [user(text("q")), assistant(tool_use("t1"))]
    assert rules.check(req(ok_body(messages=messages, tools=[WEATHER])), profile, counter)


# --- media and thinking (profile switches) ----------------------------------------------

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}


@pytest.mark.parametrize(
    ("block", "what"),
    [
        (IMAGE, "image input"),
        (DOCUMENT, "document input"),
        (
            {"type": "search_result", "source": "s", "title": "t", "content": []},
            "search_result blocks",
        ),
    ],
)
def test_media_blocks_rejected_by_default_and_ignored_on_request(
    profile: Profile, counter: TokenCounter, block: dict[str, Any], what: str
) -> None:
    body = ok_body(messages=[user(text("Look"), block)])
    assert_invalid(
        rejected(body, profile, counter),
        f"messages.0.content.1: this model does not support {what}",
    )
    ignoring = variant(profile, media_blocks="ignore")
    assert rules.check(req(body), ignoring, counter).input_tokens == counter.request(body)


def test_media_inside_a_tool_result_is_found(profile: Profile, counter: TokenCounter) -> None:
    messages = [
        user(text("q")),
        assistant(tool_use("t1")),
        user(tool_result("t1", [text("see"), IMAGE])),
    ]
    err = rejected(ok_body(messages=messages, tools=[WEATHER]), profile, counter)
    assert_invalid(
        err, "messages.2.content.0.tool_result.content.1: this model does not support image input"
    )


@pytest.mark.parametrize(
    ("thinking", "message"),
    [
        (
            {"type": "enabled", "budget_tokens": 1024},
            "thinking: extended thinking is not supported on this model",
        ),
        ({"type": "adaptive"}, "thinking: adaptive thinking is not supported on this model"),
    ],
)
def test_thinking_ignored_by_default_rejected_on_request(
    profile: Profile, counter: TokenCounter, thinking: dict[str, Any], message: str
) -> None:
    body = ok_body(thinking=thinking)
    assert rules.check(req(body), profile, counter).model == MODEL
    assert_invalid(rejected(body, variant(profile, thinking="reject"), counter), message)


def test_thinking_disabled_passes_even_under_reject(
    profile: Profile, counter: TokenCounter
) -> None:
    body = ok_body(thinking={"type": "disabled"})
    assert rules.check(req(body), variant(profile, thinking="reject"), counter)


@pytest.mark.parametrize(
    ("thinking", "message"),
    [
        (
            {"type": "turbo"},
            f"thinking: Input tag 'turbo' {TAGS} 'adaptive', 'disabled', 'enabled'",
        ),
        ({"type": "enabled"}, "thinking.enabled.budget_tokens: Field required"),
        ({"budget_tokens": 5}, "thinking: Unable to extract tag using discriminator 'type'"),
    ],
)
def test_thinking_shape(
    profile: Profile, counter: TokenCounter, thinking: Any, message: str
) -> None:
    assert_invalid(rejected(ok_body(thinking=thinking), profile, counter), message)


# --- tools and tool_choice --------------------------------------------------------------


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "input_schema": {"type": "object", "properties": {}}, **extra}


def test_tool_name_pattern(profile: Profile, counter: TokenCounter) -> None:
    pattern_error = "tools.1.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    for name in ("has space", "a" * 65, "", "dots.not.allowed", "trailing\n"):
        assert_invalid(
            rejected(ok_body(tools=[WEATHER, tool(name)]), profile, counter), pattern_error
        )
    assert rules.check(req(ok_body(tools=[tool("a" * 64), tool("A-b_9")])), profile, counter)


def test_missing_schema_type_matches_sample_040(
    traffic_dir: Path, profile: Profile, counter: TokenCounter
) -> None:
    body = ok_body(tools=[{"name": "t", "input_schema": {"properties": {}}}])
    assert_invalid(rejected(body, profile, counter), sample_message(traffic_dir, "040"))


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("x", "tools: Input should be a valid list"),
        ([{"name": "t"}], "tools.0.custom.input_schema: Field required"),
        ([{"input_schema": {"type": "object"}}], "tools.0.custom.name: Field required"),
        ([tool("t", description=5)], "tools.0.custom.description: Input should be a valid string"),
        (
            [{"name": "t", "input_schema": {"type": "array"}}],
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        ([WEATHER, tool("x"), dict(WEATHER)], "tools: Tool names must be unique."),
        (
            [{"type": "web_search_20250305", "name": "web_search"}],
            f"tools.0: Input tag 'web_search_20250305' {TAGS} 'custom' "
            "(server tools are not supported on this model)",
        ),
    ],
)
def test_tool_errors(profile: Profile, counter: TokenCounter, tools: Any, message: str) -> None:
    assert_invalid(rejected(ok_body(tools=tools), profile, counter), message)


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "auto"},
        {"type": "any"},
        {"type": "tool", "name": "get_weather"},
        {"type": "none"},
        {"type": "auto", "disable_parallel_tool_use": True},
    ],
)
def test_tool_choice_forms(profile: Profile, counter: TokenCounter, choice: dict[str, Any]) -> None:
    checked = rules.check(req(ok_body(tools=[WEATHER], tool_choice=choice)), profile, counter)
    assert checked.tool_choice == choice and checked.tools == (WEATHER,)


@pytest.mark.parametrize(
    ("choice", "tools", "message"),
    [
        (
            {"type": "sometimes"},
            [WEATHER],
            f"tool_choice: Input tag 'sometimes' {TAGS} 'any', 'auto', 'none', 'tool'",
        ),
        ({"type": "tool"}, [WEATHER], "tool_choice.tool.name: Field required"),
        (
            {"type": "tool", "name": "nope"},
            [WEATHER],
            "tool_choice.tool.name: Tool 'nope' not found in `tools`",
        ),
        ({"type": "any"}, None, "tool_choice: tool_choice of type 'any' requires `tools`"),
        (
            {"type": "auto", "disable_parallel_tool_use": "yes"},
            [WEATHER],
            "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean",
        ),
        (
            "auto",
            [WEATHER],
            "tool_choice: Input should be a valid dictionary or object to extract fields from",
        ),
    ],
)
def test_tool_choice_errors(
    profile: Profile, counter: TokenCounter, choice: Any, tools: Any, message: str
) -> None:
    assert_invalid(rejected(ok_body(tools=tools, tool_choice=choice), profile, counter), message)


def test_tools_switched_off_by_profile(profile: Profile, counter: TokenCounter) -> None:
    err = rejected(ok_body(tools=[WEATHER]), variant(profile, tools=False), counter)
    assert_invalid(err, "tools: this model does not support tool use")
