"""Helpers of the request-check tests (``test_rules*.py``): requests, bodies, expected errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import Profile
from mockserver.server.checks import body as rules
from mockserver.wire import protocol as p
from mockserver.wire.errors import ApiError
from mockserver.wire.request import ApiRequest

MODEL = "deepseek-v3-anthropic"
HEADERS = {p.H_API_KEY: "sk-test", p.H_VERSION: "2023-06-01"}


def variant(profile: Profile, **changes: Any) -> Profile:
    return dataclasses.replace(profile, **changes)


def req(
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = p.PATH_MESSAGES,
) -> ApiRequest:
    return ApiRequest(
        method="POST",
        path=path,
        query="",
        headers=HEADERS if headers is None else headers,
        body=body,
    )


def ok_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(extra)
    return body


def raises(fn: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn()
    return info.value


def rejected(body: Any, profile: Profile, counter: TokenCounter, **kw: Any) -> ApiError:
    return raises(lambda: rules.check(req(body, **kw), profile, counter))


def assert_invalid(err: ApiError, message: str) -> None:
    assert (err.status, err.error_type, err.message) == (400, p.INVALID_REQUEST, message)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(id_: str, name: str = "get_weather", **inp: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": inp}


def tool_result(id_: str, content: Any = "ok") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id_, "content": content}


WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
