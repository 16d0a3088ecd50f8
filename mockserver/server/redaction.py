"""Credentials never reach the server's logs.

aiohttp logs a request it cannot parse (a bad header line, say) with the offending bytes,
e.g. ``Invalid header value char: b'x-api-key: sk-...\\x01'``, and so would print a client's
key.  :class:`RedactSecrets` rewrites such records: the value after any secret header name
(``x-api-key``, ``authorization``, ``cookie``, the admin token, ...) becomes ``***``, in the
message and in the formatted traceback alike.  :func:`install` puts it on aiohttp's loggers.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from ..wire import protocol as p

#: loggers whose records may quote raw request bytes
LOGGERS: Final = ("aiohttp.server", "aiohttp.access", "aiohttp.web")
MASK: Final = "***"
_SECRET_VALUE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(h) for h in sorted(p.SECRET_HEADERS)) + r")"
    r"(\s*[:=]?\s*)"  # "x-api-key: v", "x-api-key v" (no colon), "x-api-key=v"
    r"[^'\"\n]+"  # up to the end of the quoted or printed line
)


def redact(text: str) -> str:
    """``text`` with the value after every secret header name replaced by ``***``."""
    return _SECRET_VALUE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


class RedactSecrets(logging.Filter):
    """Masks secret header values in a record's message and traceback (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install() -> None:
    """Add the filter to aiohttp's server loggers (once per process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
