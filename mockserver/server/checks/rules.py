"""Request checks that produce the endpoint's exact errors.

Order, as the real API: auth -> ``anthropic-version`` -> body shape -> fields -> model ->
limits.  Every failure is an ``ApiError`` with the Anthropic status, type and wording
(PROTOCOL.md §4.3; field errors in the API's pydantic style, ``loc: message``, with the
union tag in the location as real errors show it, e.g. ``tools.0.custom.input_schema.type``)
and, where DeepSeek words it differently, ``deepseek_message`` (§4.4).  What the profile
allows or ignores (thinking, media blocks, unknown models, max_tokens ceiling, context rule)
is read from the ``Profile``; unknown top-level fields are accepted and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...accounting.tokens import TokenCounter
from ...profile import Profile
from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.request import ApiRequest
from .wording import (
    NOT_BOOL,
    NOT_DICT,
    NOT_LIST,
    NOT_STR,
    NOT_UNION_DICT,
    as_int as _as_int,
    in_range as _range,
    invalid as _invalid,
    required as _required,
    str_field as _str_field,
    tag_error as _tag_error,
    union_tag as _union_tag,
)

TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
TOOL_USE_ID_PATTERN = "^[a-zA-Z0-9_-]+$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN[1:-1])
_TOOL_USE_ID = re.compile(TOOL_USE_ID_PATTERN[1:-1])
MAX_MESSAGES = 100_000
#: ``CheckedRequest.input_tokens`` of a request checked without counting (``exact_tokens``)
NOT_COUNTED = -1

#: request content blocks the alias knows (anything else is a tag error)
MESSAGE_BLOCKS = (
    p.BLOCK_TEXT,
    p.BLOCK_IMAGE,
    p.BLOCK_DOCUMENT,
    p.BLOCK_SEARCH_RESULT,
    p.BLOCK_THINKING,
    p.BLOCK_REDACTED_THINKING,
    p.BLOCK_TOOL_USE,
    p.BLOCK_TOOL_RESULT,
)
TOOL_RESULT_BLOCKS = (p.BLOCK_TEXT, p.BLOCK_IMAGE, p.BLOCK_DOCUMENT, p.BLOCK_SEARCH_RESULT)
TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive")
CLIENT_TOOL = "custom"
_MEDIA_WHAT = {
    p.BLOCK_IMAGE: "image input",
    p.BLOCK_DOCUMENT: "document input",
    p.BLOCK_SEARCH_RESULT: "search_result blocks",
}


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check, with what later steps need from it."""

    body: dict[str, Any]
    model: str  # the served model id (after ``unknown_model: map``)
    max_tokens: int  # effective (after ``max_tokens_over_limit: clamp``); 0 for count_tokens
    input_tokens: int  # ``TokenCounter.request(body)``; NOT_COUNTED: see ``check``
    stream: bool
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: Mapping[str, Any] | None
    requested_model: str


# --- auth and version -------------------------------------------------------------------


def _mask(key: str) -> str:
    return "****" + key[-4:] if len(key) > 8 else "****"


def check_auth(req: ApiRequest, api_keys: tuple[str, ...] = ()) -> None:
    """401 without a key (``x-api-key`` or ``Authorization: Bearer``), or with a key not in
    ``api_keys`` when that list is non-empty."""
    key = req.api_key
    if not key:
        raise ApiError(
            401,
            p.AUTHENTICATION,
            "x-api-key header is required",
            deepseek_message="Authentication Fails, no api key provided",
        )
    if api_keys and key not in api_keys:
        raise ApiError(
            401,
            p.AUTHENTICATION,
            "invalid x-api-key",
            deepseek_message=f"Authentication Fails, Your api key: {_mask(key)} is invalid",
        )


def check_version(req: ApiRequest, profile: Profile) -> None:
    """``anthropic-version``: required and one of the accepted values, unless the profile
    says it is optional (then it is ignored, as DeepSeek does)."""
    if not profile.version_required:
        return
    value = req.headers.get(p.H_VERSION, "").strip()
    if not value:
        raise _invalid("anthropic-version", "header is required")
    if profile.accepted_versions and value not in profile.accepted_versions:
        raise _invalid(
            "anthropic-version",
            f"'{value}' is not a supported version; supported versions are "
            f"{', '.join(sorted(profile.accepted_versions))}",
        )


