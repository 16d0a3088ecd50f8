"""Scalar values for JSON Schemas, as a model writes them: words for strings, the examples a
format names, small numbers unless the bounds say otherwise.

Every function here takes one flattened schema (``$ref`` and ``allOf`` already merged by
``instances``) and a seeded ``random.Random``, and returns a value or raises ``Unsatisfiable``
naming the schema path and why.  The caller validates the whole value afterwards.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from rstr.xeger import Xeger

WORDS = [
    "the",
    "mock",
    "answers",
    "deterministically",
    "so",
    "tests",
    "can",
    "rely",
    "on",
    "every",
    "byte",
    "of",
    "this",
    "reply",
    "while",
    "your",
    "application",
    "exercises",
    "its",
    "parsing",
    "streaming",
    "tool",
    "loops",
    "and",
    "error",
    "handling",
    "against",
    "a",
    "local",
    "endpoint",
    "that",
    "speaks",
    "the",
    "messages",
    "protocol",
    "with",
    "realistic",
    "usage",
    "numbers",
    "and",
    "ids",
]
#: a repetition (``*``, ``+``, ``{2,}``) in a pattern repeats at most this much beyond its minimum
REPEAT_SPAN = 6


class Unsatisfiable(ValueError):
    """No value satisfies the schema at ``path`` (a JSON path into the schema: ``$.properties.a``)."""

    def __init__(self, path: str, reason: str) -> None:
        if len(path) > 120:  # (a recursion's path: its start and its end say enough)
            path = f"{path[:60]}...{path[-50:]}"
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# --- strings ------------------------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


#: format -> an example a model would write (``text`` is what the Python SDK's transform adds)
FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: (
        f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z"
    ),
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "duration": lambda r: f"PT{r.randint(1, 12)}H",
    "email": lambda r: f"{r.choice(WORDS)}@example.com",
    "idn-email": lambda r: f"{r.choice(WORDS)}@example.com",
    "hostname": lambda r: f"{r.choice(WORDS)}.example.com",
    "idn-hostname": lambda r: f"{r.choice(WORDS)}.example.com",
    "ipv4": lambda r: f"192.0.2.{r.randint(1, 254)}",
    "ipv6": lambda r: f"2001:db8::{r.randint(1, 0xFFFF):x}",
    "uri": lambda r: f"https://example.com/{r.choice(WORDS)}",
    "iri": lambda r: f"https://example.com/{r.choice(WORDS)}",
    "uri-reference": lambda r: f"/{r.choice(WORDS)}",
    "iri-reference": lambda r: f"/{r.choice(WORDS)}",
    "uri-template": lambda r: f"https://example.com/{r.choice(WORDS)}/{{id}}",
    "uuid": _uuid,
    "json-pointer": lambda r: f"/{r.choice(WORDS)}",
    "relative-json-pointer": lambda r: f"0/{r.choice(WORDS)}",
    "regex": lambda r: f"^{r.choice(WORDS)}$",
    "color": lambda r: r.choice(("red", "green", "blue")),
}


class _ShortXeger(Xeger):
    """``rstr``'s generator with repetitions kept short (it allows up to 100 by default)."""

    def _handle_repeat(self, start_range: int, end_range: int, value: Any) -> str:
        end = min(end_range, start_range + REPEAT_SPAN)
        return "".join(
            "".join(self._handle_state(state) for state in value)
            for _ in range(self._random.randint(start_range, end))
        )


