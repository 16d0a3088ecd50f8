"""The cassette library: every cassette under a directory, loaded lazily, indexed for matching.

Loading happens in a worker thread started with the server and awaited by the first request
that needs it, so start-up costs nothing whatever the library's size.  Parsing YAML is slow
(~1 MB/s even with libyaml), so a library of ``CACHE_MIN_BYTES`` or more keeps its parsed,
schema-checked data in one JSON file stamped with each file's size and mtime
(``$MOCKSERVER_CACHE_DIR``, default ``~/.cache/mockserver/cassettes``; ``off`` disables it):
a warm start of 10,000 interactions loads in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Final

from ..wire import protocol as p
from ..wire.errors import CassetteError, ConfigError
from . import cassette as cas, file_cache
from .lazy import LazyInteractions
from .matching import Exhausted, Hit, Index
from .near_miss import NearMiss, rank_near_misses
from .parse_cache import CACHE_ENV as CACHE_ENV, ParseCache, as_wire_text

log = logging.getLogger("mockserver.library")

#: a cassette file this small is loaded when the server starts, not in a thread
INLINE_BYTES: Final = 256 * 1024

#: request header naming the cassette a request is replayed from / recorded into
H_CASSETTE: Final = p.H_CASSETTE


def cassette_name(value: str) -> str:
    """A cassette name from a header or CLI value: relative, no suffix, no ``..``."""
    name = value.strip().replace("\\", "/").strip("/")
    for suffix in cas.SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    parts = [x for x in name.split("/") if x not in ("", ".")]
    if not parts or any(x == ".." or x.startswith(".") for x in parts):
        raise ValueError(f"bad cassette name {value!r}")
    return "/".join(parts)


# --- reading a file ------------------------------------------------------------------------------


def _parse_checked(path: Path, *, remember: bool = False) -> Any:
    """The data of cassette file ``path``, parsed and checked against the cassette schema
    (``CassetteError`` when it cannot be); ``remember``: through the checked-file cache."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read: {exc}") from None
    kept = file_cache.entry(text) if remember else None
    known = file_cache.load(kept)
    if known is not None:
        return known
    data = cas.parse(text, str(path))
    errors = cas.schema_errors(data)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise CassetteError(f"{path}: not a valid cassette: {'; '.join(errors[:3])}{more}")
    file_cache.store(kept, data)
    return data


# --- the library ------------------------------------------------------------------------------


