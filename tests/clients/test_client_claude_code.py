"""Claude Code (``@anthropic-ai/claude-code``) in print mode against the server.

Run as ../shared/CLIENTS.md recommends: a clean environment (``env -i``) with a fresh ``HOME``,
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` so that nothing but the server is contacted,
every model alias pointed at ``deepseek-v3-anthropic``, and ``CLAUDE_CODE_MAX_OUTPUT_TOKENS=8192``
because the CLI otherwise asks for ``max_tokens: 32000``, which this endpoint rejects (see
``test_default_max_tokens_gets_the_endpoints_400``).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clientkit import (
    API_KEY,
    BIG_PROMPT,
    FAULT_529,
    MODEL,
    calls,
    check_context_400,
    check_retried_529,
    reply_text,
)

from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

TIMEOUT = 120
HELLO = "hello from the mockserver client suite\n"


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The ``--output-format json`` result object."""
        data: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[-1])
        assert data["type"] == "result", data
        return data


def base_env(server: ServerThread, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TERM": "dumb",
        "ANTHROPIC_BASE_URL": server.base_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "CLAUDE_CODE_SUBAGENT_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "8192",
    }


class Claude:
    """``claude -p ARGS`` in a fresh HOME and a working directory holding ``hello.txt``."""

    def __init__(self, server: ServerThread, binary: Path, root: Path) -> None:
        self.server, self.binary = server, binary
        self.home, self.cwd = root / "home", root / "work"
        self.home.mkdir()
        self.cwd.mkdir()
        (self.cwd / "hello.txt").write_text(HELLO)

    def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, drop: str = ""
    ) -> Run:
        full_env = {**base_env(self.server, self.home), **(env or {})}
        full_env.pop(drop, None)
        done = subprocess.run(
            [str(self.binary), "-p", *args],
            cwd=self.cwd,
            env=full_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def claude(server: ServerThread, node_modules: Path, tmp_path: Path) -> Claude:
    binary = node_modules / ".bin" / "claude"
    assert binary.exists(), f"npm did not install the claude bin under {binary}"
    return Claude(server, binary, tmp_path)


def check_wire(server: ServerThread, n_posts: int) -> list[Any]:
    """What the CLI sends: a HEAD / preconnect (404, ignored) and ``n_posts`` streamed
    ``POST /v1/messages?beta=true`` with the body fields of CLIENTS.md; nothing else."""
    assert server.state is not None
    others = [ex for ex in server.state.journal.all() if ex.path != p.PATH_MESSAGES]
    assert [(ex.method, ex.path, ex.status) for ex in others] == [("HEAD", "/", 404)]
    posts = calls(server)
    assert len(posts) == n_posts
    for ex in posts:
        body, headers = ex.body, ex.headers
        assert ex.method == "POST" and ex.query == "beta=true" and ex.stream
        assert body["model"] == MODEL and body["max_tokens"] == 8192
        assert body["thinking"] == {"type": "adaptive"}
        assert body["context_management"]["edits"][0]["type"].startswith("clear_thinking")
        assert "effort" in body["output_config"]
        assert isinstance(json.loads(body["metadata"]["user_id"]), dict)
        assert [m["role"] for m in body["messages"][:2]] == ["user", "system"]
        assert "Read" in {t["name"] for t in body["tools"]}
        assert headers["x-app"] == "cli" and headers[p.H_VERSION] == "2023-06-01"
        assert "claude-code-20250219" in headers[p.H_BETA].split(",")
    return posts


def test_one_turn(claude: Claude, server: ServerThread) -> None:
    run = claude("Say hi", "--output-format", "json", "--allowedTools", "Read Bash")
    assert run.rc == 0, run.stderr
    res = run.result()
    (ex,) = check_wire(server, 1)
    assert res["subtype"] == "success" and not res["is_error"] and res["num_turns"] == 1
    # the <system-reminder> block Claude Code puts first is not what the user asked
    assert res["result"] == reply_text(ex) and res["result"].startswith("Mock reply to: Say hi")
    assert res["usage"]["output_tokens"] == ex.response["usage"]["output_tokens"]


def test_stream_json_shows_the_streamed_reply(claude: Claude, server: ServerThread) -> None:
    run = claude("Stream a greeting", "--output-format", "stream-json", "--verbose")
    assert run.rc == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    (ex,) = check_wire(server, 1)
    assert lines[0]["type"] == "system" and lines[0]["subtype"] == "init"
    texts = [
        block["text"]
        for line in lines
        if line["type"] == "assistant"
        for block in line["message"]["content"]
        if block["type"] == "text"
    ]
    assert "".join(texts) == reply_text(ex)
    assert lines[-1]["type"] == "result" and lines[-1]["result"] == reply_text(ex)


def test_parallel_tool_calls_run_and_return(claude: Claude, server: ServerThread) -> None:
    """``Read`` and ``TaskList`` are named, so both are called in one reply; the synthesized
    ``file_path`` is the absolute path written in the prompt, so the CLI really reads the file."""
    hello = claude.cwd / "hello.txt"
    run = claude(
        f"Use Read on {hello} and TaskList", "--output-format", "json", "--allowedTools", "Read"
    )
    assert run.rc == 0, run.stderr
    res = run.result()
    first, second = check_wire(server, 2)
    uses = [b for b in first.response["content"] if b["type"] == p.BLOCK_TOOL_USE]
    assert [(u["name"], u["input"]) for u in uses] == [
        ("Read", {"file_path": str(hello)}),
        ("TaskList", {}),
    ]
    results = {
        b["tool_use_id"]: b
        for b in second.body["messages"][-1]["content"]
        if b["type"] == p.BLOCK_TOOL_RESULT
    }
    assert set(results) == {u["id"] for u in uses}
    assert not any(r.get("is_error") for r in results.values())
    assert HELLO.strip() in str(results[uses[0]["id"]]["content"])
    assert second.response["stop_reason"] == p.STOP_END_TURN
    assert res["subtype"] == "success" and not res["is_error"]
    assert res["permission_denials"] == [] and res["result"] == reply_text(second)


def test_context_limit_is_reported(claude: Claude, server: ServerThread) -> None:
    run = claude("--output-format", "json", stdin=BIG_PROMPT)  # too long for an argument
    assert run.rc == 1
    res = run.result()
    ex = check_context_400(server)
    assert res["is_error"] and res["api_error_status"] == 400
    assert res["result"].startswith("Prompt is too long")
    assert ex.query == "beta=true"


def test_529_is_retried_by_the_cli(claude: Claude, server: ServerThread) -> None:
    """``ANTHROPIC_CUSTOM_HEADERS`` carries the fault header; the CLI retries by itself, so
    ``x-stainless-retry-count`` stays 0 on both attempts."""
    run = claude(
        "Say hello after a 529",
        "--output-format",
        "json",
        env={"ANTHROPIC_CUSTOM_HEADERS": f"{p.H_FAULT}: {FAULT_529}"},
    )
    assert run.rc == 0, run.stderr
    ex = check_retried_529(server, retry_header=False)
    first = calls(server)[0]
    assert first.headers[p.H_RETRY_COUNT] == ex.headers[p.H_RETRY_COUNT] == "0"
    assert run.result()["result"] == reply_text(ex)


def test_default_max_tokens_gets_the_endpoints_400(claude: Claude, server: ServerThread) -> None:
    """Without ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` the CLI asks for 32000 output tokens; the
    endpoint allows 8192, and the CLI shows its 400."""
    run = claude("Say hi", "--output-format", "json", drop="CLAUDE_CODE_MAX_OUTPUT_TOKENS")
    assert run.rc == 1
    res = run.result()
    (ex,) = calls(server)
    assert ex.status == 400 and ex.body["max_tokens"] == 32000
    assert res["api_error_status"] == 400
    assert "max_tokens: 32000 > 8192" in res["result"]


# --- an MCP server's tool, with and without tool search --------------------------------------

MCP_ECHO = "mcp__everything__echo"


def mcp_config(node_modules: Path, folder: Path) -> Path:
    """Claude Code's ``--mcp-config`` for the MCP reference server ``server-everything``
    (stdio, installed beside the CLI)."""
    entry = node_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    assert entry.is_file(), f"npm did not install the MCP reference server at {entry}"
    path = folder / "mcp.json"
    servers = {"everything": {"command": "node", "args": [str(entry), "stdio"]}}
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def tool_uses(ex: Any) -> list[dict[str, Any]]:
    return [b for b in ex.response["content"] if b["type"] == "tool_use"]


def last_results(ex: Any) -> list[dict[str, Any]]:
    last = [m for m in ex.body["messages"] if m["role"] == "user"][-1]
    return [b for b in last["content"] if b.get("type") == "tool_result"]


@pytest.mark.parametrize("search", ["off", "on"])
def test_an_mcp_tool_through_claude_code(
    claude: Claude, server: ServerThread, node_modules: Path, tmp_path: Path, search: str
) -> None:
    """With tool search off (Claude Code's default for a non-Anthropic base URL) the MCP tool
    is offered in full and called at once; with ``ENABLE_TOOL_SEARCH=true`` it is deferred,
    the mock calls ``ToolSearch`` to load it, then calls it: either way the MCP server answers."""
    config = mcp_config(node_modules, tmp_path)
    run = claude(
        f"Use {MCP_ECHO} to echo a greeting",
        "--output-format",
        "json",
        "--mcp-config",
        str(config),
        "--strict-mcp-config",
        "--allowedTools",
        MCP_ECHO,
        env={"ENABLE_TOOL_SEARCH": "true"} if search == "on" else {},
    )
    assert run.rc == 0, run.stderr[-2000:]
    assert run.result()["subtype"] == "success"
    posts = calls(server)
    if search == "on":
        assert len(posts) == 3, [tool_uses(ex) for ex in posts]
        load, echo, answer = posts
        offered = {t["name"] for t in load.body["tools"]}
        assert "ToolSearch" in offered and MCP_ECHO not in offered  # deferred
        (search_call,) = tool_uses(load)
        assert search_call["name"] == "ToolSearch"
        assert search_call["input"]["query"] == f"select:{MCP_ECHO}"
        (loaded,) = last_results(echo)
        assert loaded["content"][0] == {"type": "tool_reference", "tool_name": MCP_ECHO}
        assert any(t["name"] == MCP_ECHO and t.get("defer_loading") for t in echo.body["tools"])
    else:
        assert len(posts) == 2, [tool_uses(ex) for ex in posts]
        echo, answer = posts
        assert MCP_ECHO in {t["name"] for t in echo.body["tools"]}
    (call,) = tool_uses(echo)
    assert call["name"] == MCP_ECHO and isinstance(call["input"]["message"], str)
    (result,) = last_results(answer)  # what the MCP server answered, through the CLI
    text = result["content"] if isinstance(result["content"], str) else result["content"][0]["text"]
    assert text == f"Echo: {call['input']['message']}", result
    assert not result.get("is_error")


def test_every_tool_claude_code_and_an_mcp_server_offer_gets_a_valid_input(
    claude: Claude, server: ServerThread, node_modules: Path, tmp_path: Path
) -> None:
    """The real tool schemas: Claude Code's own (draft 2020-12, ``additionalProperties: false``)
    and the MCP reference server's (draft-07), as the CLI sends them: a forced call to each
    gets an input its schema accepts (checked here with the schema's own draft and formats)."""
    import jsonschema

    from mockserver.accounting.tokens import TokenCounter
    from mockserver.sources.compose import compose_message

    run = claude(
        "Say hi",
        "--output-format",
        "json",
        "--mcp-config",
        str(mcp_config(node_modules, tmp_path)),
        "--strict-mcp-config",
    )
    assert run.rc == 0, run.stderr[-2000:]
    tools = calls(server)[0].body["tools"]
    names = {t["name"] for t in tools}
    assert {"Read", "Bash", "Edit", "Write", "Agent"} <= names and MCP_ECHO in names
    assert len(tools) >= 30  # 24 of the CLI's and the MCP server's
    counter = TokenCounter()
    for tool in tools:
        schema = tool["input_schema"]
        cls = jsonschema.validators.validator_for(schema)
        check = cls(schema, format_checker=cls.FORMAT_CHECKER)
        for prompt in ("go", "edit /tmp/x/notes.md now", "search the web"):
            body = {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": [{"role": "user", "content": prompt}],
                "tools": tools,
                "tool_choice": {"type": "tool", "name": tool["name"]},
            }
            msg = compose_message(
                body,
                model=MODEL,
                max_tokens=8192,
                seed=0,
                count_output=counter.output,
                cut=counter.cut,
            )
            (call,) = msg["content"]
            assert call["name"] == tool["name"]
            errors = [e.message for e in check.iter_errors(call["input"])]
            assert not errors, (tool["name"], call["input"], errors)
