"""The API's route handlers: ``POST /v1/messages`` (the source step), ``count_tokens``,
``GET /v1/models[/{id}]``; ``route`` picks one by method and path (routing looks at the path
only: a query string such as ``?beta=true`` is fine)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..profile import Profile
from ..wire import protocol as p
from ..wire.errors import ApiError
from ..wire.reply import Reply
from ..wire.request import ApiRequest
from ..wire.sse import dumps
from .checks import body as checks
from .checks.headers import check_auth, check_version
from .state import State

Handler = Callable[[State, ApiRequest], Awaitable[Reply]]
_T = TypeVar("_T")
#: bodies above this size are checked (tokenized) in a worker thread, off the event loop
LARGE_BODY_BYTES = 256 * 1024


async def messages(state: State, req: ApiRequest) -> Reply:
    assert state.source is not None
    unchecked = getattr(state.source, "reply_unchecked", None)
    if unchecked is not None:  # record modes: the upstream, not our rules, judges the request
        reply: Reply = await unchecked(req)
        return reply
    api_keys = state.settings.api_keys
    checked = req.checked
    if checked is not None:  # these bytes passed before: only the header checks can differ
        check_auth(req, api_keys)
        check_version(req, state.profile)
        return await state.source.reply(req, checked)
    # exact_tokens=False: no source reads ``input_tokens``, so only a prompt that may be near
    # the context limit is tokenized; a small body is checked here, without a coroutine more
    check = functools.partial(
        checks.check, req, state.profile, state.counter, api_keys=api_keys, exact_tokens=False
    )
    checked = await _off_loop(req, check) if req.raw_size > LARGE_BODY_BYTES else check()
    if req.raw:
        state.checked.put(req.raw, checked)
    return await state.source.reply(req, checked)


async def _off_loop(req: ApiRequest, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)``; in a worker thread for a large body, so that tokenizing a huge
    prompt (seconds for tens of MB) does not stall every other connection."""
    if req.raw_size > LARGE_BODY_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


async def count_tokens(state: State, req: ApiRequest) -> Reply:
    n = await _off_loop(
        req,
        checks.check_count_tokens,
        req,
        state.profile,
        state.counter,
        api_keys=state.settings.api_keys,
    )
    return Reply(status=200, body=dumps({"input_tokens": n}).encode(), source="synth")


def _model_json(state: State, model_id: str) -> dict[str, Any]:
    """A model as the SDKs' ``ModelInfo`` declares it, its limits and capabilities from the
    profile (what the endpoint accepts; what it cannot do is ``supported: false``)."""
    info = state.profile.model(model_id)
    assert info is not None
    return {
        "type": "model",
        "id": info.id,
        "display_name": info.display_name,
        "created_at": info.created_at,
        "max_input_tokens": state.profile.context_window,
        "max_tokens": state.profile.max_output_tokens,
        "capabilities": _capabilities(state.profile),
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": None,
    }


def _capabilities(profile: Profile) -> dict[str, Any]:
    no = {"supported": False}
    thinking_accepted = {"supported": profile.thinking == "ignore"}
    return {
        "batch": no,
        "citations": no,
        "code_execution": no,
        "context_management": {
            **no,
            "clear_thinking_20251015": no,
            "clear_tool_uses_20250919": no,
            "compact_20260112": no,
        },
        "effort": {**no, "low": no, "medium": no, "high": no, "max": no, "xhigh": no},
        "image_input": {"supported": False},
        "pdf_input": {"supported": False},
        "server_tools": {**no, "code_execution": no, "web_search": no},
        "structured_outputs": {"supported": profile.structured_output == "honor"},
        "thinking": {
            "supported": False,  # (accepted or refused by the profile: never produced)
            "types": {
                "adaptive": thinking_accepted,
                "between_tools": no,
                "disabled": {"supported": True},
                "enabled": thinking_accepted,
            },
        },
    }


def _query_int(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.invalid(f"{name}: Input should be a valid integer") from None
    if not lo <= value <= hi:
        raise ApiError.invalid(f"{name}: Input should be between {lo} and {hi}")
    return value


async def list_models(state: State, req: ApiRequest) -> Reply:
    check_auth(req, state.settings.api_keys)
    check_version(req, state.profile)
    query = dict(req.extras.get("query_params", {}))
    limit = _query_int(query, "limit", 20, 1, 1000)
    ids = [m.id for m in state.profile.models]
    start, end = 0, len(ids)
    if "after_id" in query:
        start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
    if "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
        start = max(start, end - limit)
    page = ids[start:end][:limit]
    body = {
        "data": [_model_json(state, m) for m in page],
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
        "has_more": start + len(page) < end,
    }
    return Reply(status=200, body=dumps(body).encode(), source="synth")


async def get_model(state: State, req: ApiRequest) -> Reply:
    check_auth(req, state.settings.api_keys)
    check_version(req, state.profile)
    model_id = req.path[len(p.PATH_MODELS) + 1 :]
    if state.profile.model(model_id) is None:
        raise ApiError(404, p.NOT_FOUND, f"model: {model_id}")
    return Reply(status=200, body=dumps(_model_json(state, model_id)).encode(), source="synth")


def route(method: str, path: str) -> Handler | None:
    if method == "POST":
        if path == p.PATH_MESSAGES:
            return messages
        if path == p.PATH_COUNT_TOKENS:
            return count_tokens
    elif method == "GET":
        if path == p.PATH_MODELS:
            return list_models
        if path.startswith(p.PATH_MODELS + "/") and "/" not in path[len(p.PATH_MODELS) + 1 :]:
            return get_model
    return None
