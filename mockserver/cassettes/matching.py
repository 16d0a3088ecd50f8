"""Request matching: a canonical form, ignore rules, a hashed index, sequences, near misses.

Two requests match when their canonical forms are equal.  The canonical form keeps the
method, the path (never the query) and the body, normalized so that equivalent spellings are
equal: ``content``/``system``/``tool_result.content`` as a string or as a list of text
blocks, ``cache_control`` markers (top level, tools, system and content blocks), the
``stream`` flag, and integral floats (``1.0`` vs ``1``).  Headers are not matched at all
(``x-stainless-*``, ``user-agent``, keys and versions vary between clients and runs).
JSON paths on an ignore list (from the cassette's ``ignore:`` key or ``--ignore``) are
removed from the canonical form; they address it as normalized (``content`` and ``system``
are always lists of blocks), e.g. ``$.metadata``, ``$.messages[0].content[*].text``.

The :class:`Index` is a dict keyed by a hash of the canonical form (one per distinct ignore
list), so a lookup costs the same whatever the size of the library.  Repeated identical
requests walk the recorded sequence in order; past its end the last interaction repeats, or
with ``strict`` the lookup reports the sequence exhausted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..wire import protocol as p


class _Star:
    def __repr__(self) -> str:
        return "*"


STAR: Final = _Star()
PathPart = str | int | _Star
ABSENT: Final = "<absent>"


class _Absent:
    def __repr__(self) -> str:
        return ABSENT


_MISSING: Final = _Absent()
#: request keys remembered by ``Index`` (by a digest of the request bytes; ~200 bytes each)
KEY_MEMO_MAX: Final = 20_000
#: request bodies up to this size are memo keys themselves; larger ones by their digest
KEY_MEMO_RAW_MAX: Final = 1024  # (20,000 x 1 KB at most)

# --- canonical form ------------------------------------------------------------------------------


def _num(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _fresh(value: Any) -> Any:
    """A deep copy with integral floats made ints."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return _num(value)


def _blocks(content: Any) -> Any:
    if isinstance(content, str):
        return [{"type": p.BLOCK_TEXT, "text": content}]
    if isinstance(content, list):
        return [_block(b) for b in content]
    return _fresh(content)


def _block(block: Any) -> Any:
    if not isinstance(block, dict):
        return _fresh(block)
    out = {k: _fresh(v) for k, v in block.items() if k != "cache_control"}
    if block.get("type") == p.BLOCK_TOOL_RESULT and "content" in block:
        out["content"] = _blocks(block["content"])
    return out


def canonical_body(body: Any) -> Any:
    """The normalized request body (a fresh structure; the input is not changed)."""
    if not isinstance(body, dict):
        return _fresh(body)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("stream", "cache_control"):
            continue
        if key == "system":
            out[key] = _blocks(value)
        elif key == "messages" and isinstance(value, list):
            out[key] = [
                {
                    k: (_blocks(v) if k == "content" else _fresh(v))
                    for k, v in m.items()
                    if k != "cache_control"
                }
                if isinstance(m, dict)
                else _fresh(m)
                for m in value
            ]
        elif key == "tools" and isinstance(value, list):
            out[key] = [_block(t) for t in value]
        else:
            out[key] = _fresh(value)
    return out


# --- JSON paths ------------------------------------------------------------------------------------

_SEGMENT = re.compile(
    r"""\.(?P<name>[A-Za-z_$][\w$-]*)|\.(?P<dotstar>\*)|\[(?P<index>-?\d+)\]|\[(?P<star>\*)\]"""
    r"""|\[(?P<q>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]"""
)


def parse_path(path: str) -> tuple[PathPart, ...]:
    """``$.messages[0]['content'][*]`` -> ``("messages", 0, "content", STAR)``."""
    text = path.strip()
    if not text.startswith("$"):
        raise ValueError(f"JSON path must start with $: {path!r}")
    parts: list[PathPart] = []
    pos = 1
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None:
            raise ValueError(f"bad JSON path {path!r} at {text[pos:]!r}")
        if m.group("name") is not None:
            parts.append(m.group("name"))
        elif m.group("index") is not None:
            parts.append(int(m.group("index")))
        elif m.group("q") is not None:
            q = m.group("q")
            parts.append(json.loads(q) if q.startswith('"') else q[1:-1].replace("\\'", "'"))
        else:
            parts.append(STAR)
        pos = m.end()
    if not parts:
        raise ValueError(f"JSON path {path!r} selects the whole request; nothing would be matched")
    return tuple(parts)


