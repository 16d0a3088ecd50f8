"""The official TypeScript SDK (``@anthropic-ai/sdk``) run with Node: ``node/scenarios.mjs``
plays each scenario and prints what the client saw; the journal shows what went over the wire."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clientkit import (
    API_KEY,
    BIG_PROMPT,
    FAULT_529,
    MODEL,
    PERSON_SCHEMA,
    PLAIN_PROMPT,
    RETRY_PROMPT,
    STREAM_PROMPT,
    STRUCTURED_PROMPT,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    TOOLS_PROMPT,
    calls,
    check_context_400,
    check_plain,
    check_retried_529,
    check_structured,
    check_tool_round_trip,
    reply_text,
)

from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

SCRIPT = Path(__file__).resolve().parent / "node" / "scenarios.mjs"


@pytest.fixture
def run(server: ServerThread, node_modules: Path) -> Any:
    def play(scenario: str, prompt: str) -> dict[str, Any]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "MOCKSERVER_URL": server.base_url,
            "MOCK_API_KEY": API_KEY,
            "MOCK_MODEL": MODEL,
            "MOCK_TOOLS": json.dumps(TOOL_SCHEMAS),
            "MOCK_FAULT_HEADER": p.H_FAULT,
            "MOCK_FAULT": FAULT_529,
            "MOCK_SCHEMA": json.dumps(PERSON_SCHEMA),
        }
        done = subprocess.run(
            ["node", str(SCRIPT), scenario],
            env=env,
            input=prompt,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return play


def test_plain(run: Any, server: ServerThread) -> None:
    out = run("plain", PLAIN_PROMPT)
    ex = check_plain(server, PLAIN_PROMPT, stream=False)
    assert out["text"] == reply_text(ex) and out["id"] == ex.response["id"]
    assert ex.headers[p.H_RETRY_COUNT] == "0" and ex.headers["x-stainless-lang"] == "js"


def test_stream(run: Any, server: ServerThread) -> None:
    out = run("stream", STREAM_PROMPT)
    ex = check_plain(server, STREAM_PROMPT, stream=True)
    assert len(out["pieces"]) > 1 and "".join(out["pieces"]) == out["text"] == reply_text(ex)


def test_parallel_tool_round_trip(run: Any, server: ServerThread) -> None:
    out = run("tools", TOOLS_PROMPT)
    first, last = check_tool_round_trip(server)
    assert [name for name, _ in out["calls"]] == TOOL_NAMES
    assert not first.stream and last.stream
    assert out["text"] == reply_text(last) and out["stop_reason"] == "end_turn"


def test_context_limit_is_bad_request(run: Any, server: ServerThread) -> None:
    out = run("context", BIG_PROMPT)
    ex = check_context_400(server)
    err = out["error"]
    assert err["name"] == "BadRequestError" and err["isBadRequest"] and err["status"] == 400
    assert err["message"] == ex.response["error"]["message"]
    assert err["requestID"] == ex.request_id


def test_529_is_retried(run: Any, server: ServerThread) -> None:
    out = run("retry", RETRY_PROMPT)
    ex = check_retried_529(server)
    assert out["text"] == reply_text(ex)
    assert len(calls(server)) == 2


def test_structured_output_parse_and_stream(run: Any, server: ServerThread) -> None:
    out = run("structured", STRUCTURED_PROMPT)
    assert out["parsed"] is not None and out["parsed"] == out["streamed"]
    first, second = calls(server)
    assert second.body["stream"] is True and not first.body.get("stream")
    check_structured(server, out["parsed"], ex=first)
    check_structured(server, out["streamed"], ex=second)