def string(schema: dict[str, Any], rng: random.Random, path: str) -> str:
    lo = _count(schema, "minLength", path) or 0
    hi = _count(schema, "maxLength", path)
    if hi is not None and lo > hi:
        raise Unsatisfiable(path, f"minLength {lo} > maxLength {hi}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        return _from_pattern(pattern, lo, hi, rng, path)
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in FORMATS:
        value = FORMATS[fmt](rng)
        if lo <= len(value) and (hi is None or len(value) <= hi):
            return value
        raise Unsatisfiable(path, f"no {fmt} fits minLength {lo} / maxLength {hi}")
    return words(rng, lo, hi)


def words(rng: random.Random, lo: int = 0, hi: int | None = None) -> str:
    """A few words, between ``lo`` and ``hi`` characters long."""
    target = max(lo, 1)
    out = rng.choice(WORDS)
    while len(out) < target or (len(out) < 12 and rng.random() < 0.5):
        out += " " + rng.choice(WORDS)
    if hi is not None and len(out) > hi:
        out = out[:hi].rstrip() if hi >= lo and out[:hi].rstrip() else out[:hi]
    while len(out) < lo:
        out += "x"
    return out


def _from_pattern(pattern: str, lo: int, hi: int | None, rng: random.Random, path: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise Unsatisfiable(
            path, f"pattern {pattern!r} is not a regular expression: {exc}"
        ) from None
    gen = _ShortXeger(rng)
    for _ in range(24):
        try:
            value = gen.xeger(pattern)
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            break  # a construct the generator cannot reverse (e.g. a back reference)
        if lo <= len(value) and (hi is None or len(value) <= hi) and compiled.search(value):
            return value
    raise Unsatisfiable(path, f"no string found for pattern {pattern!r} within the length bounds")


def _count(schema: dict[str, Any], key: str, path: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Unsatisfiable(path, f"{key} must be a non-negative integer, got {value!r}")
    return math.ceil(value) if key.startswith("min") else math.floor(value)


# --- numbers ------------------------------------------------------------------------------


def _bounds(
    schema: dict[str, Any], path: str
) -> tuple[Fraction | None, bool, Fraction | None, bool]:
    """``(low, low is exclusive, high, high is exclusive)``; draft-4 boolean exclusives too."""

    def num(key: str) -> Fraction | None:
        value = schema.get(key)
        if value is None or isinstance(value, bool):
            return None
        if not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise Unsatisfiable(path, f"{key} must be a number, got {value!r}")
        return Fraction(value)

    lo, hi = num("minimum"), num("maximum")
    lo_ex = hi_ex = False
    if schema.get("exclusiveMinimum") is True:
        lo_ex = True
    elif (x := num("exclusiveMinimum")) is not None and (lo is None or x >= lo):
        lo, lo_ex = x, True
    if schema.get("exclusiveMaximum") is True:
        hi_ex = True
    elif (x := num("exclusiveMaximum")) is not None and (hi is None or x <= hi):
        hi, hi_ex = x, True
    return lo, lo_ex, hi, hi_ex


def number(schema: dict[str, Any], rng: random.Random, path: str, integer: bool) -> int | float:
    """A number in the bounds: an integer when one fits (models write ``3``, not ``3.0``), small
    unless the bounds say otherwise, a multiple of ``multipleOf`` when asked."""
    lo, lo_ex, hi, hi_ex = _bounds(schema, path)
    step = schema.get("multipleOf")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, int | float) or step <= 0
    ):
        raise Unsatisfiable(path, f"multipleOf must be a number > 0, got {step!r}")
    # the values to pick from are k * unit for integers k in [first, last]
    unit = Fraction(step) if step is not None else Fraction(1)
    if step is not None and integer and unit.denominator != 1:
        unit = Fraction(unit.numerator)  # an integer multiple of p/q is a multiple of p
    elif step is None and not integer and lo is not None and hi is not None and hi - lo < 2:
        # bounds closer than 1 apart: decimals, about a tenth of the room between them
        unit = Fraction(1, 10 ** max(1, 1 - math.floor(math.log10(float(hi - lo)))))
    first = _first_k(lo, lo_ex, unit)
    last = _last_k(hi, hi_ex, unit)
    if first is not None and last is not None and first > last:
        raise Unsatisfiable(
            path, f"no {'integer' if integer else 'number'} lies in {_show(schema)}"
        )
    if first is None and last is None:
        k = rng.randint(1, 10) if unit <= 1 else rng.randint(1, 3)
    elif first is None:
        assert last is not None
        k = rng.randint(1, min(last, 10)) if last >= 1 else last - rng.randint(0, 3)
    elif last is None:
        k = first + rng.randint(0, 9)
    else:
        k = first + rng.randint(0, min(9, last - first))
    # what is sent is a float, which the bounds (floats too) judge: step inward until it fits
    for candidate in _inward(k, first, last):
        value = unit * candidate
        out: int | float = int(value) if value.denominator == 1 else float(value)
        if integer and not isinstance(out, int):
            break
        if _within(out, schema):
            return out
    raise Unsatisfiable(
        path, f"no {'integer' if integer else 'number'} fits {_show(schema)} exactly"
    )


def _inward(k: int, first: int | None, last: int | None) -> list[int]:
    """``k``, then the ks around it inside ``[first, last]`` (a few)."""
    out = [k]
    for d in range(1, 4):
        out += [k + d, k - d]
    return [c for c in out if (first is None or c >= first) and (last is None or c <= last)]


def _within(x: float, schema: dict[str, Any]) -> bool:
    """The bounds as a validator checks them (on floats; draft-4 boolean exclusives too)."""
    lo, hi = _real(schema.get("minimum")), _real(schema.get("maximum"))
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if lo is not None and (x <= lo if xlo is True else x < lo):
        return False
    if hi is not None and (x >= hi if xhi is True else x > hi):
        return False
    if (b := _real(xlo)) is not None and x <= b:
        return False
    return not ((b := _real(xhi)) is not None and x >= b)


def _real(v: Any) -> float | None:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return None
    try:
        return float(v)
    except OverflowError:  # an integer past the float range
        return math.inf if v > 0 else -math.inf


def _first_k(lo: Fraction | None, exclusive: bool, unit: Fraction) -> int | None:
    if lo is None:
        return None
    k = math.ceil(lo / unit)
    return k + 1 if exclusive and unit * k == lo else k


def _last_k(hi: Fraction | None, exclusive: bool, unit: Fraction) -> int | None:
    if hi is None:
        return None
    k = math.floor(hi / unit)
    return k - 1 if exclusive and unit * k == hi else k


def _show(schema: dict[str, Any]) -> str:
    keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf")
    return "{" + ", ".join(f"{k}: {schema[k]}" for k in keys if k in schema) + "}"
