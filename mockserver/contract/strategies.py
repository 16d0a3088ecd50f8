"""Hypothesis strategies for the Messages protocol, for property tests of servers and clients.

Importing this module needs ``hypothesis`` (the ``test`` extra: ``pip install
mockserver[test]``); it is the only module of the package that imports it.

- :func:`message_requests` — valid ``POST /v1/messages`` bodies (tool loops included);
- :func:`messages` — valid complete messages (non-streaming replies);
- :func:`streamed_messages` — a message and an adversarial event sequence that folds into it;
- :func:`stream_events` — just the events: one-character deltas, empty text blocks, tool input
  split inside keys, strings and ``\\uXXXX`` escapes (also between the halves of a surrogate
  pair), pings anywhere after ``message_start``, parallel tool calls;
- :func:`chunked_streams` — the encoded bytes of such a stream cut at arbitrary points
  (inside lines, inside UTF-8 characters, between ``\\r`` and ``\\n``).

Every bound is a keyword argument.  Everything generated passes
:mod:`mockserver.conformance`.  Example::

    from hypothesis import given
    from mockserver import strategies as ms

    @given(ms.chunked_streams(max_blocks=3, tools=True))
    def test_my_client_parses_any_chunking(stream): ...
"""

from __future__ import annotations

from .gen_messages import messages
from .gen_requests import message_requests
from .gen_streams import (
    ChunkedStream,
    Events,
    StreamedMessage,
    chunked_streams,
    stream_events,
    streamed_messages,
)
from .gen_values import (
    DEFAULT_MODEL,
    TRICKY_CHARS,
    json_values,
    texts,
    tool_inputs,
    tool_names,
)

__all__ = [
    "DEFAULT_MODEL",
    "TRICKY_CHARS",
    "ChunkedStream",
    "Events",
    "StreamedMessage",
    "chunked_streams",
    "json_values",
    "message_requests",
    "messages",
    "stream_events",
    "streamed_messages",
    "texts",
    "tool_inputs",
    "tool_names",
]
