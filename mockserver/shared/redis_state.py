"""``RedisState``: the shared state of replicas (``--state redis://HOST:PORT/DB``), any number
of ``mockserver serve`` processes on any machines.

Every key starts with the prefix (``--state-prefix``, default ``mockserver:``), so two mocks
can share one Redis.  What must happen at once (a batch, a check-in, adding rules) is one Lua
script: atomic, one round trip.  Keys (after the prefix)::

    n:KIND         hash  counters of one kind
    c:KEY          str   a prompt-cache entry (its lifetime; expires with it)
    i:KIND         hash  admin-added rules: key -> "SEQ<TAB>JSON";  i:KIND:seq  their counter
    j              zset  journal records by id;  j:ids  the last id;  j:bytes  their size
    u              hash  usage sums
    v              hash  versions: epoch, config, reload, journal
    procs          hash  live processes: proc -> "ACKED:SEEN_MS";  applied  proc -> batch seq
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from .seam import (
    CACHE_IDLE_S,
    JOURNAL_MAX_BYTES,
    JOURNAL_MAX_ENTRIES,
    Batch,
    StoreDown,
    Versions,
    mask_url,
)

#: seconds a Redis call may take (connecting included) before the store counts as down
TIMEOUT_S: Final = 0.5
T = TypeVar("T")

_APPLY = """
local p = ARGV[1]
local proc, seq = ARGV[2], tonumber(ARGV[3])
local done = tonumber(redis.call('HGET', p .. 'applied', proc) or '0')
if seq <= done then return 0 end
redis.call('HSET', p .. 'applied', proc, seq)
local maxn, maxb = tonumber(ARGV[4]), tonumber(ARGV[5])
local i = 6
local nrec = tonumber(ARGV[i]); i = i + 1
if nrec > 0 then
  local id = redis.call('INCRBY', p .. 'j:ids', nrec) - nrec
  local added = 0
  for k = 1, nrec do
    id = id + 1
    local member = '{"id":' .. id .. ',' .. string.sub(ARGV[i], 2)
    i = i + 1
    redis.call('ZADD', p .. 'j', id, member)
    added = added + #member
  end
  local total = redis.call('INCRBY', p .. 'j:bytes', added)
  while redis.call('ZCARD', p .. 'j') > maxn or total > maxb do
    local old = redis.call('ZPOPMIN', p .. 'j')
    if #old == 0 then break end
    total = redis.call('DECRBY', p .. 'j:bytes', #old[1])
  end
end
local nusage = tonumber(ARGV[i]); i = i + 1
for k = 1, nusage do
  redis.call('HINCRBY', p .. 'u', ARGV[i], ARGV[i + 1]); i = i + 2
end
local ncount = tonumber(ARGV[i]); i = i + 1
for k = 1, ncount do
  redis.call('HINCRBY', p .. 'n:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
return 1
"""

_VERSIONS = "return redis.call('HMGET', p .. 'v', 'epoch', 'config', 'reload', 'journal')"

_BUMP = (
    """
local p = ARGV[1]
redis.call('HINCRBY', p .. 'v', 'epoch', 1)
if ARGV[2] == '1' then redis.call('HINCRBY', p .. 'v', 'config', 1) end
if ARGV[3] == '1' then redis.call('HINCRBY', p .. 'v', 'reload', 1) end
if ARGV[4] == '1' then redis.call('HINCRBY', p .. 'v', 'journal', 1) end
"""
    + _VERSIONS
)

_CHECK_IN = (
    """
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', p .. 'procs', ARGV[2], ARGV[3] .. ':' .. now)
"""
    + _VERSIONS
)

_ACKS = """
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local within = tonumber(ARGV[2])
local all = redis.call('HGETALL', p .. 'procs')
local out = {}
for k = 1, #all, 2 do
  local proc, value = all[k], all[k + 1]
  local sep = string.find(value, ':', 1, true)
  local acked, seen = string.sub(value, 1, sep - 1), tonumber(string.sub(value, sep + 1))
  if now - seen > within then
    redis.call('HDEL', p .. 'procs', proc)
    redis.call('HDEL', p .. 'applied', proc)
  else
    table.insert(out, proc); table.insert(out, acked)
  end
end
return out
"""

_ADD_ITEMS = """
local p, kind = ARGV[1], ARGV[2]
local hash = p .. 'i:' .. kind
local taken = {}
for k = 3, #ARGV, 2 do
  if redis.call('HEXISTS', hash, ARGV[k]) == 1 then table.insert(taken, ARGV[k]) end
end
if #taken > 0 then return taken end
for k = 3, #ARGV, 2 do
  local seq = redis.call('INCR', hash .. ':seq')
  redis.call('HSET', hash, ARGV[k], seq .. '\\t' .. ARGV[k + 1])
end
return taken
"""

_TAKE_USAGE = """
local key = ARGV[1] .. 'u'
local all = redis.call('HGETALL', key)
redis.call('DEL', key)
return all
"""

_JOURNAL_CLEAR = """
local p = ARGV[1]
local n = redis.call('ZCARD', p .. 'j')
redis.call('DEL', p .. 'j', p .. 'j:bytes')
return n
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _versions(values: Sequence[Any]) -> Versions:
    return Versions(*(int(v) if v is not None else 0 for v in values))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisState:
    """The ``SharedState`` of replicas on one Redis (see the module docstring)."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "mockserver:",
        *,
        journal_entries: int = JOURNAL_MAX_ENTRIES,
        journal_bytes: int = JOURNAL_MAX_BYTES,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.where = mask_url(url)
        self.prefix = prefix
        self.journal_entries = journal_entries
        self.journal_bytes = journal_bytes
        try:
            self._r = aioredis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry_on_timeout=False,
            )
        except ValueError as exc:
            raise StoreDown(f"--state {self.where}: {exc}") from None
        self._scripts = {
            name: self._r.register_script(text)
            for name, text in (
                ("apply", _APPLY),
                ("bump", _BUMP),
                ("check_in", _CHECK_IN),
                ("acks", _ACKS),
                ("add_items", _ADD_ITEMS),
                ("take_usage", _TAKE_USAGE),
                ("journal_clear", _JOURNAL_CLEAR),
            )
        }

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call; any failure is ``StoreDown`` saying why (no secret in it)."""
        from redis.exceptions import RedisError

        try:
            return await fn()
        except (RedisError, OSError) as exc:
            reason = mask_url(str(exc)).replace(self.url, self.where) or type(exc).__name__
            raise StoreDown(f"redis at {self.where}: {reason}") from None

    async def _script(self, name: str, *args: Any) -> Any:
        script = self._scripts[name]
        return await self._call(lambda: script(args=[self.prefix, *args]))

    # --- counters --------------------------------------------------------------------------

    async def incr(self, kind: str, key: str, by: int = 1) -> int:
        return int(await self._call(lambda: self._r.hincrby(f"{self.prefix}n:{kind}", key, by)))

    async def counts(self, kind: str) -> dict[str, int]:
        raw = await self._call(lambda: self._r.hgetall(f"{self.prefix}n:{kind}"))
        return {_text(k): int(v) for k, v in raw.items()}

    async def clear_counts(self, *kinds: str) -> None:
        if kinds:
            await self._call(lambda: self._r.delete(*(f"{self.prefix}n:{k}" for k in kinds)))

    # --- the prompt-cache simulation ------------------------------------------------------

    def _cache_key(self, key: bytes) -> bytes:
        return self.prefix.encode() + b"c:" + key

    async def cache_get(self, keys: Sequence[bytes]) -> list[float | None]:
        if not keys:
            return []
        values = await self._call(lambda: self._r.mget([self._cache_key(k) for k in keys]))
        return [None if v is None else float(_text(v)) for v in values]

    async def cache_put(self, entries: Sequence[tuple[bytes, float]]) -> None:
        if not entries:
            return

        async def put() -> None:
            pipe = self._r.pipeline(transaction=False)
            for key, life in entries:
                ms = int((life if math.isfinite(life) else CACHE_IDLE_S) * 1000)
                pipe.set(self._cache_key(key), repr(life), px=max(ms, 1))
            await pipe.execute()

        await self._call(put)

    async def cache_clear(self) -> int:
        pattern = _glob_escape(self.prefix) + "c:*"

        async def clear() -> int:
            n = 0
            batch: list[bytes] = []
            async for key in self._r.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    n += await self._r.unlink(*batch)
                    batch = []
            if batch:
                n += await self._r.unlink(*batch)
            return n

        return await self._call(clear)

    # --- admin-added rules ----------------------------------------------------------------

    async def items(self, kind: str) -> list[tuple[str, str]]:
        raw = await self._call(lambda: self._r.hgetall(f"{self.prefix}i:{kind}"))
        rows = []
        for k, v in raw.items():
            seq, _, data = _text(v).partition("\t")
            rows.append((int(seq), _text(k), data))
        return [(k, d) for _, k, d in sorted(rows)]

    async def add_items(self, kind: str, items: Sequence[tuple[str, str]]) -> list[str]:
        flat = [x for pair in items for x in pair]
        taken = await self._script("add_items", kind, *flat)
        return [_text(t) for t in taken]

    async def remove_item(self, kind: str, key: str) -> bool:
        return bool(await self._call(lambda: self._r.hdel(f"{self.prefix}i:{kind}", key)))

    async def clear_items(self, kind: str) -> int:
        hash_key = f"{self.prefix}i:{kind}"

        async def clear() -> int:
            n = int(await self._r.hlen(hash_key))
            await self._r.delete(hash_key)
            return n

        return await self._call(clear)

    # --- written behind the requests -------------------------------------------------------

    async def apply(self, batch: Batch) -> None:
        args: list[Any] = [batch.proc, batch.seq, self.journal_entries, self.journal_bytes]
        args += [len(batch.records), *batch.records]
        args.append(len(batch.usage))
        for name, n in batch.usage.items():
            args += [name, n]
        args.append(len(batch.counts))
        for (kind, key), n in batch.counts.items():
            args += [kind, key, n]
        await self._script("apply", *args)

    async def journal(self, since_id: int = 0) -> list[str]:
        raw = await self._call(
            lambda: self._r.zrangebyscore(f"{self.prefix}j", f"({since_id}", "+inf")
        )
        return [_text(r) for r in raw]

    async def journal_span(self) -> tuple[int | None, int]:
        key = f"{self.prefix}j"

        async def span() -> tuple[int | None, int]:
            pipe = self._r.pipeline(transaction=False)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.zcard(key)
            first, count = await pipe.execute()
            return (int(first[0][1]) if first else None), int(count)

        return await self._call(span)

    async def journal_clear(self) -> int:
        return int(await self._script("journal_clear"))

    async def usage(self) -> dict[str, int]:
        raw = await self._call(lambda: self._r.hgetall(f"{self.prefix}u"))
        return {_text(k): int(v) for k, v in raw.items()}

    async def usage_reset(self) -> dict[str, int]:
        flat = await self._script("take_usage")
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    # --- processes -------------------------------------------------------------------------

    async def versions(self) -> Versions:
        values = await self._call(
            lambda: self._r.hmget(f"{self.prefix}v", ["epoch", "config", "reload", "journal"])
        )
        return _versions(values)

    async def bump(
        self, *, config: bool = False, reload: bool = False, journal: bool = False
    ) -> Versions:
        flags = ("1" if on else "0" for on in (config, reload, journal))
        return _versions(await self._script("bump", *flags))

    async def check_in(self, proc: str, acked: int) -> Versions:
        return _versions(await self._script("check_in", proc, acked))

    async def acks(self, within_s: float) -> dict[str, int]:
        flat = await self._script("acks", int(within_s * 1000))
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def leave(self, proc: str) -> None:
        await self._call(lambda: self._r.hdel(f"{self.prefix}procs", proc))

    async def ping(self) -> None:
        await self._call(self._r.ping)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # (closing a client whose Redis is gone)
            await self._r.aclose()