def drop_path(value: Any, parts: Sequence[PathPart]) -> None:
    """Remove what ``parts`` selects from ``value`` (in place); missing parts are no-ops."""
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        keys = list(value) if head is STAR else [head] if head in value else []
        for k in keys:
            if rest:
                drop_path(value[k], rest)
            else:
                del value[k]
    elif isinstance(value, list):
        if head is STAR:
            if rest:
                for item in value:
                    drop_path(item, rest)
            else:
                value.clear()
        elif isinstance(head, int) and -len(value) <= head < len(value):
            if rest:
                drop_path(value[head], rest)
            else:
                value[head] = ABSENT  # keep later indexes stable


#: ``json.dumps(..., sort_keys=True, ensure_ascii=False, separators=(",", ":"))``, built once
_KEY_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def digest(method: str, path: str, body: Any) -> str:
    text = _KEY_JSON.encode([method.upper(), path, body])
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def request_key(method: str, path: str, body: Any, ignore: Sequence[str] = ()) -> str:
    """The hash of the canonical form of a request (what the index is keyed by)."""
    canon = canonical_body(body)
    for parts in (parse_path(x) for x in ignore):
        drop_path(canon, parts)
    return digest(method, path, canon)


# --- differences -----------------------------------------------------------------------------------

# --- the index --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    ref: Hashable
    position: int  # 0-based place in the recorded sequence that was served
    length: int  # how many interactions the sequence holds
    repeated: bool  # the sequence was used up and its last interaction was served again


@dataclass(frozen=True, slots=True)
class Exhausted:
    """``strict``: the request matches, but its recorded sequence is used up."""

    ref: Hashable
    length: int


@dataclass
class _Group:
    ignore: tuple[str, ...]
    parts: tuple[tuple[PathPart, ...], ...]
    keys: dict[str, list[Hashable]] = field(default_factory=dict)