# --- content blocks ---------------------------------------------------------------------


def _check_media(block: Mapping[str, Any], kind: str, loc: str, profile: Profile) -> None:
    if profile.media_blocks == "reject":
        raise _invalid(loc, f"this model does not support {_MEDIA_WHAT[kind]}")
    floc = f"{loc}.{kind}"
    if kind == p.BLOCK_SEARCH_RESULT:
        _str_field(block, "source", floc)
        _str_field(block, "title", floc)
        if not isinstance(_required(block, "content", floc), list):
            raise _invalid(f"{floc}.content", NOT_LIST)
    elif not isinstance(_required(block, "source", floc), dict):
        raise _invalid(f"{floc}.source", NOT_UNION_DICT)


def _check_tool_result_content(content: Any, loc: str, profile: Profile) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(loc, NOT_LIST)
    for k, block in enumerate(content):
        _check_block(block, f"{loc}.{k}", profile, TOOL_RESULT_BLOCKS)


def _check_block(
    block: Any, loc: str, profile: Profile, tags: tuple[str, ...] = MESSAGE_BLOCKS
) -> None:
    kind = _union_tag(block, loc, tags)
    floc = f"{loc}.{kind}"
    if kind == p.BLOCK_TEXT:
        _str_field(block, "text", floc)
    elif kind in _MEDIA_WHAT:
        _check_media(block, kind, loc, profile)
    elif kind == p.BLOCK_THINKING:
        _str_field(block, "thinking", floc)
        _str_field(block, "signature", floc)
    elif kind == p.BLOCK_REDACTED_THINKING:
        _str_field(block, "data", floc)
    elif kind == p.BLOCK_TOOL_USE:
        _str_field(block, "id", floc)
        if not _TOOL_USE_ID.fullmatch(block["id"]):
            raise _invalid(f"{floc}.id", f"String should match pattern '{TOOL_USE_ID_PATTERN}'")
        _str_field(block, "name", floc)
        if not isinstance(_required(block, "input", floc), dict):
            raise _invalid(f"{floc}.input", NOT_DICT)
    elif kind == p.BLOCK_TOOL_RESULT:
        _str_field(block, "tool_use_id", floc)
        _check_tool_result_content(block.get("content"), f"{floc}.content", profile)
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            raise _invalid(f"{floc}.is_error", NOT_BOOL)


