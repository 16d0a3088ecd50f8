"""Text on the wire is valid Unicode: what a JSON string or a header value may not hold.

JSON can spell a lone UTF-16 surrogate (``"\\ud800"``), and Python's ``json`` decodes raw
surrogate bytes (``\\xed\\xa0\\x80``) too; aiohttp decodes header bytes that are not UTF-8
as surrogate escapes.  Such a string cannot be encoded as UTF-8, so it must never travel
further than the edge: a request body holding one is refused (``lone_surrogate``), and text
echoed back (an error message, a header in the journal) is made printable (``printable``).
"""

from __future__ import annotations

import re
from typing import Any

#: a ``\\u`` escape of a surrogate (the body is walked only when one may be present)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_surrogates(text: str) -> bool:
    """False when the JSON ``text`` surely decodes without a lone surrogate (a cheap test)."""
    return "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def lone_surrogate(doc: Any) -> tuple[str, str] | None:
    """The first string (value or key) of a decoded JSON document that holds a lone
    surrogate: ``(path like messages.0.content, the surrogate as \\uXXXX)``, or None."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if (m := _SURROGATE.search(node)) is not None:
                return path or "body", f"\\u{ord(m.group()):04x}"
        elif isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if (m := _SURROGATE.search(key)) is not None:
                    return sub, f"\\u{ord(m.group()):04x}"
                stack.append((value, sub))
        elif isinstance(node, list):
            stack.extend((value, f"{path}.{i}" if path else str(i)) for i, value in enumerate(node))
    return None


def printable(text: str) -> str:
    """``text`` with every surrogate (lone, or a header's undecodable byte) as U+FFFD."""
    if text.isascii():
        return text
    try:  # a header's undecodable bytes: back to those bytes first
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "replace")


def printable_headers(headers: Any) -> dict[str, str]:
    """Header ``(name, value)`` items as a dict with lower-case names and printable values."""
    out = {k.lower(): v for k, v in headers.items()}
    if not all(map(str.isascii, out.values())):  # (rare: one pass in C decides)
        out = {k: v if v.isascii() else printable(v) for k, v in out.items()}
    return out
