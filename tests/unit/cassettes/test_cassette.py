"""Cassettes: lossless YAML, header allow-list, atomic and locked writes, the library, the CLI."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from mockserver.cassettes import cassette as cas, library, parse_cache, store
from mockserver.cassettes.library import Library
from mockserver.cli import main
from mockserver.wire import sse
from mockserver.wire.errors import CassetteError

BODY = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "Hi"}],
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "deepseek-v3-anthropic",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


def req(text: str = "Hi", **headers: str) -> cas.RecordedRequest:
    body = {**BODY, "messages": [{"role": "user", "content": text}]}
    return cas.RecordedRequest("POST", "/v1/messages", dict(headers), body)


def json_inter(text: str = "Hi", body: bytes | None = None, status: int = 200) -> cas.Interaction:
    data = body if body is not None else sse.dumps(MESSAGE).encode()
    return cas.Interaction(
        req(text), cas.RecordedResponse(status, {"content-type": "application/json"}, body=data)
    )


def stream_inter(data: bytes, text: str = "Hi") -> cas.Interaction:
    events, tail = sse.decode_all(data)
    at = tuple(float(i) for i in range(len(events)))
    resp = cas.RecordedResponse(200, {}, events=tuple(events), at_ms=at, tail=tail)
    return cas.Interaction(req(text), resp)


def roundtrip(inter: cas.Interaction) -> cas.Interaction:
    (back,) = cas.loads(cas.dumps(cas.Cassette(interactions=[inter]))).interactions
    return back


# --- the format ------------------------------------------------------------------------------------


def test_every_traffic_sample_survives_a_roundtrip_byte_for_byte(traffic_dir: Path) -> None:
    samples = sorted(traffic_dir.glob("*.sse")) + sorted(traffic_dir.glob("*.json"))
    assert len(samples) > 60
    for sample in samples:
        raw = sample.read_bytes()
        inter = stream_inter(raw) if sample.suffix == ".sse" else json_inter(body=raw)
        back = roundtrip(inter)
        assert back.response.wire() == raw, sample.name
        if sample.suffix == ".sse":
            assert back.response.at_ms == inter.response.at_ms


def test_raw_is_kept_only_when_the_frame_is_not_canonical() -> None:
    canonical = sse.encode("message_stop", {"type": "message_stop"})
    padded = b'event: message_stop\ndata: {"type":"message_stop"   }\n\n'
    d = cas.response_to_dict(stream_inter(canonical + padded).response)
    assert "raw" not in d["events"][0] and d["events"][1]["raw"] == padded.decode()
    assert d["events"][0]["data"] == {"type": "message_stop"}  # parsed, for readable diffs


def test_odd_frames_survive() -> None:
    odd = (
        b": keep-alive\n\n"  # a comment before the first event
        b'data: "a json string"\n\n'  # no event name, a JSON string as data
        b"event: note\ndata: not json\n\n"
        b"event: multi\ndata: line one\ndata: line two\n\n"
        b"event: bytes\ndata: \xff\xfe\n\n"  # not UTF-8
        b'event: message_stop\ndata: {"type":"message_stop"}'  # cut: no blank line
    )
    assert roundtrip(stream_inter(odd)).response.wire() == odd


def test_json_bodies_keep_their_exact_text() -> None:
    pretty = json.dumps(MESSAGE, indent=2).encode()
    d = cas.response_to_dict(json_inter(body=pretty).response)
    assert d["body"] == MESSAGE and d["body_text"] == pretty.decode()
    compact = cas.response_to_dict(json_inter().response)
    assert "body_text" not in compact
    for body in (pretty, b"<html>Bad gateway</html>", b"\x00\xffbinary"):
        assert roundtrip(json_inter(body=body, status=502)).response.body == body


def test_headers_are_allow_listed_and_secrets_never_pass() -> None:
    headers = {
        "X-Api-Key": "sk-1",
        "Authorization": "Bearer sk-2",
        "Anthropic-Version": "2023-06-01",
        "User-Agent": "x",
        "X-Stainless-Lang": "python",
    }
    assert cas.keep_headers(headers, cas.REQUEST_HEADERS) == {"anthropic-version": "2023-06-01"}
    got = cas.keep_headers(
        {
            "Content-Type": "application/json",
            "request-id": "r",
            "anthropic-ratelimit-tokens-limit": "1",
            "retry-after-ms": "5",
            "x-should-retry": "true",
            "set-cookie": "s",
            "anthropic-organization-id": "o",
            "content-length": "9",
        },
        cas.RESPONSE_HEADERS,
        cas.RESPONSE_HEADER_PREFIXES,
    )
    assert set(got) == {
        "content-type",
        "request-id",
        "anthropic-ratelimit-tokens-limit",
        "retry-after-ms",
        "x-should-retry",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 2\ninteractions: []\n", "$.version"),
        (
            "version: 1\ninteractions:\n- request: {method: POST, path: /v1/messages}\n  response: {}\n",
            "status",
        ),
        (
            "version: 1\ninteractions: [{request: {method: POST, path: x}, response: {status: 200, body: {}}}]\n",
            "path",
        ),
        ("version: 1\ninteractions: [\n", "cannot parse"),
    ],
)
def test_invalid_cassettes_are_rejected_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(CassetteError, match=problem.replace("$", r"\$")):
        cas.loads(text, "bad.yaml")


# --- writing ------------------------------------------------------------------------------------------


def test_append_creates_then_appends_keeping_the_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    store.append(path, [json_inter("one")], name="mine")
    first = path.read_bytes()
    padded = b'event: message_stop\ndata: {"type":"message_stop" }\n\n'  # ends in a |+ block: "..."
    store.append(path, [stream_inter(padded, "two")])
    store.append(path, [json_inter("three")])
    assert path.read_bytes().startswith(first)
    c = cas.load(path)
    assert c.name == "mine"
    assert [i.request.body["messages"][0]["content"] for i in c.interactions] == [
        "one",
        "two",
        "three",
    ]
    assert c.interactions[1].response.wire() == padded
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temp or lock files left


def test_append_merges_a_hand_written_file_it_cannot_append_to(tmp_path: Path) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text(  # items indented, and another key after them: no plain append possible
        "# notes\nversion: 1\ninteractions:\n"
        "  - request: {method: POST, path: /v1/messages, body: {}}\n"
        "    response: {status: 200, body: {}}\n"
        "ignore: [$.metadata]\n"
    )
    store.append(path, [json_inter("new")])
    c = cas.load(path)
    assert c.ignore == ("$.metadata",)
    assert [i.request.body.get("messages", [{}])[0].get("content") for i in c.interactions] == [
        None,
        "new",
    ]


def test_json_cassettes_can_be_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"version": 1, "interactions": []}))
    store.append(path, [json_inter("x")])
    assert json.loads(path.read_text())["interactions"][0]["response"]["body"] == MESSAGE


def test_secrets_are_scrubbed_from_whatever_is_written(tmp_path: Path) -> None:
    leaky = json_inter("my key is sk-secret-123", body=b'{"echo":"sk-secret-123"}')
    store.append(tmp_path / "c.yaml", [leaky], secrets=["sk-secret-123"])
    text = (tmp_path / "c.yaml").read_text()
    assert "sk-secret-123" not in text and store.REDACTED in text


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"

    def work(t: int) -> None:
        for i in range(5):
            store.append(path, [json_inter(f"{t}-{i}")])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted(i.request.body["messages"][0]["content"] for i in cas.load(path).interactions)
    assert got == sorted(f"{t}-{i}" for t in range(8) for i in range(5))


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    store.append(path, [json_inter("old")])
    before = path.read_bytes()

    def broken(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        store.append(path, [json_inter("new")])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_discover_skips_hidden_and_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in (
        "b.yaml",
        "a.yml",
        "sub/c.json",
        ".a.yaml.123.tmp",
        ".hidden/x.yaml",
        "notes.txt",
        "__init__.py",
    ):
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in cas.discover(tmp_path)] == [
        "a.yml",
        "b.yaml",
        "sub/c.json",
    ]


# --- the library -------------------------------------------------------------------------------------


def test_the_library_loads_lazily_and_skips_broken_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.append(tmp_path / "good.yaml", [json_inter("a"), json_inter("b")])
    (tmp_path / "broken.yaml").write_text("version: 1\ninteractions: [\n")
    lib = Library(tmp_path)
    assert len(lib) == 0 and not lib.broken  # nothing read yet
    lib.load()
    assert len(lib) == 2 and list(lib.broken) == ["broken"]
    assert "cassette skipped" in caplog.text
    hit = lib.find("POST", "/v1/messages", {**BODY, "messages": [{"role": "user", "content": "b"}]})
    assert hit is not None and lib.interaction(hit.ref)[:2] == ("good", 1)


def test_large_libraries_use_the_parse_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv(library.CACHE_ENV, str(cache))
    monkeypatch.setattr(parse_cache, "CACHE_MIN_BYTES", 1)
    lib_dir = tmp_path / "lib"
    store.append(lib_dir / "c.yaml", [json_inter("a")])
    Library(lib_dir).load()
    assert len(list(cache.iterdir())) == 1

    def no_yaml(*args: Any, **kw: Any) -> Any:
        raise AssertionError("parsed the YAML again")

    monkeypatch.setattr(cas, "parse", no_yaml)
    warm = Library(lib_dir)
    warm.load()
    assert len(warm) == 1 and not warm.broken
    monkeypatch.undo()
    monkeypatch.setenv(library.CACHE_ENV, str(cache))
    monkeypatch.setattr(parse_cache, "CACHE_MIN_BYTES", 1)
    store.append(lib_dir / "c.yaml", [json_inter("b")])  # changed: parsed again
    changed = Library(lib_dir)
    changed.load()
    assert len(changed) == 2


def _cached_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traffic_dir: Path
) -> tuple[Path, Library]:
    monkeypatch.setenv(library.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(parse_cache, "CACHE_MIN_BYTES", 1)
    lib_dir = tmp_path / "lib"
    sample = (traffic_dir / "002-llm-sonnet45-text.sse").read_bytes()
    store.append(lib_dir / "a.yaml", [json_inter("a"), stream_inter(sample, "s"), json_inter("b")])
    store.append(lib_dir / "sub" / "b.yaml", [json_inter(f"n{i}") for i in range(5)])
    cold = Library(lib_dir)
    cold.load()
    return lib_dir, cold


def test_a_warm_library_makes_an_interaction_only_when_a_request_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traffic_dir: Path
) -> None:
    lib_dir, cold = _cached_library(tmp_path, monkeypatch, traffic_dir)
    warm = Library(lib_dir)
    warm.load()
    assert len(warm) == len(cold) == 8 and not warm.broken

    def made() -> int:
        return sum(c.interactions.made() for c in warm.cassettes)  # type: ignore[attr-defined]

    assert made() == 0  # a warm start builds no interaction
    ask = {**BODY, "messages": [{"role": "user", "content": "s"}]}
    hit = warm.find("POST", "/v1/messages", ask)
    assert hit is not None and made() == 0  # matching needs the keys only
    name, pos, inter = warm.interaction(hit.ref)
    assert (name, pos) == ("a", 1) and made() == 1
    assert inter is warm.interaction(hit.ref)[2]  # made once, then kept
    # the same interaction, to the byte, as the cold load made it from the YAML
    assert cas.interaction_to_dict(inter) == cas.interaction_to_dict(cold.interaction(hit.ref)[2])
    assert inter.response.wire() == (traffic_dir / "002-llm-sonnet45-text.sse").read_bytes()
    near = warm.near_misses("POST", "/v1/messages", {**ask, "max_tokens": 11})
    assert near and near[0].differences and made() == 1  # requests read, not kept
    assert [i.request.body for i in cold.cassettes[1].interactions] == [
        i.request.body for i in warm.cassettes[1].interactions
    ]


def test_the_parse_cache_keeps_keys_per_ignore_list_and_survives_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traffic_dir: Path
) -> None:
    lib_dir, _ = _cached_library(tmp_path, monkeypatch, traffic_dir)
    (cache_file,) = (tmp_path / "cache").iterdir()
    ignoring = Library(lib_dir, ignore=("$.max_tokens",))
    ignoring.load()  # keys for another ignore list: made and added to the cache
    hit = ignoring.find(
        "POST",
        "/v1/messages",
        {**BODY, "max_tokens": 99, "messages": [{"role": "user", "content": "b"}]},
    )
    assert hit is not None and ignoring.interaction(hit.ref)[:2] == ("a", 2)
    plain = Library(lib_dir)
    plain.load()
    assert plain.find("POST", "/v1/messages", {**BODY, "max_tokens": 99}) is None
    for damage in (cache_file.read_bytes()[:-10], b"not a cache", b""):
        cache_file.write_bytes(damage)  # truncated or foreign: ignored, parsed again
        again = Library(lib_dir)
        again.load()
        assert len(again) == 8 and not again.broken
        assert again.find(
            "POST", "/v1/messages", {**BODY, "messages": [{"role": "user", "content": "n3"}]}
        )


# --- the CLI ------------------------------------------------------------------------------------------


def test_cli_list_show_and_lint(
    tmp_path: Path, traffic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    sample = (traffic_dir / "002-llm-sonnet45-text.sse").read_bytes()
    store.append(path, [json_inter("Hi there"), stream_inter(sample, "tell me")])
    assert main(["cassettes", "list", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(2 interactions)" in out and "'Hi there' -> 'Hello'" in out and "stream" in out
    assert main(["cassettes", "show", str(path), "1"]) == 0
    out = capsys.readouterr().out
    assert "10 events" in out and "end_turn" in out and "[user] tell me" in out
    assert main(["cassettes", "show", str(path), "1", "--yaml"]) == 0
    assert "message_start" in capsys.readouterr().out
    assert main(["cassettes", "lint", str(path)]) == 0
    assert main(["cassettes", "lint"]) == 0  # the shipped examples
    capsys.readouterr()


def test_cli_lint_fails_on_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_message = {**MESSAGE, "stop_reason": "tool_use"}  # no tool_use block
    store.append(tmp_path / "c.yaml", [json_inter(body=sse.dumps(bad_message).encode())])
    lying = stream_inter(b'event: ping\ndata: {"type": "ping"}\n\n')
    d = cas.interaction_to_dict(lying)
    d["response"]["events"][0]["raw"] = 'event: ping\ndata: {"type": "other"}\n\n'
    (tmp_path / "raw.yaml").write_text(cas.dump_yaml({"version": 1, "interactions": [d]}))
    (tmp_path / "broken.yaml").write_text("version: 1\n")
    assert main(["cassettes", "lint", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "c.yaml#0: stop_reason.inconsistent at $.response.body.stop_reason" in out
    assert "raw.yaml#0: cassette.raw_mismatch" in out
    assert "broken.yaml" in out and "interactions" in out


def test_cli_redact_headers_paths_and_strings_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    inter = stream_inter(
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_secret"}  }\n\n'
    )
    inter.request.headers["anthropic-beta"] = "secret-beta"
    inter.request.body["metadata"] = {"user_id": "person@example.com"}
    store.append(path, [inter, json_inter("token tok_123")])
    assert (
        main(
            [
                "cassettes",
                "redact",
                str(path),
                "--header",
                "anthropic-beta",
                "--path",
                "$.request.body.metadata",
                "--path",
                "$.response.events[*].data.message.id",
                "--replace",
                '"msg_x"',
            ]
        )
        == 0
    )
    assert main(["cassettes", "redact", str(path), "--string", "tok_123"]) == 0
    text = path.read_text()
    for gone in ("secret-beta", "person@example.com", "msg_secret", "tok_123"):
        assert gone not in text
    c = cas.load(path)
    assert c.interactions[0].request.body["metadata"] == "msg_x"
    assert json.loads(c.interactions[0].response.events[0].data)["message"]["id"] == "msg_x"  # type: ignore[index]
    assert main(["cassettes", "redact", str(path)]) == 2  # nothing to do is a usage error
    capsys.readouterr()
