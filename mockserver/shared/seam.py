"""``SharedState``: the one seam for everything that must be one across processes.

A single server keeps its state in memory (nothing here is used).  With ``--workers N`` or
``--state redis://...`` the processes share:

- counters (``incr``): replay sequence positions, ``times=N`` of header faults, fault rules'
  hits and draws, the scripted-reply rules' ``times`` and ``replies`` positions, requests
  served; grouped by ``kind`` so that one kind can be listed or cleared;
- the prompt-cache simulation's entries (``cache_get`` / ``cache_put``);
- the admin-added fault rules and scripted-reply rules (``items``);
- what is written behind the requests, in batches (``apply``): journal records (capped by
  count and bytes; the store numbers them), usage sums and counter increments;
- versions that tell every process to catch up (``bump``; read by ``versions`` and
  ``check_in``) and the live processes with the version each has caught up with (``acks``).

Every operation is one round trip.  A store that cannot be reached raises ``StoreDown``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

#: what a store keeps of the journal (as the in-memory journal does)
JOURNAL_MAX_ENTRIES: Final = 10_000
JOURNAL_MAX_BYTES: Final = 256 * 1024 * 1024
#: a cache entry that never expires is forgotten after this long unused (a shared store is
#: not bounded by an entry count, as the in-memory one is)
CACHE_IDLE_S: Final = 7 * 24 * 3600.0


class StoreDown(Exception):
    """The shared store cannot be reached (or failed); the message says why."""


@dataclass(frozen=True)
class Versions:
    """``epoch``: bumped to make every process catch up (write what it holds, re-read what
    changed); ``config``: the shared rules changed; ``reload``: re-read the files;
    ``journal``: someone reads the journal (write the finished exchanges)."""

    epoch: int = 0
    config: int = 0
    reload: int = 0
    journal: int = 0


@dataclass(frozen=True)
class Batch:
    """What one process wrote behind its requests since its last batch.  ``seq`` increases
    per process; a store applies a process's batch at most once (a retried batch whose
    first attempt did land is not counted twice)."""

    proc: str
    seq: int
    #: journal records: JSON objects without ``id`` (the store gives each the next one)
    records: tuple[str, ...] = ()
    #: usage sums to add, by field name
    usage: Mapping[str, int] = field(default_factory=dict)
    #: counters to add to: ``(kind, key) -> n``
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.usage or self.counts)


class SharedState(Protocol):
    #: ``sqlite`` or ``redis``
    kind: str
    #: where it is, with any password masked
    where: str

    # --- counters --------------------------------------------------------------------------
    async def incr(self, kind: str, key: str, by: int = 1) -> int: ...
    async def counts(self, kind: str) -> dict[str, int]: ...
    async def clear_counts(self, *kinds: str) -> None: ...

    # --- the prompt-cache simulation ------------------------------------------------------
    async def cache_get(self, keys: Sequence[bytes]) -> list[float | None]:
        """Each key's lifetime in seconds (``inf``: never expires) while it is alive, else
        ``None``."""
        ...

    async def cache_put(self, entries: Sequence[tuple[bytes, float]]) -> None:
        """Store (or refresh) each key for its lifetime from now."""
        ...

    async def cache_clear(self) -> int: ...

    # --- admin-added rules ----------------------------------------------------------------
    async def items(self, kind: str) -> list[tuple[str, str]]:
        """``(key, JSON)`` in the order they were added."""
        ...

    async def add_items(self, kind: str, items: Sequence[tuple[str, str]]) -> list[str]:
        """Add them all, or (when a key is taken) none: returns the keys already taken."""
        ...

    async def remove_item(self, kind: str, key: str) -> bool: ...
    async def clear_items(self, kind: str) -> int: ...

    # --- written behind the requests -------------------------------------------------------
    async def apply(self, batch: Batch) -> None: ...
    async def journal(self, since_id: int = 0) -> list[str]:
        """The records with ids above ``since_id``, oldest first, each with its ``id``."""
        ...

    async def journal_span(self) -> tuple[int | None, int]:
        """The oldest record's id (``None``: no record) and how many there are."""
        ...

    async def journal_clear(self) -> int: ...
    async def usage(self) -> dict[str, int]: ...
    async def usage_reset(self) -> dict[str, int]:
        """The sums, and zero them (one step: nothing added between is lost)."""
        ...

    # --- processes -------------------------------------------------------------------------
    async def versions(self) -> Versions:
        """The versions now (a read: no process is marked alive by it)."""
        ...

    async def bump(
        self, *, config: bool = False, reload: bool = False, journal: bool = False
    ) -> Versions: ...
    async def check_in(self, proc: str, acked: int) -> Versions:
        """Say that ``proc`` is alive and has caught up with epoch ``acked``."""
        ...

    async def acks(self, within_s: float) -> dict[str, int]:
        """The processes seen in the last ``within_s`` seconds and their acked epochs (the
        others are forgotten)."""
        ...

    async def leave(self, proc: str) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


_QUERY_SECRET = re.compile(r"(?i)((?:^|[?&;])(?:password|pass|pwd|token)=)[^&;#]*")


def mask_url(url: str) -> str:
    """``url`` with its credentials (``user:password@``, ``?password=``) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = ""
    if "?" in path:
        path, _, query = path.partition("?")
        query = "?" + _QUERY_SECRET.sub(r"\1***", query)
    elif "?" in netloc:
        netloc, _, query = netloc.partition("?")
        query = "?" + _QUERY_SECRET.sub(r"\1***", query)
    return f"{scheme}://{netloc}{slash}{path}{query}"
