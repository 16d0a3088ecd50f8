"""The cassette schema: the shipped cassettes match it, the documented shape passes, and
each malformed part is found where it is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mockserver.contract import validation

REPO = Path(__file__).resolve().parents[3]
REQUEST: dict[str, Any] = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


# --- cassettes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "cassettes").glob("*.yaml")), ids=lambda f: f.name)
def test_shipped_cassettes_match_the_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert list(validation.schema_violations("cassette", data, "cassette.schema")) == []


CASSETTE: dict[str, Any] = {
    "version": 1,
    "meta": {"anything": {"goes": [1, 2]}},
    "interactions": [
        {
            "request": {"method": "POST", "path": "/v1/messages", "headers": {}, "body": REQUEST},
            "response": {
                "status": 200,
                "headers": {"content-type": "text/event-stream; charset=utf-8"},
                "events": [
                    {"event": "message_start", "data": {"type": "message_start"}, "at_ms": 1.5},
                    {
                        "event": "ping",
                        "data": '{"type": "ping"}',
                        "raw": 'event: ping\ndata: {"type": "ping"}\n\n',
                    },
                ],
                "tail": "\n",
                "disconnected": True,
            },
            "error": "upstream_error",
        }
    ],
}


def _cassette_paths(data: Any) -> set[str]:
    return {x.path for x in validation.schema_violations("cassette", data, "cassette.schema")}


def test_cassette_schema_accepts_the_documented_shape() -> None:
    assert _cassette_paths(CASSETTE) == set()


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda c: c.update(version=2), "$.version"),
        (lambda c: c.pop("interactions"), "$"),
        (
            lambda c: c["interactions"][0]["response"].update(status=700),
            "$.interactions[0].response.status",
        ),
        (lambda c: c["interactions"][0]["response"].update(body={}), "$.interactions[0].response"),
        (
            lambda c: c["interactions"][0]["response"]["events"][0].pop("data"),
            "$.interactions[0].response.events[0]",
        ),
        (
            lambda c: c["interactions"][0]["request"].update(path="v1/messages"),
            "$.interactions[0].request.path",
        ),
        (
            lambda c: c["interactions"][0]["request"].update(method="FETCH"),
            "$.interactions[0].request.method",
        ),
        (
            lambda c: c["interactions"][0]["response"].update(headers={"x": 1}),
            "$.interactions[0].response.headers.x",
        ),
    ],
)
def test_cassette_schema_rejects(edit: Any, path: str) -> None:
    data = copy.deepcopy(CASSETTE)
    edit(data)
    assert path in _cassette_paths(data)


def test_response_needs_a_body_or_events_unless_disconnected() -> None:
    data = copy.deepcopy(CASSETTE)
    response = data["interactions"][0]["response"]
    del response["events"]
    assert _cassette_paths(data) == set()  # disconnected before any event
    response["disconnected"] = False
    found = _cassette_paths(data)
    assert found and all(x.startswith("$.interactions[0].response") for x in found)