def check_messages(body: Mapping[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """``messages``: a non-empty list of ``{role, content}``; roles user/assistant, and
    ``system`` turns as current clients send them; content a string or a list of blocks."""
    messages = _required(body, "messages", "")
    if not isinstance(messages, list):
        raise _invalid("messages", NOT_LIST)
    if not messages:
        raise _invalid("messages", "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise _invalid(
            "messages",
            f"List should have at most {MAX_MESSAGES} items after validation, not {len(messages)}",
        )
    for i, m in enumerate(messages):
        loc = f"messages.{i}"
        if not isinstance(m, dict):
            raise _invalid(loc, NOT_DICT)
        if _required(m, "role", loc) not in (p.ROLE_USER, p.ROLE_ASSISTANT, p.ROLE_SYSTEM):
            raise _invalid(f"{loc}.role", "Input should be 'user' or 'assistant'")
        content = _required(m, "content", loc)
        if isinstance(content, list):
            for j, block in enumerate(content):
                _check_block(block, f"{loc}.content.{j}", profile)
        elif not isinstance(content, str):
            raise _invalid(f"{loc}.content", NOT_LIST)
    return messages


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check_tool_results(messages: list[dict[str, Any]]) -> None:
    """Every ``tool_result`` answers a ``tool_use`` of the previous message, and every
    ``tool_use`` is answered at the start of the next message (``system`` turns skipped)."""
    turns = [(i, m) for i, m in enumerate(messages) if m.get("role") != p.ROLE_SYSTEM]
    for t, (i, m) in enumerate(turns):
        blocks = _blocks(m)
        prev_uses = (
            [b["id"] for b in _blocks(turns[t - 1][1]) if b.get("type") == p.BLOCK_TOOL_USE]
            if t > 0
            else []
        )
        unexpected = [
            (j, str(b["tool_use_id"]))
            for j, b in enumerate(blocks)
            if b.get("type") == p.BLOCK_TOOL_RESULT and b["tool_use_id"] not in prev_uses
        ]
        if unexpected:
            raise _invalid(
                f"messages.{i}.content.{unexpected[0][0]}",
                "unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(u for _, u in unexpected)}. Each `tool_result` block must have a"
                " corresponding `tool_use` block in the previous message.",
            )
        uses = [str(b["id"]) for b in blocks if b.get("type") == p.BLOCK_TOOL_USE]
        if not uses or t + 1 == len(turns):
            continue
        j, nxt = turns[t + 1]
        nblocks = _blocks(nxt)
        leading: set[str] = set()
        for b in nblocks:
            if b.get("type") != p.BLOCK_TOOL_RESULT:
                break
            leading.add(b["tool_use_id"])
        later = {b["tool_use_id"] for b in nblocks if b.get("type") == p.BLOCK_TOOL_RESULT}
        missing = [u for u in uses if u not in leading]
        misplaced = [u for u in missing if u in later]
        if misplaced:
            raise _invalid(
                f"messages.{j}",
                f"Did not find {len(misplaced)} `tool_result` block(s) at the beginning of this"
                " message. Messages following `tool_use` blocks must begin with a matching"
                " number of `tool_result` blocks.",
            )
        if missing:
            raise _invalid(
                f"messages.{i}",
                f"`tool_use` ids were found without `tool_result` blocks immediately after:"
                f" {', '.join(missing)}. Each `tool_use` block must have a corresponding"
                " `tool_result` block in the next message.",
            )


# --- other fields -----------------------------------------------------------------------


def check_system(body: Mapping[str, Any]) -> None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system", NOT_LIST)
    for k, block in enumerate(system):
        loc = f"system.{k}"
        if not isinstance(block, dict):
            raise _invalid(loc, NOT_DICT)
        if _required(block, "type", loc) != p.BLOCK_TEXT:
            raise _invalid(f"{loc}.type", "Input should be 'text'")
        _str_field(block, "text", loc)


def check_tools(body: Mapping[str, Any], profile: Profile) -> tuple[dict[str, Any], ...]:
    """Client tools only: name against the pattern, an object ``input_schema``, unique names."""
    tools = body.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise _invalid("tools", NOT_LIST)
    names: list[str] = []
    for i, tool in enumerate(tools):
        loc = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _invalid(loc, NOT_UNION_DICT)
        kind = tool.get("type") or CLIENT_TOOL
        if kind != CLIENT_TOOL:
            raise _tag_error(
                loc, kind, (CLIENT_TOOL,), " (server tools are not supported on this model)"
            )
        cloc = f"{loc}.{CLIENT_TOOL}"
        _str_field(tool, "name", cloc)
        if not _TOOL_NAME.fullmatch(tool["name"]):
            raise _invalid(f"{cloc}.name", f"String should match pattern '{TOOL_NAME_PATTERN}'")
        _str_field(tool, "description", cloc, optional=True)
        schema = _required(tool, "input_schema", cloc)
        if not isinstance(schema, dict):
            raise _invalid(f"{cloc}.input_schema", NOT_DICT)
        if _required(schema, "type", f"{cloc}.input_schema") != "object":
            raise _invalid(f"{cloc}.input_schema.type", "Input should be 'object'")
        names.append(tool["name"])
    if len(set(names)) != len(names):
        raise _invalid("tools", "Tool names must be unique.")
    if tools and not profile.tools:
        raise _invalid("tools", "this model does not support tool use")
    return tuple(tools)


def check_tool_choice(
    body: Mapping[str, Any], tools: tuple[Mapping[str, Any], ...]
) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = _union_tag(choice, "tool_choice", TOOL_CHOICES)
    valid: dict[str, Any] = choice
    loc = f"tool_choice.{kind}"
    dptu = choice.get("disable_parallel_tool_use")
    if dptu is not None and not isinstance(dptu, bool):
        raise _invalid(f"{loc}.disable_parallel_tool_use", NOT_BOOL)
    if kind == "tool":
        _str_field(choice, "name", loc)
        if choice["name"] not in {t.get("name") for t in tools}:
            raise _invalid(f"{loc}.name", f"Tool '{choice['name']}' not found in `tools`")
    elif kind == "any" and not tools:
        raise _invalid("tool_choice", "tool_choice of type 'any' requires `tools`")
    return valid


def check_thinking(body: Mapping[str, Any], profile: Profile) -> None:
    """Shape of ``thinking``; under ``thinking: reject`` anything but ``disabled`` is a 400."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = _union_tag(thinking, "thinking", THINKING_TYPES)
    if kind == "enabled":
        _as_int(
            _required(thinking, "budget_tokens", "thinking.enabled"),
            "thinking.enabled.budget_tokens",
        )
    if kind != "disabled" and profile.thinking == "reject":
        what = "adaptive thinking" if kind == "adaptive" else "extended thinking"
        raise _invalid("thinking", f"{what} is not supported on this model")


def check_sampling(body: Mapping[str, Any], profile: Profile) -> None:
    """stop_sequences, stream, temperature, top_p, top_k, metadata (absent or null: fine)."""
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list):
            raise _invalid("stop_sequences", NOT_LIST)
        for k, s in enumerate(stops):
            if not isinstance(s, str):
                raise _invalid(f"stop_sequences.{k}", NOT_STR)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _invalid("stream", NOT_BOOL)
    if body.get("temperature") is not None:
        _range(body["temperature"], "temperature", 0.0, profile.temperature_max)
    if body.get("top_p") is not None:
        _range(body["top_p"], "top_p", 0.0, 1.0)
    if body.get("top_k") is not None and _as_int(body["top_k"], "top_k") < 0:
        raise _invalid("top_k", "Input should be greater than or equal to 0")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _invalid("metadata", NOT_DICT)
        _str_field(metadata, "user_id", "metadata", optional=True)


# --- model and limits -------------------------------------------------------------------


def check_model_field(body: Mapping[str, Any]) -> str:
    model = _required(body, "model", "")
    if not isinstance(model, str):
        raise _invalid("model", NOT_STR)
    return model


def resolve_model(requested: str, profile: Profile) -> str:
    """The served model id; an unknown name is a 404 or, with ``unknown_model: map``,
    the profile's first model."""
    if requested in profile.model_ids:
        return requested
    if profile.unknown_model == "map":
        return profile.models[0].id
    raise ApiError(404, p.NOT_FOUND, f"model: {requested}", deepseek_message="Model Not Exist")


def _max_tokens_range(profile: Profile) -> str:
    top = profile.max_output_tokens
    return f"Invalid max_tokens value, the valid range of max_tokens is [1, {top}]"


def check_max_tokens_field(body: Mapping[str, Any], profile: Profile) -> int:
    ds = _max_tokens_range(profile)
    value = _as_int(_required(body, "max_tokens", ""), "max_tokens", deepseek=ds)
    if value < 1:
        raise _invalid("max_tokens", "Input should be greater than or equal to 1", deepseek=ds)
    return value


def effective_max_tokens(max_tokens: int, model: str, profile: Profile) -> int:
    """``max_tokens`` over the profile's maximum: a 400 (``reject``) or the maximum (``clamp``)."""
    limit = profile.max_output_tokens
    if max_tokens <= limit:
        return max_tokens
    if profile.max_tokens_over_limit == "clamp":
        return limit
    raise _invalid(
        "max_tokens",
        f"{max_tokens} > {limit}, which is the maximum allowed number of output tokens for {model}",
        deepseek=_max_tokens_range(profile),
    )


def check_context(input_tokens: int, max_tokens: int, profile: Profile) -> None:
    """The context window: the profile's rule decides the arithmetic (prompt alone, or
    prompt + max_tokens), the dialect the wording (both wordings are on the error)."""
    window = profile.context_window
    total = input_tokens + max_tokens
    plus = profile.context_rule == "prompt_plus_max_tokens"
    if input_tokens <= window and not (plus and total > window):
        return
    if input_tokens > window:
        message = f"prompt is too long: {input_tokens} tokens > {window} maximum"
    else:
        message = (
            f"input length and `max_tokens` exceed context limit: {input_tokens} + {max_tokens}"
            f" > {window}, decrease input length or `max_tokens` and try again"
        )
    raise ApiError.invalid(
        message,
        deepseek_message=(
            f"This model's maximum context length is {window} tokens. However, you requested"
            f" {total} tokens ({input_tokens} in the messages, {max_tokens} in the completion)."
            " Please reduce the length of the messages or completion."
        ),
    )


# --- entry points -----------------------------------------------------------------------


def _body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError.invalid(NOT_DICT)
    return body


def _prompt_fields(
    body: Mapping[str, Any], profile: Profile
) -> tuple[list[dict[str, Any]], tuple[dict[str, Any], ...], dict[str, Any] | None]:
    messages = check_messages(body, profile)
    check_system(body)
    tools = check_tools(body, profile)
    choice = check_tool_choice(body, tools)
    check_thinking(body, profile)
    return messages, tools, choice


def check_messages_body(
    body: Any, profile: Profile, counter: TokenCounter, *, exact_tokens: bool = True
) -> CheckedRequest:
    """Every check of a ``POST /v1/messages`` body after auth and version (``exact_tokens``:
    see ``check``)."""
    obj = _body_object(body)
    requested = check_model_field(obj)
    max_tokens = check_max_tokens_field(obj, profile)
    messages, tools, choice = _prompt_fields(obj, profile)
    check_sampling(obj, profile)
    check_tool_results(messages)
    model = resolve_model(requested, profile)
    max_tokens = effective_max_tokens(max_tokens, model, profile)
    if exact_tokens or not _surely_fits(obj, max_tokens, profile, counter):
        input_tokens = counter.request(obj)
        check_context(input_tokens, max_tokens, profile)
    else:
        input_tokens = NOT_COUNTED
    return CheckedRequest(
        body=obj,
        model=model,
        max_tokens=max_tokens,
        input_tokens=input_tokens,
        stream=obj.get("stream") is True,
        tools=tools,
        tool_choice=choice,
        requested_model=requested,
    )


def check_count_tokens_body(body: Any, profile: Profile, counter: TokenCounter) -> CheckedRequest:
    """Checks of a ``count_tokens`` body: as for messages, without ``max_tokens``, sampling
    fields or the context limit (it is how a client finds out whether a prompt fits)."""
    obj = _body_object(body)
    requested = check_model_field(obj)
    messages, tools, choice = _prompt_fields(obj, profile)
    check_tool_results(messages)
    model = resolve_model(requested, profile)
    return CheckedRequest(
        body=obj,
        model=model,
        max_tokens=0,
        input_tokens=counter.request(obj),
        stream=False,
        tools=tools,
        tool_choice=choice,
        requested_model=requested,
    )


def check(
    req: ApiRequest,
    profile: Profile,
    counter: TokenCounter,
    *,
    api_keys: tuple[str, ...] = (),
    exact_tokens: bool = True,
) -> CheckedRequest:
    """All checks of a request to ``/v1/messages`` (or ``/v1/messages/count_tokens``).

    With ``exact_tokens=False`` a message request whose prompt is sure to fit the context
    window (its UTF-8 size bounds its token count) is not tokenized: the same errors, and
    ``input_tokens`` is ``NOT_COUNTED`` (for callers that do not read it, e.g. replay).
    """
    check_auth(req, api_keys)
    check_version(req, profile)
    if req.path == p.PATH_COUNT_TOKENS:
        return check_count_tokens_body(req.body, profile, counter)
    return check_messages_body(req.body, profile, counter, exact_tokens=exact_tokens)


def _surely_fits(
    body: Mapping[str, Any], max_tokens: int, profile: Profile, counter: TokenCounter
) -> bool:
    """True when the context check must pass whatever the exact count: the tokenizer is
    byte-level BPE, so a prompt has at most as many tokens as UTF-8 bytes."""
    bound = counter.request_bound(body)
    if profile.context_rule == "prompt_plus_max_tokens":
        bound += max_tokens
    return bound <= profile.context_window


def check_count_tokens(
    req: ApiRequest, profile: Profile, counter: TokenCounter, *, api_keys: tuple[str, ...] = ()
) -> int:
    """All checks of a ``count_tokens`` request; returns its ``input_tokens``."""
    check_auth(req, api_keys)
    check_version(req, profile)
    return check_count_tokens_body(req.body, profile, counter).input_tokens
