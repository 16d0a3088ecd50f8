"""Request checks on the model, max_tokens and the context window (the real endpoint's
errors in both dialects), and the checked request and count_tokens they produce."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from checks_cases import (
    MODEL,
    WEATHER,
    assert_invalid,
    ok_body,
    raises,
    rejected,
    req,
    variant,
)

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import Profile
from mockserver.server.checks import body as rules
from mockserver.wire import protocol as p
from mockserver.wire.errors import error_body
from mockserver.wire.request import CheckedRequest

# --- auth and version -------------------------------------------------------------------


# --- model, max_tokens, context window --------------------------------------------------


def test_unknown_model_404_or_mapped(profile: Profile, counter: TokenCounter) -> None:
    err = rejected(ok_body(model="claude-sonet-4-5"), profile, counter)
    assert (err.status, err.error_type, err.message) == (
        404,
        p.NOT_FOUND,
        "model: claude-sonet-4-5",
    )
    mapped = rules.check(
        req(ok_body(model="claude-sonet-4-5")), variant(profile, unknown_model="map"), counter
    )
    assert (mapped.model, mapped.requested_model) == (MODEL, "claude-sonet-4-5")


def test_max_tokens_over_the_limit(profile: Profile, counter: TokenCounter) -> None:
    err = rejected(ok_body(max_tokens=10_000), profile, counter)
    assert_invalid(
        err,
        "max_tokens: 10000 > 8192, which is the maximum allowed number of output tokens for "
        "deepseek-v3-anthropic",
    )
    assert (
        err.deepseek_message
        == "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"
    )
    assert rules.check(req(ok_body(max_tokens=8192)), profile, counter).max_tokens == 8192
    clamping = variant(profile, max_tokens_over_limit="clamp")
    assert rules.check(req(ok_body(max_tokens=64_000)), clamping, counter).max_tokens == 8192


def long_body(n_chars: int, **extra: Any) -> dict[str, Any]:
    # varied text (no long repeats that collapse into few tokens)
    words = [f"w{k * 7919 % 100_003}" for k in range(n_chars // 6)]
    return ok_body(messages=[{"role": "user", "content": " ".join(words)[:n_chars]}], **extra)


def test_prompt_over_the_window_gets_the_context_error(
    profile: Profile, counter: TokenCounter
) -> None:
    body = long_body(300_000)
    n = counter.request(body)
    assert n > profile.context_window
    err = rejected(body, profile, counter)
    assert_invalid(err, f"prompt is too long: {n} tokens > 65536 maximum")
    assert err.deepseek_message == (
        f"This model's maximum context length is 65536 tokens. However, you requested {n + 256} "
        f"tokens ({n} in the messages, 256 in the completion). Please reduce the length of the "
        "messages or completion."
    )


def test_context_rule_prompt_plus_max_tokens(profile: Profile, counter: TokenCounter) -> None:
    body = long_body(40_000, max_tokens=8000)
    n = counter.request(body)
    window = n + 4000  # prompt fits, prompt + max_tokens does not
    prompt_only = variant(profile, context_window=window)
    assert rules.check(req(body), prompt_only, counter).input_tokens == n
    plus = variant(profile, context_window=window, context_rule="prompt_plus_max_tokens")
    err = rejected(body, plus, counter)
    assert_invalid(
        err,
        f"input length and `max_tokens` exceed context limit: {n} + 8000 > {window}, "
        "decrease input length or `max_tokens` and try again",
    )
    assert err.deepseek_message == (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{n + 8000} tokens ({n} in the messages, 8000 in the completion). Please reduce the "
        "length of the messages or completion."
    )
    # the clamped max_tokens is what the rule adds
    clamp = variant(plus, max_tokens_over_limit="clamp", max_output_tokens=1000)
    assert rules.check(req(body), clamp, counter).max_tokens == 1000


@pytest.mark.parametrize("dialect", ["anthropic", "deepseek"])
def test_both_dialects_render(profile: Profile, counter: TokenCounter, dialect: str) -> None:
    deepseek = variant(profile, dialect=dialect, context_rule="prompt_plus_max_tokens")
    err = rejected(long_body(300_000), deepseek, counter)
    wording = (
        err.deepseek_message if dialect == "deepseek" and err.deepseek_message else err.message
    )
    body = error_body(dialect, err.error_type, wording, "req_1")
    if dialect == "deepseek":
        assert body["error"]["message"].startswith("This model's maximum context length is 65536")
        assert body["error"]["type"] == p.INVALID_REQUEST and "request_id" not in body
    else:
        assert body["error"]["message"].startswith("prompt is too long: ")
        assert body["type"] == "error" and body["request_id"] == "req_1"


# --- checked request and count_tokens ---------------------------------------------------


def test_checked_request_fields(profile: Profile, counter: TokenCounter) -> None:
    body = ok_body(stream=True, tools=[WEATHER], tool_choice={"type": "any"})
    checked = rules.check(req(body), profile, counter)
    assert checked == CheckedRequest(
        body=body,
        model=MODEL,
        max_tokens=256,
        input_tokens=counter.request(body),
        stream=True,
        tools=(WEATHER,),
        tool_choice={"type": "any"},
        requested_model=MODEL,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.model = "x"  # type: ignore[misc]


def test_count_tokens(profile: Profile, counter: TokenCounter) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "tools": [WEATHER]}
    r = req(body, path=p.PATH_COUNT_TOKENS)
    n = rules.check_count_tokens(r, profile, counter)
    assert n == counter.request(body) > 0
    assert rules.check(r, profile, counter).input_tokens == n
    # the same prompt as a message request counts the same (usage.input_tokens agrees)
    assert rules.check(req({**body, "max_tokens": 10}), profile, counter).input_tokens == n
    # over the window is still counted, not refused
    big = long_body(300_000)
    del big["max_tokens"]
    assert rules.check_count_tokens(req(big, path=p.PATH_COUNT_TOKENS), profile, counter) > 65_536
    err = raises(
        lambda: rules.check_count_tokens(
            req({**body, "model": "claude-x"}, path=p.PATH_COUNT_TOKENS), profile, counter
        )
    )
    assert (err.status, err.message) == (404, "model: claude-x")
    err = raises(
        lambda: rules.check_count_tokens(
            req({"model": MODEL}, path=p.PATH_COUNT_TOKENS), profile, counter
        )
    )
    assert_invalid(err, "messages: Field required")
