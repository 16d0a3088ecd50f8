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
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..contract.violations import json_path, short
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

_FIRST_KEYS: Final = ("model", "system", "messages", "tools", "tool_choice")


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    recorded: Any
    requested: Any

    def describe(self) -> str:
        return f"differs at {self.path}: recorded {_show(self.recorded)}, requested {_show(self.requested)}"


def _show(value: Any) -> str:
    return ABSENT if value is _MISSING else short(value, 80)


def differences(recorded: Any, requested: Any, limit: int = 20) -> list[Difference]:
    """Leaf differences between two canonical bodies, in reading order (at most ``limit``)."""
    out: list[Difference] = []
    _diff(recorded, requested, [], out, limit, top=True)
    return out


def _diff(
    a: Any, b: Any, at: list[str | int], out: list[Difference], limit: int, top: bool = False
) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        if top:
            keys = [k for k in _FIRST_KEYS if k in keys] + [k for k in keys if k not in _FIRST_KEYS]
        for k in keys:
            _diff(a.get(k, _MISSING), b.get(k, _MISSING), [*at, k], out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(
                a[i] if i < len(a) else _MISSING,
                b[i] if i < len(b) else _MISSING,
                [*at, i],
                out,
                limit,
            )
        return
    if type(a) is not type(b) or a != b:
        out.append(Difference(json_path(at), a, b))


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
        group = self._group(ignore)
        key = self._key(group, method, path, canonical_body(body), copy_first=False)
        group.keys.setdefault(key, []).append(ref)
        self._size += 1
        return key

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
        for group, key in self._keys(method, path, body, raw):
            refs = group.keys.get(key)
            if not refs:
                continue
            if accept is not None:
                refs = [r for r in refs if accept(r)]
                if not refs:
                    continue
            counter = (scope, group.ignore, key)
            n = self._served.get(counter, 0)
            if n >= len(refs) and strict:
                return Exhausted(refs[-1], len(refs))
            self._served[counter] = n + 1
            pos = min(n, len(refs) - 1)
            return Hit(refs[pos], pos, len(refs), repeated=n >= len(refs))
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


@dataclass(frozen=True, slots=True)
class NearMiss:
    cassette: str
    interaction: int
    differences: tuple[Difference, ...]
    count: int  # number of differences found (capped)

    def describe(self) -> str:
        if not self.differences:
            return f"{self.cassette}#{self.interaction}"
        more = f" ({self.count} differences)" if self.count > 1 else ""
        return f"{self.cassette}#{self.interaction} {self.differences[0].describe()}{more}"

    def to_dict(self) -> dict[str, Any]:
        first = self.differences[0] if self.differences else None
        return {
            "cassette": self.cassette,
            "interaction": self.interaction,
            "path": first.path if first else None,
            "recorded": _journal_value(first.recorded) if first else None,
            "requested": _journal_value(first.requested) if first else None,
            "differences": self.count,
            "diff": [
                {
                    "path": d.path,
                    "recorded": _journal_value(d.recorded),
                    "requested": _journal_value(d.requested),
                }
                for d in self.differences
            ],
        }


def _journal_value(value: Any) -> Any:
    return ABSENT if value is _MISSING else value


def rank_near_misses(
    candidates: Iterable[tuple[str, int, Any, Any]], n: int = 3, limit: int = 20
) -> list[NearMiss]:
    """The ``n`` closest of ``(cassette, interaction, recorded body, requested body)``
    candidates (canonical bodies), fewest differences first; ties keep library order."""
    scored: list[tuple[int, int, NearMiss]] = []
    for order, (cassette, idx, recorded, requested) in enumerate(candidates):
        diffs = differences(recorded, requested, limit)
        scored.append((len(diffs), order, NearMiss(cassette, idx, tuple(diffs[:5]), len(diffs))))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [nm for _, _, nm in scored[:n]]