class Index:
    """Refs (any hashable: e.g. ``(cassette, position)``) by canonical-form hash.

    ``ignore`` applies to every entry (``--ignore``); each entry may add its own (the
    cassette's ``ignore:``).  Entries with the same ignore list share one dict.
    """

    def __init__(self, ignore: Sequence[str] = ()) -> None:
        self.ignore = tuple(ignore)
        for path in self.ignore:
            parse_path(path)  # a bad path is an error now, not a silent non-match
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._served: dict[tuple[str, tuple[str, ...], str], int] = {}
        self._size = 0
        #: request-bytes digest -> (number of groups then, each group's key): a repeated
        #: request (the same bytes) skips the canonical form and its JSON; see ``lookup``
        self._memo: dict[Hashable, tuple[int, list[tuple[_Group, str]]]] = {}

    def __len__(self) -> int:
        return self._size

    def _group(self, extra: Sequence[str]) -> _Group:
        names = tuple(dict.fromkeys([*self.ignore, *extra]))
        group = self._groups.get(names)
        if group is None:
            group = _Group(names, tuple(parse_path(x) for x in names))
            self._groups[names] = group
        return group

    @staticmethod
    def _key(group: _Group, method: str, path: str, canon: Any, copy_first: bool) -> str:
        if group.parts:
            body = copy.deepcopy(canon) if copy_first else canon
            for parts in group.parts:
                drop_path(body, parts)
            return digest(method, path, body)
        return digest(method, path, canon)

    def add(
        self, ref: Hashable, method: str, path: str, body: Any, ignore: Sequence[str] = ()
    ) -> str:
        key = self.key_of(method, path, body, ignore)
        self.add_key(ref, key, ignore)
        return key

    def key_of(self, method: str, path: str, body: Any, ignore: Sequence[str] = ()) -> str:
        """The key ``add`` would file a request under (with the cassette's ``ignore``)."""
        return self._key(self._group(ignore), method, path, canonical_body(body), copy_first=False)

    def add_key(self, ref: Hashable, key: str, ignore: Sequence[str] = ()) -> None:
        """File ``ref`` under a key made earlier by ``key_of`` with the same ignore lists."""
        self._group(ignore).keys.setdefault(key, []).append(ref)
        self._size += 1

    def signature(self, ignore: Sequence[str] = ()) -> str:
        """A name for the ignore lists keys are made with (``--ignore`` and ``ignore``)."""
        return "\x1f".join(self._group(ignore).ignore)

    def view(self, method: str, path: str, body: Any, ignore: Sequence[str] = ()) -> Any:
        """The canonical body as the index compares it (for diffs)."""
        group = self._group(ignore)
        canon = canonical_body(body)
        for parts in group.parts:
            drop_path(canon, parts)
        return canon

    def lookup(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        scope: str = "",
        accept: Callable[[Hashable], bool] | None = None,
        strict: bool = False,
        raw: bytes | None = None,
    ) -> Hit | Exhausted | None:
        """Serve the next interaction of the request's recorded sequence (see module doc).

        ``accept`` narrows the candidates (e.g. to one cassette); ``scope`` names that
        narrowing so each scope walks its own sequence.  ``raw``, the exact bytes ``body``
        was parsed from, lets a repeated request reuse its keys (same bytes, same body).
        """
        found = self.candidates(method, path, body, scope=scope, accept=accept, raw=raw)
        if found is None:
            return None
        counter, refs = found
        n = self._served.get(counter, 0)
        if not (n >= len(refs) and strict):
            self._served[counter] = n + 1
        return pick(refs, n, strict)

    async def alookup(
        self,
        method: str,
        path: str,
        body: Any,
        next_position: Callable[[str], Awaitable[int]],
        *,
        scope: str = "",
        accept: Callable[[Hashable], bool] | None = None,
        strict: bool = False,
        raw: bytes | None = None,
    ) -> Hit | Exhausted | None:
        """``lookup`` with the sequence positions kept elsewhere (a shared store):
        ``next_position(counter)`` counts one more request of that sequence and returns how
        many came before.  A sequence of one interaction needs no count unless ``strict``."""
        found = self.candidates(method, path, body, scope=scope, accept=accept, raw=raw)
        if found is None:
            return None
        counter, refs = found
        if len(refs) == 1 and not strict:
            return Hit(refs[0], 0, 1, repeated=False)
        scope_name, ignore, key = counter
        n = await next_position(f"{scope_name}\x1f{chr(30).join(ignore)}\x1f{key}")
        return pick(refs, n, strict)

    def candidates(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        scope: str = "",
        accept: Callable[[Hashable], bool] | None = None,
        raw: bytes | None = None,
    ) -> tuple[tuple[str, tuple[str, ...], str], list[Hashable]] | None:
        """The recorded sequence the request belongs to: its counter and its refs in order."""
        for group, key in self._keys(method, path, body, raw):
            refs = group.keys.get(key)
            if not refs:
                continue
            if accept is not None:
                refs = [r for r in refs if accept(r)]
                if not refs:
                    continue
            return (scope, group.ignore, key), refs
        return None

    def _keys(
        self, method: str, path: str, body: Any, raw: bytes | None
    ) -> list[tuple[_Group, str]]:
        """Each group's key of the request, in group order (memoized by ``raw``)."""
        memo_key: Hashable = None
        if raw is not None:
            # small bodies by their bytes (hashing them is cheaper than a digest), large ones
            # by a digest (the memo must not hold megabytes of request bodies)
            memo_key = (
                (method, path, raw)
                if len(raw) <= KEY_MEMO_RAW_MAX
                else hashlib.blake2b(
                    b"%s %s\n%s" % (method.encode(), path.encode(), raw), digest_size=16
                ).digest()
            )
            known = self._memo.get(memo_key)
            if known is not None and known[0] == len(self._groups):
                return known[1]
        canon = canonical_body(body)
        many = len(self._groups) > 1
        keys = [
            (group, self._key(group, method, path, canon, copy_first=many))
            for group in self._groups.values()
        ]
        if memo_key is not None:
            if len(self._memo) >= KEY_MEMO_MAX:
                self._memo.clear()
            self._memo[memo_key] = (len(keys), keys)
        return keys

    def reset(self) -> None:
        """Start every recorded sequence from its beginning again."""
        self._served.clear()


def pick(refs: Sequence[Hashable], n: int, strict: bool) -> Hit | Exhausted:
    """The answer of the request that comes after ``n`` others of the sequence ``refs``."""
    if n >= len(refs) and strict:
        return Exhausted(refs[-1], len(refs))
    pos = min(n, len(refs) - 1)
    return Hit(refs[pos], pos, len(refs), repeated=n >= len(refs))
