"""The model and the limits: an unknown model (404 or mapped), ``max_tokens`` against the
profile's maximum (reject or clamp), and the context window in the profile's rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...profile import Profile
from ...wire import protocol as p
from ...wire.errors import ApiError
from .wording import (
    NOT_STR,
    as_int as _as_int,
    invalid as _invalid,
    required as _required,
)


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
