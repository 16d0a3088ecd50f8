"""Request checks pass what real clients send: every traffic sample is accepted or refused
as the real endpoint did, and a Claude Code request passes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from checks_cases import (
    MODEL,
    assistant,
    rejected,
    req,
    text,
    tool_use,
    user,
    variant,
)

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import Profile
from mockserver.server.checks import body as rules
from mockserver.wire import protocol as p

# --- real traffic and real clients pass -------------------------------------------------

#: request samples and what the default profile (model name replaced) does with them:
#: None = accepted; otherwise the start of the 400 message.  Profile tweaks that make the
#: rejected ones pass are in ACCEPTED_WITH.
EXPECTED = {
    "051": None,
    "052": None,
    "053": None,
    "054": None,
    "055": None,
    "056": None,
    "057": "max_tokens: 64000 > 8192",
    "058": "messages.0.content.0: this model does not support image input",
    "059": None,
    "060": "tools.0: Input tag 'web_search_20250305'",
    "061": None,
    "062": None,
    "063": None,
    "064": None,
    "065": None,
}
ACCEPTED_WITH = {"057": {"max_tokens_over_limit": "clamp"}, "058": {"media_blocks": "ignore"}}
THINKING_SAMPLES = ("056", "057")


def request_samples(traffic_dir: Path, manifest: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    files = [s["file"] for s in manifest if s.get("kind") == "request"]
    return {f[:3]: json.loads((traffic_dir / f).read_text()) for f in files}


def test_every_request_sample_is_classified(
    traffic_dir: Path, traffic_manifest: list[dict[str, Any]]
) -> None:
    assert set(request_samples(traffic_dir, traffic_manifest)) == set(EXPECTED)


def test_request_samples(
    traffic_dir: Path,
    traffic_manifest: list[dict[str, Any]],
    profile: Profile,
    counter: TokenCounter,
) -> None:
    for key, sample in request_samples(traffic_dir, traffic_manifest).items():
        body = {**sample, "model": MODEL}
        expected = EXPECTED[key]
        if expected is None:
            checked = rules.check(req(body), profile, counter)
            assert checked.input_tokens == counter.request(body), key
            # with its real (claude-*) model name: 404 by default, served when mapped
            assert rejected(sample, profile, counter).status == 404, key
            mapped = rules.check(req(sample), variant(profile, unknown_model="map"), counter)
            assert mapped.model == MODEL, key
        else:
            err = rejected(body, profile, counter)
            assert err.status == 400 and err.message.startswith(expected), (key, err.message)
            if key in ACCEPTED_WITH:
                assert rules.check(req(body), variant(profile, **ACCEPTED_WITH[key]), counter), key
        if key in THINKING_SAMPLES:
            err = rejected(
                body, variant(profile, thinking="reject", max_tokens_over_limit="clamp"), counter
            )
            assert err.message == "thinking: extended thinking is not supported on this model", key


def claude_code_body(max_tokens: int = 8192) -> dict[str, Any]:
    """The shape of what Claude Code 2.1 sends (CLIENTS.md §5, §11), second turn of a Read."""
    names = [
        "Agent",
        "Bash",
        "CronCreate",
        "CronDelete",
        "CronList",
        "Edit",
        "EnterWorktree",
        "ExitWorktree",
        "NotebookEdit",
        "Read",
        "ReportFindings",
        "ScheduleWakeup",
        "SendMessage",
        "Skill",
        "TaskCreate",
        "TaskGet",
        "TaskList",
        "TaskOutput",
        "TaskStop",
        "TaskUpdate",
        "WebFetch",
        "WebSearch",
        "Workflow",
        "Write",
    ]
    tools = [
        {
            "name": name,
            "description": f"The {name} tool. "
            + ("Long workflow guidance. " * 700 if name == "Workflow" else "Does one thing well."),
            "input_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "file_path": {"description": "The absolute path", "type": "string"},
                    "offset": {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
                    "limit": {"type": "integer", "exclusiveMinimum": 0},
                },
                "required": ["file_path"],
                "additionalProperties": False,
            },
        }
        for name in names
    ]
    ephemeral = {"type": "ephemeral"}
    return {
        "model": MODEL,
        "messages": [
            user(
                text(
                    "<system-reminder>\n# currentDate\nToday's date is 2026-11-26.\n"
                    "</system-reminder>\n\n"
                ),
                {**text("Read hello.txt"), "cache_control": ephemeral},
            ),
            {
                "role": "system",
                "content": "Available agent types for the Agent tool:\n- claude: ..." * 50,
            },
            assistant(
                text("I'll read the file."),
                tool_use("toolu_2d629d30941b4e76a9bf1871", "Read", file_path="/tmp/x/hello.txt"),
            ),
            user(
                {
                    "tool_use_id": "toolu_2d629d30941b4e76a9bf1871",
                    "type": "tool_result",
                    "content": "1\thello from ccprobe file\n2\t",
                    "cache_control": ephemeral,
                }
            ),
        ],
        "system": [
            text("x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;"),
            {
                **text("You are a Claude agent, built on Anthropic's Claude Agent SDK."),
                "cache_control": ephemeral,
            },
            {
                **text("\nYou are an interactive agent that helps users. " * 120),
                "cache_control": ephemeral,
            },
        ],
        "tools": tools,
        "metadata": {
            "user_id": json.dumps(
                {"device_id": "ab" * 32, "account_uuid": "", "session_id": "d5838f25"}
            )
        },
        "max_tokens": max_tokens,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": True,
    }


CLAUDE_CODE_HEADERS = {
    p.H_API_KEY: "sk-test",
    p.H_VERSION: "2023-06-01",
    p.H_BETA: "claude-code-20250219,interleaved-thinking-2025-05-14,"
    "mid-conversation-system-2026-04-07",
    "x-app": "cli",
}


def test_claude_code_request_passes(profile: Profile, counter: TokenCounter) -> None:
    body = claude_code_body()
    assert len(body["tools"]) == 24
    checked = rules.check(req(body, CLAUDE_CODE_HEADERS), profile, counter)
    assert checked.stream and len(checked.tools) == 24 and checked.max_tokens == 8192
    assert 5_000 < checked.input_tokens < profile.context_window
    # the Bearer form (ANTHROPIC_AUTH_TOKEN) too
    bearer = {**CLAUDE_CODE_HEADERS, p.H_AUTHORIZATION: "Bearer sk-test"}
    del bearer[p.H_API_KEY]
    assert (
        rules.check(req(copy.deepcopy(body), bearer), profile, counter).input_tokens
        == checked.input_tokens
    )


def test_claude_code_default_max_tokens_needs_clamp(
    profile: Profile, counter: TokenCounter
) -> None:
    """Claude Code asks for max_tokens 32000 with a custom model: the default profile refuses
    it with the real message; ``max_tokens_over_limit: clamp`` serves it."""
    body = claude_code_body(max_tokens=32_000)
    err = rejected(body, profile, counter, headers=CLAUDE_CODE_HEADERS)
    assert err.message.startswith("max_tokens: 32000 > 8192")
    clamping = variant(profile, max_tokens_over_limit="clamp")
    assert rules.check(req(body, CLAUDE_CODE_HEADERS), clamping, counter).max_tokens == 8192
