"""JSON paths into a request body, as fault rules and scripted-reply rules write them:
``$.metadata.user_id``, ``$.messages[0].content``, ``$['a b']``; and JSON equality."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[['\"]([^'\"]*)['\"]\]")


def parse_json_path(text: str) -> tuple[str | int, ...]:
    """``$.a.b[0]`` (also ``$['a']``) -> ``("a", "b", 0)``."""
    if not text.startswith("$"):
        raise ValueError(f"JSON path {text!r} must start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _PATH_STEP.match(text, pos)
        if m is None:
            raise ValueError(f"JSON path {text!r}: cannot read {text[pos:]!r}")
        name, index, quoted = m.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = m.end()
    return tuple(steps)


#: what ``json_path_get`` returns for a path that selects nothing
MISSING = object()


def json_path_get(doc: Any, steps: Sequence[str | int]) -> Any:
    for step in steps:
        found = (isinstance(step, int) and isinstance(doc, list) and step < len(doc)) or (
            isinstance(step, str) and isinstance(doc, dict) and step in doc
        )
        if not found:
            return MISSING
        doc = doc[step]
    return doc


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (``true`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) or (_is_num(a) and _is_num(b))) and a == b


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
