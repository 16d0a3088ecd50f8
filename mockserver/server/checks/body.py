"""Every check of a request, in the real API's order: auth -> ``anthropic-version`` -> body
shape -> fields -> model -> limits (PROTOCOL.md §4.3).  Each failure is an ``ApiError`` with
the Anthropic status, type and wording (field errors in the API's pydantic style,
``loc: message``, see ``wording``) and, where DeepSeek words it differently,
``deepseek_message`` (§4.4).  Unknown top-level fields are accepted and ignored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...accounting.tokens import TokenCounter
from ...profile import Profile
from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.request import ApiRequest, CheckedRequest
from .content import check_messages, check_tool_results
from .fields import (
    check_output_format,
    check_sampling,
    check_system,
    check_thinking,
    check_tool_choice,
    check_tools,
)
from .headers import check_auth, check_version
from .limits import (
    check_context,
    check_max_tokens_field,
    check_model_field,
    effective_max_tokens,
    resolve_model,
)
from .wording import (
    NOT_DICT,
)

#: ``CheckedRequest.input_tokens`` of a request checked without counting (``exact_tokens``)
NOT_COUNTED = -1


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
    output_schema = check_output_format(obj, profile)
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
        output_schema=output_schema,
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
