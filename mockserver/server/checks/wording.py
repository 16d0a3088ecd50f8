"""Field errors in the real API's wording (pydantic style: ``loc: message``).

The constants are the message texts the endpoint uses; the helpers build ``ApiError``s from a
location and a message, the same way for every check in ``rules.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...wire.errors import ApiError

FIELD_REQUIRED = "Field required"
NOT_DICT = "Input should be a valid dictionary"
NOT_UNION_DICT = "Input should be a valid dictionary or object to extract fields from"
NOT_LIST = "Input should be a valid list"
NOT_STR = "Input should be a valid string"
NOT_BOOL = "Input should be a valid boolean"
NOT_INT = "Input should be a valid integer"
NOT_NUMBER = "Input should be a valid number"
NO_TAG = "Unable to extract tag using discriminator 'type'"


def invalid(loc: str, message: str, *, deepseek: str | None = None) -> ApiError:
    return ApiError.invalid(f"{loc}: {message}" if loc else message, deepseek_message=deepseek)


def num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def tag_list(tags: tuple[str, ...]) -> str:
    return ", ".join(f"'{t}'" for t in sorted(tags))


def tag_error(loc: str, tag: object, tags: tuple[str, ...], extra: str = "") -> ApiError:
    return invalid(
        loc,
        f"Input tag '{tag}' found using 'type' does not match any of the expected tags: "
        f"{tag_list(tags)}{extra}",
    )


def as_int(v: object, loc: str, *, deepseek: str | None = None) -> int:
    """An integer as pydantic's lax mode takes it (``1024.0`` is 1024)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v):
        if v.is_integer():
            return int(v)
        raise invalid(loc, f"{NOT_INT}, got a number with a fractional part", deepseek=deepseek)
    raise invalid(loc, NOT_INT, deepseek=deepseek)


def required(d: Mapping[str, Any], key: str, loc: str) -> Any:
    if key not in d:
        raise invalid(f"{loc}.{key}" if loc else key, FIELD_REQUIRED)
    return d[key]


def str_field(d: Mapping[str, Any], key: str, loc: str, *, optional: bool = False) -> None:
    if optional and d.get(key) is None:
        return
    if not isinstance(required(d, key, loc), str):
        raise invalid(f"{loc}.{key}" if loc else key, NOT_STR)


def in_range(v: object, loc: str, lo: float, hi: float | None) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise invalid(loc, NOT_NUMBER)
    if isinstance(v, float) and not math.isfinite(v):
        raise invalid(loc, f"{NOT_NUMBER}, got a non-finite number")
    x = v  # (an int is compared as it is: 10**400 has no float)
    if x < lo:
        raise invalid(loc, f"Input should be greater than or equal to {num(lo)}")
    if hi is not None and x > hi:
        raise invalid(loc, f"Input should be less than or equal to {num(hi)}")


def union_tag(value: Any, loc: str, tags: tuple[str, ...]) -> str:
    """The ``type`` tag of a tagged-union value (a block, ``tool_choice``, ``thinking``), with
    the API's errors when the value is not an object, has no tag, or an unknown one."""
    if not isinstance(value, dict):
        raise invalid(loc, NOT_UNION_DICT)
    if "type" not in value:
        raise invalid(loc, NO_TAG)
    kind = value["type"]
    if kind not in tags:
        raise tag_error(loc, kind, tags)
    return str(kind)
