"""Calibration of token overheads on cassettes whose usage came from known overheads."""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path
from typing import Any

import pytest

from mockserver.accounting.tokens import TokenCounter, get_tokenizer
from mockserver.cassettes import calibrate, cassette
from mockserver.cassettes.calibrate import Sample, error_stats, fit, load_samples, with_overheads
from mockserver.profile import Overheads, load_profile
from mockserver.wire import sse
from mockserver.wire.streaming import UnfoldPlan, unfold

KNOWN = Overheads(per_request=6, per_message=5, per_tool=13, per_system=4)
PRIOR = load_profile().overheads  # 3 / 4 / 8 / 2
WORDS = ("book", "order", "delivery", "Bergen", "receipt", "gift", "card", "shelf", "42", "why")


@pytest.fixture(scope="module", autouse=True)
def _tokenizer() -> None:
    get_tokenizer()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_body(rng: random.Random, n_messages: int, n_tools: int, system: bool) -> dict[str, Any]:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text(rng, rng.randint(1, 40))}
        for i in range(n_messages)
    ]
    body: dict[str, Any] = {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 100,
        "messages": messages,
    }
    if n_tools:
        body["tools"] = [
            {
                "name": f"tool_{k}",
                "description": text(rng, 5),
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
            for k in range(n_tools)
        ]
    if system:
        body["system"] = text(rng, rng.randint(3, 30))
    return body


def recorded(
    body: dict[str, Any], total: int, rng: random.Random, stream: bool
) -> cassette.Interaction:
    """An interaction whose usage splits ``total`` into input, cache read and cache creation."""
    read = rng.randint(0, total // 2)
    creation = rng.randint(0, (total - read) // 3)
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": total - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "output_tokens": 1,
        },
    }
    req = cassette.RecordedRequest("POST", "/v1/messages", {}, dict(body, stream=stream))
    if stream:
        events = tuple(sse.Event(n, sse.dumps(d)) for n, d in unfold(message, UnfoldPlan()))
        resp = cassette.RecordedResponse(200, {"content-type": "text/event-stream"}, events=events)
    else:
        resp = cassette.RecordedResponse(200, {}, body=sse.dumps(message).encode())
    return cassette.Interaction(req, resp)


def write_cassettes(
    tmp: Path, over: Overheads, *, n: int = 40, seed: int = 0, noise: int = 0, **shape: Any
) -> Path:
    """Cassettes of ``n`` interactions whose usage is ``TokenCounter(over)`` (± ``noise``)."""
    rng = random.Random(seed)
    counter = TokenCounter(over)
    directory = tmp / "cassettes"
    directory.mkdir(exist_ok=True)
    per_file = 10
    for f in range(0, n, per_file):
        inters = []
        for i in range(f, min(n, f + per_file)):
            body = make_body(
                rng,
                shape.get("messages") or rng.randint(1, 9),
                shape["tools"] if "tools" in shape else rng.randint(0, 3),
                shape["system"] if "system" in shape else rng.random() < 0.6,
            )
            total = counter.request(body) + rng.randint(-noise, noise)
            inters.append(recorded(body, total, rng, stream=i % 2 == 1))
        # things calibration must skip: an error, and a count_tokens answer (by default)
        err = cassette.RecordedResponse(529, {}, body=b'{"type":"error"}')
        inters.append(
            cassette.Interaction(cassette.RecordedRequest("POST", "/v1/messages", {}, {}), err)
        )
        ct_body = make_body(rng, 1, 0, False)
        ct = cassette.RecordedResponse(200, {}, body=b'{"input_tokens": 1}')
        inters.append(
            cassette.Interaction(
                cassette.RecordedRequest("POST", "/v1/messages/count_tokens", {}, ct_body), ct
            )
        )
        (directory / f"c{f:03d}.yaml").write_text(
            cassette.dumps(cassette.Cassette(inters)), "utf-8"
        )
    return directory


def test_fit_recovers_known_overheads_exactly(tmp_path: Path) -> None:
    samples, files, skipped = load_samples([write_cassettes(tmp_path, KNOWN)])
    assert (len(samples), files, skipped) == (40, 4, 8)
    assert error_stats(samples, PRIOR)[1] > 0  # the default overheads do not fit these
    result = fit(samples, PRIOR)
    assert result.overheads == KNOWN
    assert result.kept == {}
    assert error_stats(samples, result.overheads) == (0.0, 0)


def test_fit_with_noise_is_within_one(tmp_path: Path) -> None:
    samples, _, _ = load_samples([write_cassettes(tmp_path, KNOWN, n=120, seed=1, noise=1)])
    result = fit(samples, PRIOR)
    for name in calibrate.NAMES:
        assert abs(getattr(result.overheads, name) - getattr(KNOWN, name)) <= 1, name
    mean, worst = error_stats(samples, result.overheads)
    assert mean <= 1.0 and worst <= 3


def test_an_overhead_no_request_shows_keeps_the_profile_value(tmp_path: Path) -> None:
    samples, _, _ = load_samples([write_cassettes(tmp_path, KNOWN, seed=2, tools=0)])
    result = fit(samples, PRIOR)
    assert result.overheads == Overheads(
        per_request=KNOWN.per_request,
        per_message=KNOWN.per_message,
        per_tool=PRIOR.per_tool,
        per_system=KNOWN.per_system,
    )
    assert set(result.kept) == {"per_tool"}
    assert error_stats(samples, result.overheads) == (0.0, 0)


def test_collinear_overheads_keep_the_later_one(tmp_path: Path) -> None:
    # every request has exactly one message: per_message cannot be told from per_request
    samples, _, _ = load_samples([write_cassettes(tmp_path, KNOWN, seed=3, messages=1)])
    result = fit(samples, PRIOR)
    assert "per_message" in result.kept and "per_request" in result.kept["per_message"]
    assert result.overheads.per_message == PRIOR.per_message
    assert result.overheads.per_request == KNOWN.per_request + KNOWN.per_message - PRIOR.per_message
    assert error_stats(samples, result.overheads) == (0.0, 0)


def test_overheads_stay_non_negative() -> None:
    rng = random.Random(4)
    samples = []
    for i in range(30):
        counts = (1, rng.randint(1, 8), rng.randint(0, 3), i % 2)
        actual = 100 + 2 + 5 * counts[1] + 3 * counts[2] - 4 * counts[3]  # per_system "-4"
        samples.append(Sample(f"s#{i}", 100, counts, actual))
    result = fit(samples, PRIOR)
    assert result.overheads.per_system == 0
    assert min(getattr(result.overheads, n) for n in calibrate.NAMES) >= 0


def test_stream_usage_takes_non_null_message_delta_fields() -> None:
    events = [
        sse.Event(
            "message_start",
            sse.dumps(
                {
                    "type": "message_start",
                    "message": {"usage": {"input_tokens": 5, "output_tokens": 1}},
                }
            ),
        ),
        sse.Event("ping", "{}"),
        sse.Event(
            "message_delta",
            sse.dumps(
                {
                    "type": "message_delta",
                    "usage": {
                        "output_tokens": 9,
                        "input_tokens": 7,
                        "cache_read_input_tokens": None,
                    },
                }
            ),
        ),
    ]
    usage = calibrate.stream_usage(events)
    assert usage == {"input_tokens": 7, "output_tokens": 9}
    assert (
        calibrate.total_input(
            {"input_tokens": 7, "cache_read_input_tokens": 64, "cache_creation_input_tokens": None}
        )
        == 71
    )
    assert calibrate.total_input({"output_tokens": 3}) is None


def test_count_tokens_answers_on_request(tmp_path: Path) -> None:
    directory = write_cassettes(tmp_path, KNOWN, n=10)
    assert len(load_samples([directory])[0]) == 10
    assert len(load_samples([directory], count_tokens=True)[0]) == 11


def test_command_reports_and_writes_a_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_cassettes(tmp_path, KNOWN)
    out = tmp_path / "calibrated.yaml"
    assert calibrate.main([str(directory), "--write", str(out)]) == 0
    report = capsys.readouterr().out
    assert "on 40 interaction(s) from 4 cassette file(s) (8 without usage skipped)" in report
    rows = {
        line.split()[0]: line.split()[1:] for line in report.splitlines() if line.startswith("per_")
    }
    assert rows["per_tool"] == [str(PRIOR.per_tool), str(KNOWN.per_tool)]
    mean_row = next(line for line in report.splitlines() if line.startswith("mean abs diff"))
    max_row = next(line for line in report.splitlines() if line.startswith("max abs diff"))
    assert mean_row.split()[-1] == "0.00" and float(mean_row.split()[-2]) > 0
    assert max_row.split()[-1] == "0"
    written = load_profile(str(out))
    assert written.overheads == KNOWN
    assert written.prices == load_profile().prices
    text = out.read_text("utf-8")
    assert "dialect: anthropic            # anthropic | deepseek" in text  # comments kept
    assert "fitted by mockserver cassettes calibrate on 40 interactions" in text


def test_command_without_usable_interactions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text(cassette.dumps(cassette.Cassette([])), "utf-8")
    assert calibrate.main([str(empty)]) == 1
    assert "nothing to calibrate" in capsys.readouterr().err
    assert calibrate.main([str(tmp_path / "missing")]) == 2


def test_with_overheads_fills_in_missing_keys_and_flow_style() -> None:
    base = "name: x\ntoken_overheads:\n  per_request: 1\n  per_tool: 2   # tools\nprices: {}\n"
    out = with_overheads(base, KNOWN)
    assert "  per_tool: 13   # tools\n" in out
    assert "per_message: 5" in out and "per_system: 4" in out
    assert out.endswith("prices: {}\n")
    flow = "name: x\ntoken_overheads: {per_request: 1}\n"
    assert "per_system: 4" in with_overheads(flow, KNOWN)
    assert "token_overheads:\n  per_request: 6" in with_overheads("name: x\n", KNOWN)


def test_parser_registers_under_a_subcommand() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    calibrate.add_calibrate_parser(sub)
    args = parser.parse_args(
        ["calibrate", "a.yaml", "b", "--profile", "p.yaml", "--write", "o.yaml"]
    )
    assert args.func is calibrate.run
    assert [str(x) for x in args.paths] == ["a.yaml", "b"]
    assert str(args.write) == "o.yaml" and args.profile == "p.yaml"


def test_report_table_shape() -> None:
    samples = [Sample("a#0", 10, (1, 1, 0, 0), 17), Sample("a#1", 10, (1, 2, 0, 0), 21)]
    buf = io.StringIO()
    result = fit(samples, PRIOR)
    calibrate.report(samples, PRIOR, result, buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["overhead", "before", "after"]
    assert any(line.startswith("per_tool") and "kept" in line for line in lines)


def test_cli_runs_it_as_cassettes_calibrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mockserver.cli import main

    directory = write_cassettes(tmp_path, KNOWN, n=20)
    assert (
        main(["cassettes", "calibrate", str(directory), "--profile", "deepseek-v3-anthropic"]) == 0
    )
    assert "max abs diff" in capsys.readouterr().out
    assert main(["cassettes", "calibrate", str(tmp_path / "nope")]) == 2
