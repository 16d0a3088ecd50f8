"""``mockserver check``: exit codes and report text on the real traffic and on broken files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mockserver.contract import check
from mockserver.wire import sse
from mockserver.wire.streaming import unfold

REFUSAL = "023-sdkpy-opus47-refusal-stop-details.sse"

MESSAGE: dict[str, Any] = {
    "id": "msg_01abc",
    "type": "message",
    "role": "assistant",
    "model": "deepseek-v3-anthropic",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 2},
}
REQUEST: dict[str, Any] = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = check.main(argv)
    return code, capsys.readouterr().out


def stream_bytes(message: dict[str, Any] = MESSAGE) -> bytes:
    return b"".join(sse.encode(name, data) for name, data in unfold(message))


def cassette(events: list[dict[str, Any]] | None = None, **response: Any) -> dict[str, Any]:
    resp: dict[str, Any] = {"status": 200, "headers": {}}
    if events is not None:
        resp["events"] = events
    resp.update(response)
    return {
        "version": 1,
        "interactions": [
            {
                "name": "greeting",
                "request": {
                    "method": "POST",
                    "path": "/v1/messages",
                    "headers": {},
                    "body": REQUEST,
                },
                "response": resp,
            }
        ],
    }


def events_of(message: dict[str, Any] = MESSAGE) -> list[dict[str, Any]]:
    return [
        {"event": name, "data": data, "at_ms": 10.0 * i}
        for i, (name, data) in enumerate(unfold(message))
    ]


# --- the real traffic --------------------------------------------------------------------------


def test_traffic_report(
    traffic_dir: Path, traffic_manifest: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run([str(traffic_dir)], capsys)
    assert code == 1
    lines = out.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [f"FAIL  {traffic_dir / REFUSAL}  (stream)"]
    detail = lines[lines.index(failed[0]) + 1]
    assert detail.split() == [
        "event",
        "3",
        "usage.output_tokens_decreased",
        "$.usage.output_tokens",
        "output_tokens",
        "0",
        "<",
        "1",
        "(event",
        "0)",
    ]
    assert f"ok    {traffic_dir / '001-llm-claude3opus-2024-text.sse'}  (stream)" in lines
    assert f"ok    {traffic_dir / '029-docs-error-event-only.sse'}  (stream)" in lines
    assert (
        f"ok    {traffic_dir / '044-issue-413-request-too-large-edge.error.json'}  (error)" in lines
    )
    assert f"ok    {traffic_dir / '058-llm-req-image-base64.json'}  (request)" in lines
    assert f"ok    {traffic_dir / '031-pyd-sonnet45-stop-sequence.json'}  (message)" in lines
    assert f"skip  {traffic_dir / 'manifest.json'}  (not a protocol body)" in lines
    n = len(traffic_manifest)
    assert lines[-1] == f"{n} files checked: {n - 1} ok, 1 with violations (1 violation), 1 skipped"


def test_traffic_quiet_and_json(
    traffic_dir: Path, traffic_manifest: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["--quiet", str(traffic_dir)], capsys)
    assert code == 1
    assert len(out.splitlines()) == 3  # the FAIL line, its violation, the summary
    code, out = run(["--json", str(traffic_dir)], capsys)
    assert code == 1
    report = json.loads(out)
    n = len(traffic_manifest)
    assert report["summary"] == {
        "files": n,
        "ok": n - 1,
        "failed": 1,
        "violations": 1,
        "skipped": 1,
    }
    (bad,) = [f for f in report["files"] if not f["ok"]]
    assert bad["path"].endswith(REFUSAL)
    assert bad["violations"] == [
        {
            "where": "",
            "rule": "usage.output_tokens_decreased",
            "path": "$.usage.output_tokens",
            "message": "output_tokens 0 < 1 (event 0)",
            "event": 3,
        }
    ]


def test_valid_samples_named_explicitly_pass(
    traffic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [
        "022-sdkpy-sonnet37-max-tokens-truncated-tool-json.sse",
        "061-pyd-req-cache-control-system.json",
    ]
    code, out = run([str(traffic_dir / n) for n in names], capsys)
    assert code == 0, out
    assert (
        out.splitlines()[-1] == "2 files checked: 2 ok, 0 with violations (0 violations), 0 skipped"
    )


# --- broken files ---------------------------------------------------------------------------------


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "good.sse").write_bytes(stream_bytes())
    (tmp_path / "headless.sse").write_bytes(stream_bytes().split(b"\n\n", 1)[1])
    (tmp_path / "bad-request.json").write_text(json.dumps({**REQUEST, "max_tokens": 0}))
    (tmp_path / "bad.error.json").write_text(json.dumps({"error": "boom"}))
    (tmp_path / "not-json.json").write_text("{oops")
    (tmp_path / "notes.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "profile.yaml").write_text("name: x\n")
    (tmp_path / "README.md").write_text("ignored")
    sub = tmp_path / "cassettes"
    sub.mkdir()
    (sub / "good.yaml").write_text(yaml.safe_dump(cassette(events_of())))
    bad_events = events_of()
    del bad_events[-1]  # no message_stop
    bad_events[0]["raw"] = "event: message_start\ndata: {}\n\n"
    bad = cassette(bad_events)
    bad["interactions"][0]["request"]["body"] = {**REQUEST, "temperature": 9}
    bad["interactions"][0]["response"]["status"] = "200"
    (sub / "bad.yaml").write_text(yaml.safe_dump(bad))
    return tmp_path


def test_broken_files_are_reported(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run([str(broken)], capsys)
    assert code == 1
    failed = sorted(line.split()[1] for line in out.splitlines() if line.startswith("FAIL"))
    assert failed == sorted(
        str(broken / name)
        for name in (
            "headless.sse",
            "bad-request.json",
            "bad.error.json",
            "not-json.json",
            "cassettes/bad.yaml",
        )
    )
    assert f"ok    {broken / 'good.sse'}  (stream)" in out
    assert f"ok    {broken / 'cassettes' / 'good.yaml'}  (cassette)" in out
    assert f"skip  {broken / 'notes.json'}  (not a protocol body)" in out
    assert f"skip  {broken / 'profile.yaml'}  (YAML but not a cassette)" in out
    assert "README" not in out
    assert "      event 0  stream.message_start_first  $  first event is content_block_start" in out
    assert "      request.schema  $.max_tokens  0 is below the minimum 1" in out
    assert "      error.schema  $.error  expected object, got string" in out
    assert "      file.unreadable  $  not valid JSON" in out


def test_cassette_findings_name_the_interaction(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["--json", str(broken / "cassettes" / "bad.yaml")], capsys)
    assert code == 1
    (report,) = json.loads(out)["files"]
    found = {(f["where"], f["rule"], f["path"], f["event"]) for f in report["violations"]}
    assert found == {
        ("", "cassette.schema", "$.interactions[0].response.status", None),
        ("interaction 0 (greeting) request", "request.schema", "$.temperature", None),
    }
    fixed = yaml.safe_load((broken / "cassettes" / "bad.yaml").read_text())
    fixed["interactions"][0]["response"]["status"] = 200
    (broken / "cassettes" / "bad.yaml").write_text(yaml.safe_dump(fixed))
    code, out = run(["--json", str(broken / "cassettes" / "bad.yaml")], capsys)
    (report,) = json.loads(out)["files"]
    found = {(f["where"], f["rule"], f["path"], f["event"]) for f in report["violations"]}
    last = len(events_of()) - 2
    assert found == {
        ("interaction 0 (greeting) request", "request.schema", "$.temperature", None),
        ("interaction 0 (greeting) response", "stream.incomplete", "$", last),
        ("interaction 0 (greeting) response", "cassette.raw_mismatch", "$.raw", 0),
    }


def test_cassette_responses_by_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = events_of()[:4]
    cases = {
        "disconnected.yaml": cassette(cut, disconnected=True),
        "error-marked.yaml": {
            **cassette(cut),
            "interactions": [{**cassette(cut)["interactions"][0], "error": "upstream_error"}],
        },
        "json-reply.yaml": cassette(body=MESSAGE),
        "error-reply.yaml": cassette(
            status=529,
            body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
        "text-body.yaml": cassette(status=502, body_text="<html>bad gateway</html>"),
        "raw-kept.yaml": cassette(
            [
                {**e, "raw": sse.encode_raw(e["event"], sse.dumps(e["data"])[:-1] + "  }").decode()}
                for e in events_of()
            ]
        ),
        "cassette.json": cassette(body=MESSAGE),
    }
    for name, data in cases.items():
        text = json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data)
        (tmp_path / name).write_text(text)
    code, out = run(["--quiet", str(tmp_path)], capsys)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert failed == [f"FAIL  {tmp_path / 'text-body.yaml'}  (cassette)"]
    assert "response.not_json  $  the recorded 502 body is not JSON" in out


def test_unrecognized_file_named_explicitly(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run([str(broken / "notes.json"), str(broken / "good.sse")], capsys)
    assert code == 1
    assert "file.unrecognized" in out


def test_clean_directory_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reply.sse").write_bytes(stream_bytes())
    (tmp_path / "reply.json").write_text(json.dumps(MESSAGE))
    (tmp_path / "request.json").write_text(json.dumps(REQUEST))
    code, out = run([str(tmp_path)], capsys)
    assert code == 0
    assert (
        out.splitlines()[-1] == "3 files checked: 3 ok, 0 with violations (0 violations), 0 skipped"
    )


def test_missing_path_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main([str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_add_parser_wires_a_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reply.sse").write_bytes(stream_bytes())
    parser = argparse.ArgumentParser(prog="mockserver")
    check.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check", "-q", str(tmp_path)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("1 file checked: 1 ok")


def test_mockserver_cli_runs_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mockserver import cli

    (tmp_path / "bad.sse").write_bytes(b'event: ping\ndata: {"type": "ping"}\n\n')
    assert cli.main(["check", str(tmp_path)]) == 1
    assert "stream.message_start_first" in capsys.readouterr().out


# --- structured output ----------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 1},
        "day": {"type": "string", "format": "date"},
    },
    "required": ["n", "day"],
}


def structured(text: str, stream: bool, stop_reason: str = "end_turn") -> dict[str, Any]:
    reply = {**MESSAGE, "content": [{"type": "text", "text": text}], "stop_reason": stop_reason}
    if stream:
        events = [{"event": name, "data": data} for name, data in unfold(reply)]
        data = cassette(events=events)
    else:
        data = cassette(body=reply)
    data["interactions"][0]["request"]["body"] = {
        **REQUEST,
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    return data


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"n": 2, "day": "2025-01-31"}', None),
        ('{"n": 0, "day": "2025-01-31"}', "$.n: 0 is less than the minimum of 1"),
        ('{"n": 2, "day": "not a date"}', "is not a 'date'"),
        ("Sure! Here is the JSON you asked for", "not JSON"),
    ],
)
def test_check_flags_a_structured_reply_its_schema_rejects(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stream: bool,
    text: str,
    problem: str | None,
) -> None:
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(structured(text, stream)))
    code, out = run([str(path)], capsys)
    if problem is None:
        assert code == 0, out
    else:
        assert code == 1 and "structured_output.schema" in out and problem in out, out


def test_a_cut_structured_reply_is_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump(structured('{"n": 2, "da', False, stop_reason="max_tokens")))
    assert run([str(path)], capsys)[0] == 0
