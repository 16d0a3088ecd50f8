"""The pytest plugin's pure parts: the journal view's answers and the cassette names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mockserver.server.journal import Journal
from mockserver.testing.fixture_server import default_cassette, marker_cassette, safe_name
from mockserver.testing.journal_view import JournalView

TOOLS = [{"name": "get_weather", "input_schema": {}}, {"name": "get_time", "input_schema": {}}]


def add(
    journal: Journal,
    body: Any,
    *,
    path: str = "/v1/messages",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    response: Any = None,
    source: str = "replay",
) -> None:
    ex = journal.open(
        time=0.0,
        method=method,
        path=path,
        query="",
        headers=headers or {},
        body=body,
        request_id="req_1",
    )
    ex.response, ex.source = response, source


def view(journal: Journal) -> JournalView:
    return JournalView(lambda: journal)


def test_requests_are_the_messages_calls_in_order() -> None:
    journal = Journal()
    add(journal, None, path="/v1/models", method="GET")
    add(journal, {"messages": [{"role": "user", "content": "a"}]}, headers={"x-api-key": "k"})
    add(journal, {"messages": []}, path="/v1/messages/count_tokens")
    add(journal, {"messages": [{"role": "user", "content": "b"}]})
    v = view(journal)
    assert v.count == len(v) == 2
    assert [b["messages"][0]["content"] for b in v.bodies] == ["a", "b"]
    assert v.headers[0] == {"x-api-key": "***"}  # secrets masked
    assert v.last.body["messages"][0]["content"] == "b"
    assert [ex.path for ex in v.all] == [
        "/v1/models",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/messages",
    ]
    assert v.clear() == 4 and v.count == 0
    with pytest.raises(LookupError, match="no /v1/messages request"):
        _ = v.last


def test_tools_offered_calls_and_results() -> None:
    journal = Journal()
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lima"}}
    add(
        journal,
        {"tools": TOOLS, "messages": [{"role": "user", "content": "weather?"}]},
        response={"content": [{"type": "text", "text": "let me see"}, call]},
    )
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    add(
        journal,
        {
            "tools": TOOLS[:1],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result, {"type": "text", "text": "thanks"}]},
            ],
        },
        response={"content": [{"type": "text", "text": "sunny"}]},
    )
    v = view(journal)
    assert v.tools_offered(0) == ["get_weather", "get_time"]
    assert v.tools_offered() == ["get_weather"]
    assert v.tool_calls(0) == [call]
    assert v.tool_calls() == []
    assert v.tool_results(0) == []  # a plain question
    assert v.tool_results() == [result]
    assert [m["role"] for m in v.messages()] == ["user", "assistant", "user"]


def test_retries_from_the_sdk_header_or_repeated_requests() -> None:
    journal = Journal()
    a = {"messages": [{"role": "user", "content": "a"}]}
    b = {"messages": [{"role": "user", "content": "b"}]}
    for body, count in ((a, "0"), (a, "1"), (a, "2"), (b, "0"), (b, "0")):
        add(journal, body, headers={"x-stainless-retry-count": count})
    assert view(journal).retries() == 2  # the same request twice, each with count 0: not a retry

    plain = Journal()  # a client without the header: an identical request right after counts
    for body in (a, a, b, a):
        add(plain, body)
    assert view(plain).retries() == 1


def test_unmatched() -> None:
    journal = Journal()
    add(journal, {"messages": []}, source="unmatched")
    add(journal, {"messages": []}, source="replay")
    assert [ex.source for ex in view(journal).unmatched] == ["unmatched"]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("test_plain", "test_plain"),
        ("test_x[a-1]", "test_x-a-1"),
        ("test_x[a b/c]", "test_x-a_b_c"),
        ("TestGroup.test_y", "TestGroup.test_y"),
        ("test_z[..]", "test_z"),
        ("[]", "_"),
    ],
)
def test_safe_names(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_long_ids_stay_apart() -> None:
    one, two = safe_name("test_p[" + "x" * 300 + "1]"), safe_name("test_p[" + "x" * 300 + "2]")
    assert one != two and len(one) == len(two) == 120


def test_cassette_paths(tmp_path: Path) -> None:
    base = tmp_path / "cassettes"
    assert default_cassette(base, "test_app", "test_x[1]") == base / "test_app" / "test_x-1.yaml"
    assert marker_cassette(base, "test_app", "shared") == base / "test_app" / "shared.yaml"
    assert marker_cassette(base, "test_app", "shared.yml") == base / "test_app" / "shared.yml"
    assert marker_cassette(base, "test_app", "group/one") == base / "group" / "one.yaml"
    assert marker_cassette(base, "test_app", tmp_path / "abs") == tmp_path / "abs.yaml"
    with pytest.raises(ValueError, match="must not be empty"):
        marker_cassette(base, "test_app", " ")