class Library:
    """Every cassette under one directory (or one file), indexed for matching."""

    def __init__(self, directory: Path, ignore: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.ignore = ignore
        try:
            self.index = Index(ignore)
        except ValueError as exc:
            raise ConfigError(f"--ignore: {exc}") from None
        self.cassettes: list[cas.Cassette] = []
        self.names: list[str] = []
        self.broken: dict[str, str] = {}
        self._by_name: dict[str, int] = {}
        #: ``(cassette index, position)`` of every interaction replayed or recorded since the
        #: last (re)load: what ``unused()`` leaves out (pytest ``assert_all_used``)
        self.used: set[tuple[int, int]] = set()
        self._loaded = False
        self._stopping = False
        self._lock = threading.RLock()
        self._task: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def name_of(self, path: Path) -> str:
        if self.directory.is_file():
            return cassette_name(path.name)
        return cassette_name(path.relative_to(self.directory).as_posix())

    def load(self) -> None:
        """Read and index every cassette (once; thread-safe).  Broken files are logged and
        listed in ``broken``; they do not stop the others."""
        with self._lock:
            if self._loaded:
                return
            paths = cas.discover(self.directory) if self.directory.exists() else []
            stats = {path: path.stat() for path in paths}
            cache = ParseCache(self.directory, sum(st.st_size for st in stats.values()))
            for path, st in stats.items():
                if self._stopping:  # the server is going away: do not hold up its exit
                    return
                name = self.name_of(path)
                stamp = [st.st_size, st.st_mtime_ns]
                try:
                    self._read(cache, path, name, stamp)
                except (CassetteError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    self.broken[name] = str(exc)
                    log.error("cassette skipped: %s: %s", path, exc)
                    continue
            cache.save()
            self._loaded = True
            log.info("cassette library %s: %d interactions", self.directory, len(self.index))

    def _read(self, cache: ParseCache, path: Path, name: str, stamp: list[int]) -> None:
        """Cassette file ``path``, from the parse cache when its entry is current (its
        interactions still text), else parsed, checked and put in the cache; indexed."""
        entry = cache.get(name, stamp)
        if entry is None and not cache.active:  # a small library: kept as made
            # (one file, a pytest test's: its checked data by content, see ``file_cache``)
            data = _parse_checked(path, remember=path == self.directory)
            c = cas.cassette_from_dict(data, path)  # every interaction made: checked now
            self._add_cassette(name, c)
            return
        if entry is None:
            data = as_wire_text(_parse_checked(path))
            c = cas.cassette_from_dict(data, path)  # every interaction made: checked now
            texts = [
                json.dumps(i, ensure_ascii=False, separators=(",", ":"), default=str).encode()
                for i in data.get("interactions") or []
            ]
            head = {k: v for k, v in data.items() if k != "interactions"}
            signature = self.index.signature(c.ignore)
            keys = [
                self.index.key_of(i.request.method, i.request.path, i.request.body, c.ignore)
                for i in c.interactions
            ]
            entry = {"data": head, "texts": texts, "keys": {signature: keys}}
            cache.put(name, stamp, entry)
            # kept as text like a warm start's: a big library's millions of small objects
            # would make every later garbage collection slow
            c.interactions = LazyInteractions(texts)
        else:
            c = cas.cassette_from_dict(entry["data"], path)
            c.interactions = LazyInteractions(entry["texts"])
        idx = self._add(name, c)
        signature = self.index.signature(c.ignore)
        keys = entry["keys"].get(signature)
        if not isinstance(keys, list) or len(keys) != len(c.interactions):
            lazy = c.interactions
            keys = [
                self.index.key_of(req.method, req.path, req.body, c.ignore)
                for req in (lazy.request_at(pos) for pos in range(len(lazy)))
            ]
            cache.put(name, stamp, {**entry, "keys": {**entry["keys"], signature: keys}})
        for pos, key in enumerate(keys):
            self.index.add_key((idx, pos), key, c.ignore)

    def _add(self, name: str, c: cas.Cassette) -> int:
        idx = len(self.cassettes)
        self.cassettes.append(c)
        self.names.append(name)
        self._by_name[name] = idx
        return idx

    def _add_cassette(self, name: str, c: cas.Cassette) -> int:
        idx = self._add(name, c)
        for pos, inter in enumerate(c.interactions):
            self._index_one(idx, pos, inter)
        return idx

    def _index_one(self, idx: int, pos: int, inter: cas.Interaction) -> None:
        req = inter.request
        self.index.add((idx, pos), req.method, req.path, req.body, self.cassettes[idx].ignore)

    def start(self) -> None:
        """Begin loading in a worker thread (call from the event loop); one small cassette
        file (a pytest test's) is read at once: faster than the hop to a thread."""
        if self._loaded or self._task is not None:
            return
        try:
            small = self.directory.is_file() and self.directory.stat().st_size < INLINE_BYTES
        except OSError:
            small = False
        if small:
            self.load()
            return
        self._task = asyncio.ensure_future(asyncio.to_thread(self.load))

    def stop(self) -> None:
        """Stop waiting for a load still running (the server is going away)."""
        if self._task is not None and not self._task.done():
            self._stopping = True
            self._task.cancel()
            self._task = None

    async def ready(self) -> None:
        if self._loaded:
            return
        self.start()
        assert self._task is not None
        await asyncio.shield(self._task)

    def reload(self) -> int:
        """Forget everything and read the directory again; returns the interaction count."""
        with self._lock:
            self.index = Index(self.ignore)
            self.cassettes, self.names, self._by_name, self.broken = [], [], {}, {}
            self.used = set()
            self._loaded, self._task, self._stopping = False, None, False
            self.load()
            return len(self.index)

    def add(self, name: str, interactions: list[cas.Interaction]) -> None:
        """Index interactions just recorded into cassette ``name``."""
        with self._lock:
            idx = self._by_name.get(name)
            if idx is None:
                idx = self._add_cassette(name, cas.Cassette(name=name))
            c = self.cassettes[idx]
            for inter in interactions:
                c.interactions.append(inter)
                self._index_one(idx, len(c.interactions) - 1, inter)
                self.used.add((idx, len(c.interactions) - 1))  # it answered the request

    def find(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        cassette: str | None = None,
        strict: bool = False,
        raw: bytes | None = None,
    ) -> Hit | Exhausted | None:
        """The next recorded interaction for the request (see ``Index.lookup``; ``raw``: the
        exact bytes ``body`` was parsed from, when known, to reuse a repeated request's key)."""
        return self.index.lookup(
            method,
            path,
            body,
            scope=cassette or "",
            accept=self._accept(cassette),
            strict=strict,
            raw=raw,
        )

    async def afind(
        self,
        method: str,
        path: str,
        body: Any,
        next_position: Callable[[str], Awaitable[int]],
        *,
        cassette: str | None = None,
        strict: bool = False,
        raw: bytes | None = None,
    ) -> Hit | Exhausted | None:
        """``find`` with the sequence positions counted by ``next_position`` (shared by
        processes; see ``Index.alookup``)."""
        return await self.index.alookup(
            method,
            path,
            body,
            next_position,
            scope=cassette or "",
            accept=self._accept(cassette),
            strict=strict,
            raw=raw,
        )

    def _accept(self, cassette: str | None) -> Callable[[Hashable], bool] | None:
        if cassette is None:
            return None
        want = self._by_name.get(cassette, -1)

        def accept(ref: Hashable) -> bool:
            return isinstance(ref, tuple) and ref[0] == want

        return accept

    def mark_used(self, ref: Hashable) -> None:
        """Note that the interaction ``ref`` (from ``find``) answered a request."""
        assert isinstance(ref, tuple)
        idx, pos = ref
        self.used.add((idx, pos))

    def unused(self) -> list[tuple[str, int, cas.Interaction]]:
        """``(cassette, position, interaction)`` of every interaction not used yet."""
        with self._lock:
            return [
                (self.names[idx], pos, inter)
                for idx, c in enumerate(self.cassettes)
                for pos, inter in enumerate(c.interactions)
                if (idx, pos) not in self.used
            ]

    def interaction(self, ref: Hashable) -> tuple[str, int, cas.Interaction]:
        assert isinstance(ref, tuple)
        idx, pos = ref
        return self.names[idx], pos, self.cassettes[idx].interactions[pos]

    def near_misses(
        self, method: str, path: str, body: Any, *, cassette: str | None = None, n: int = 3
    ) -> list[NearMiss]:
        """The recorded requests on the same route closest to this one."""
        views: dict[tuple[str, ...], Any] = {}

        def candidates() -> Iterator[tuple[str, int, Any, Any]]:
            for idx, c in enumerate(self.cassettes):
                if cassette is not None and self.names[idx] != cassette:
                    continue
                if c.ignore not in views:  # the request as seen under this cassette's ignores
                    views[c.ignore] = self.index.view(method, path, body, c.ignore)
                requests = (
                    c.interactions.request_at
                    if isinstance(c.interactions, LazyInteractions)
                    else lambda pos, c=c: c.interactions[pos].request
                )
                for pos in range(len(c.interactions)):
                    req = requests(pos)
                    if req.method == method and req.path == path:
                        recorded = self.index.view(req.method, req.path, req.body, c.ignore)
                        yield self.names[idx], pos, recorded, views[c.ignore]

        return rank_near_misses(candidates(), n)
