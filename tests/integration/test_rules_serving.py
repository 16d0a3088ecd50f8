"""Scripted replies served: the official SDK through a two-step tool loop (sync, async,
stream), regex captures and tool results in templates, ``replies`` and ``times``, a fault rule
the SDK retries, precedence against cassettes and synth, the admin API, bad files at startup,
misbehaving rules in the journal, and ``rules from-cassette`` round trip."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from mockserver.config import Settings
from mockserver.contract import conformance as c
from mockserver.server.running import ServerThread
from mockserver.sources.rules.spec import parse_rule
from mockserver.wire import protocol as p
from mockserver.wire.sse import decode_all

MODEL = "deepseek-v3-anthropic"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
AGENT_RULES = {
    "version": 1,
    "rules": [
        {
            "name": "weather-call",
            "when": {"last_user": {"regex": r"weather in (\w+)"}, "tools": ["get_weather"]},
            "reply": {
                "content": [
                    {"text": "Checking the weather in {{ match[1] }}."},
                    {"tool_use": {"name": "get_weather", "input": {"city": "{{ match[1] }}"}}},
                ]
            },
        },
        {
            "name": "final-answer",
            "when": {"tool_result": {"name": "get_weather"}},
            "reply": {
                "content": [{"text": "It is {{ tool_result }} in the city, turn {{ turn }}."}]
            },
        },
        {
            "name": "structured",
            "when": {"last_user": {"contains": "as JSON"}},
            "reply": {"json": {"name": "Ada", "age": 36}},
        },
        {
            "name": "busy",
            "when": {"last_user": {"regex": "^retry"}},
            "reply": {"error": "overloaded;retry_after_ms=1"},
            "times": 1,
        },
        {
            "name": "counting",
            "when": {"last_user": {"equals": "count"}},
            "replies": [
                {"content": [{"text": "one"}]},
                {"content": [{"text": "two"}]},
                {"content": [{"text": "many"}]},
            ],
        },
    ],
}


def write_rules(folder: Path, data: dict[str, Any] = AGENT_RULES, name: str = "agent.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    thread = ServerThread(
        Settings(port=0, mode="synth", rule_files=(write_rules(tmp_path),))
    ).start()
    try:
        yield thread
    finally:
        thread.stop()


def client(server: ServerThread, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-rules", **kw)


def journal(server: ServerThread) -> list[Any]:
    assert server.state is not None
    return [ex for ex in server.state.journal.all() if ex.path == p.PATH_MESSAGES]


def call(
    server: ServerThread, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http_client(host, int(port))
    headers = {
        "x-api-key": "k",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def http_client(host: str, port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(host, port, timeout=30)


# --- the SDK through a scripted agent loop --------------------------------------------------


def test_two_step_tool_loop_sync_and_streamed(server: ServerThread) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Lisbon?"}]
    with client(server) as cl:
        first = cl.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
        assert first.stop_reason == "tool_use"
        text, call = first.content
        assert text.text == "Checking the weather in Lisbon."  # type: ignore[union-attr]
        assert call.type == "tool_use" and call.input == {"city": "Lisbon"}
        messages += [
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21°C"}],
            },
        ]
        with cl.messages.stream(
            model=MODEL, max_tokens=200, messages=messages, tools=[WEATHER]
        ) as stream:  # type: ignore[list-item]
            final = stream.get_final_message()
    assert final.content[0].text == "It is 21°C in the city, turn 2."  # type: ignore[union-attr]
    first_ex, second_ex = journal(server)
    assert (first_ex.source, first_ex.rule, second_ex.rule) == (
        "rule",
        "weather-call",
        "final-answer",
    )
    usage = first_ex.usage or {}
    assert usage["output_tokens"] > 0 and usage["input_tokens"] > 0  # the tokenizer's counts
    assert first_ex.cost_usd not in (None, "0") and first_ex.violations == []


def test_async_client_and_the_reply_headers(server: ServerThread) -> None:
    async def main() -> tuple[Any, Any]:
        async with anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k") as cl:
            raw = await cl.messages.with_raw_response.create(
                model=MODEL,
                max_tokens=50,
                messages=[{"role": "user", "content": "give it as JSON"}],
            )
            return raw, await raw.parse()

    raw, message = asyncio.run(main())
    assert raw.headers[p.H_SOURCE] == "rule" and float(raw.headers[p.H_COST]) > 0
    assert json.loads(message.content[0].text) == {"name": "Ada", "age": 36}


def test_replies_in_order_the_last_repeating(server: ServerThread) -> None:
    with client(server) as cl:
        texts = [
            cl.messages.create(
                model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "count"}]
            )
            .content[0]
            .text  # type: ignore[union-attr]
            for _ in range(4)
        ]
    assert texts == ["one", "two", "many", "many"]


def test_a_fault_rule_answers_once_and_the_sdk_retries(server: ServerThread) -> None:
    with client(server, max_retries=2) as cl:
        msg = cl.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "retry please"}]
        )
    assert msg.content[0].text.startswith("Mock reply to: retry please")  # type: ignore[union-attr]
    failed, answered = journal(server)
    assert (failed.status, failed.source, failed.rule) == (529, "rule", "busy")
    assert answered.source == "synth" and answered.headers["x-stainless-retry-count"] == "1"


def test_scripted_text_gets_stop_sequences_max_tokens_and_header_faults(
    server: ServerThread,
) -> None:
    ask = [{"role": "user", "content": "What's the weather in Porto?"}]
    with client(server) as cl:
        stopped = cl.messages.create(
            model=MODEL, max_tokens=200, messages=ask, tools=[WEATHER], stop_sequences=["weather"]
        )  # type: ignore[list-item]
        assert stopped.stop_reason == "stop_sequence" and stopped.content[0].text == "Checking the "  # type: ignore[union-attr]
        cut = cl.messages.create(model=MODEL, max_tokens=2, messages=ask, tools=[WEATHER])  # type: ignore[list-item]
        assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
        with pytest.raises(anthropic.APIStatusError) as info:
            cl.with_options(max_retries=0).messages.create(
                model=MODEL,
                max_tokens=200,
                messages=ask,
                tools=[WEATHER],  # type: ignore[list-item]
                extra_headers={p.H_FAULT: "api_error"},
            )
    assert info.value.status_code == 500


@pytest.mark.parametrize("stream", [False, True])
def test_every_rule_reply_passes_the_grammar_and_schemas(
    server: ServerThread, stream: bool
) -> None:
    asks = ["What's the weather in Rome?", "give it as JSON", "count"]
    for text in asks:
        body = {
            "model": MODEL,
            "max_tokens": 200,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
            "tools": [WEATHER],
        }
        status, headers, data = call(server, "POST", p.PATH_MESSAGES, body)
        assert status == 200 and headers[p.H_SOURCE] == "rule"
        if stream:
            assert c.check_sse_bytes(data) == [], data[:400]
            events, _ = decode_all(data)
            starts = sum(e.name == "content_block_start" for e in events)
            deltas = sum(e.name == "content_block_delta" for e in events)
            assert starts >= 1 and deltas >= starts  # every block carries its content in deltas
        else:
            assert c.check_message(json.loads(data)) == []


def test_a_misbehaving_rule_is_served_as_written_and_its_violations_journaled(
    server: ServerThread,
) -> None:
    assert server.state is not None
    server.state.rules.add(
        [
            parse_rule(
                {
                    "name": "rogue",
                    "when": {"last_user": {"contains": "rogue"}},
                    "reply": {
                        "content": [
                            {"tool_use": {"name": "delete_everything", "input": {}}},
                            {"tool_use": {"name": "get_weather", "input": {"town": 5}}},
                        ]
                    },
                },
                "api",
                "api",
            )
        ]
    )
    with client(server) as cl:
        msg = cl.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "go rogue"}],
            tools=[WEATHER],
        )  # type: ignore[list-item]
    assert [b.name for b in msg.content] == ["delete_everything", "get_weather"]  # type: ignore[union-attr]
    (ex,) = journal(server)
    rules = [v["rule"] for v in ex.violations]
    assert rules == ["tool_use.not_offered", "tool_use.input_schema"], ex.violations


def test_auto_input_fits_the_schema_and_a_template_that_breaks_is_a_500_naming_the_rule(
    server: ServerThread,
) -> None:
    assert server.state is not None
    strict = {
        "name": "book",
        "input_schema": {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date"},
                "seats": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["when", "seats"],
            "additionalProperties": False,
        },
    }
    server.state.rules.add(
        [
            parse_rule(
                {
                    "name": "auto-call",
                    "when": {"last_user": {"contains": "book"}},
                    "reply": {"content": [{"tool_use": {"name": "book", "input": "auto"}}]},
                },
                "api",
                "api",
            ),
            parse_rule(
                {
                    "name": "escape",
                    "when": {"last_user": {"contains": "escape"}},
                    "reply": {"content": [{"text": "{{ last_user.__class__.__mro__ }}"}]},
                },
                "api",
                "api",
            ),
        ]
    )
    with client(server, max_retries=0) as cl:
        msg = cl.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "book a table"}],
            tools=[strict],  # type: ignore[list-item]
        )
        call_block = msg.content[0]
        assert call_block.type == "tool_use" and set(call_block.input) == {"when", "seats"}
        with pytest.raises(anthropic.InternalServerError) as info:
            cl.messages.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "escape"}]
            )
    assert "rule 'escape': template failed" in str(info.value)
    assert "unsafe" in str(info.value)  # the sandbox refused: no Python object reached
    booked, escaped = journal(server)
    assert booked.violations == [] and escaped.status == 500
    assert call(server, "GET", "/_mockserver/health")[0] == 200  # and the server is up


# --- precedence --------------------------------------------------------------------------------


def test_precedence_cassette_then_rules_then_the_modes_fallback(tmp_path: Path) -> None:
    text_rules = {
        "version": 1,
        "rules": [
            {
                "name": "hello",
                "when": {"last_user": {"contains": "hello"}},
                "reply": {"content": [{"text": "scripted hello"}]},
            },
            {
                "name": "fallback-probe",
                "when": {"last_user": {"equals": "Say hello in one short sentence."}},
                "reply": {"content": [{"text": "rule"}]},
            },
        ],
    }
    files = (write_rules(tmp_path, text_rules),)
    shipped = "Say hello in one short sentence."  # in the shipped cassettes (text.yaml)
    for mode, scripted, other in (
        ("auto", "rule", "synth"),
        ("replay", "rule", "unmatched"),
        ("synth", "rule", "synth"),
    ):
        thread = ServerThread(Settings(port=0, mode=mode, rule_files=files)).start()
        try:
            sources, statuses = [], []
            for text in (shipped, "well hello there", "nothing matches this"):
                status, headers, _ = call(
                    thread,
                    "POST",
                    p.PATH_MESSAGES,
                    {
                        "model": MODEL,
                        "max_tokens": 256,
                        "messages": [{"role": "user", "content": text}],
                    },
                )
                sources.append(headers[p.H_SOURCE])
                statuses.append(status)
            cassette_first = "replay" if mode != "synth" else "rule"
            assert sources == [cassette_first, scripted, other], (mode, sources)
            assert statuses == [200, 200, 404 if mode == "replay" else 200]
        finally:
            thread.stop()


def test_a_replay_miss_names_the_closest_rules(tmp_path: Path) -> None:
    files = (write_rules(tmp_path),)
    thread = ServerThread(Settings(port=0, mode="replay", rule_files=files)).start()
    try:
        status, headers, data = call(
            thread,
            "POST",
            p.PATH_MESSAGES,
            {
                "model": MODEL,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "weather please"}],
                "tools": [WEATHER],
            },
        )
    finally:
        thread.stop()
    assert status == 404 and headers[p.H_SHOULD_RETRY] == "false"
    message = json.loads(data)["error"]["message"]
    assert "No rule answers it; closest: rule 'weather-call': last_user does not match" in message


def test_record_mode_forwards_everything(tmp_path: Path) -> None:
    upstream = ServerThread(Settings(port=0, mode="synth")).start()
    recorder = ServerThread(
        Settings(
            port=0,
            mode="record",
            upstream=upstream.base_url,
            cassettes=tmp_path / "rec",
            rule_files=(write_rules(tmp_path),),
        )
    ).start()
    try:
        _, headers, _ = call(
            recorder,
            "POST",
            p.PATH_MESSAGES,
            {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "count"}]},
        )
        assert headers[p.H_SOURCE] == "record"
    finally:
        recorder.stop()
        upstream.stop()


# --- the admin API and files ---------------------------------------------------------------------


def test_admin_api_adds_lists_and_deletes(server: ServerThread) -> None:
    base = f"{p.ADMIN_PREFIX}/rules"
    status, _, data = call(server, "GET", base)
    listed = json.loads(data)["rules"]
    assert status == 200 and [r["name"] for r in listed][:2] == ["weather-call", "final-answer"]
    one = {
        "name": "pong",
        "when": {"last_user": {"equals": "ping"}},
        "reply": {"content": [{"text": "pong"}]},
    }
    status, _, data = call(server, "POST", base, one)
    assert status == 200 and json.loads(data)["rules"][0]["origin"] == "api"
    status, _, data = call(
        server,
        "POST",
        base,
        {
            "rules": [
                {**one, "name": "pong2"},
                {"name": "bad", "when": {"turn": "x"}, "reply": {"json": 1}},
            ]
        },
    )
    assert status == 400 and "rule 'bad': when.turn" in json.loads(data)["error"]["message"]
    status, _, data = call(server, "POST", base, one)  # the name is taken
    assert status == 400 and "a rule of this name exists" in json.loads(data)["error"]["message"]
    with client(server) as cl:
        assert (
            cl.messages.create(
                model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "ping"}]
            )
            .content[0]
            .text
            == "pong"
        )  # type: ignore[union-attr]
    listed = json.loads(call(server, "GET", base)[2])["rules"]
    assert {r["name"]: r["answered"] for r in listed}["pong"] == 1
    assert call(server, "DELETE", f"{base}/pong")[0] == 200
    assert call(server, "DELETE", f"{base}/pong")[0] == 404
    status, _, data = call(server, "DELETE", base)
    assert status == 200 and json.loads(data)["deleted"] == len(AGENT_RULES["rules"])
    status, _, data = call(server, "POST", f"{p.ADMIN_PREFIX}/reload")  # the files come back
    assert status == 200 and json.loads(data)["reloaded"]["rules"] == len(AGENT_RULES["rules"])


def test_a_bad_rules_file_at_startup_is_exit_2_naming_file_rule_field(tmp_path: Path) -> None:
    bad = write_rules(
        tmp_path,
        {
            "version": 1,
            "rules": [
                {"name": "oops", "when": {"last_user": {"regex": "(["}}, "reply": {"json": 1}}
            ],
        },
        "bad.yaml",
    )
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--rules", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith(
        f"mockserver: error: {bad}: rule 'oops': when.last_user.regex: not a regular expression"
    )
    assert "Traceback" not in done.stderr


def test_from_cassette_reproduces_the_recorded_content(tmp_path: Path) -> None:
    from mockserver.config import default_cassettes_dir

    cassette = default_cassettes_dir() / "parallel-tools.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mockserver",
            "rules",
            "from-cassette",
            str(cassette),
            "--interaction",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rules_file = tmp_path / "from.yaml"
    rules_file.write_text(done.stdout)
    lint = subprocess.run(
        [sys.executable, "-m", "mockserver", "rules", "lint", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout
    recorded = yaml.safe_load(cassette.read_text())["interactions"][0]
    request = recorded["request"]["body"]
    replayer = ServerThread(Settings(port=0, mode="replay", cassettes=cassette)).start()
    scripted = ServerThread(Settings(port=0, mode="synth", rule_files=(rules_file,))).start()
    try:
        replayed = json.loads(
            call(replayer, "POST", p.PATH_MESSAGES, {**request, "stream": False})[2]
        )
        status, headers, data = call(
            scripted, "POST", p.PATH_MESSAGES, {**request, "stream": False}
        )
    finally:
        replayer.stop()
        scripted.stop()
    assert status == 200 and headers[p.H_SOURCE] == "rule"
    strip = lambda blocks: [{k: v for k, v in b.items() if k != "id"} for b in blocks]  # noqa: E731
    assert strip(json.loads(data)["content"]) == strip(replayed["content"])
