"""The ``SharedState`` seam's two stores, held to one contract: SQLite (``--workers N``) and a
real Redis (``--state redis://``).  Each test runs on both."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mockserver.shared.opening import check_url, open_state
from mockserver.shared.seam import Batch, SharedState, StoreDown, mask_url
from mockserver.shared.sqlite_state import SqliteState
from mockserver.wire.errors import ConfigError

T = TypeVar("T")


def run(fn: Callable[[SharedState], Coroutine[Any, Any, T]], make: Callable[[], SharedState]) -> T:
    async def main() -> T:
        store = make()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.fixture(params=["sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., SharedState]:
    """A factory of stores on one shared place (several = several processes' views)."""
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        return lambda **kw: SqliteState(path, **kw)
    server = request.getfixturevalue("redis_server")
    prefix = request.getfixturevalue("redis_prefix")
    from mockserver.shared.redis_state import RedisState

    return lambda **kw: RedisState(server.url, prefix, **kw)


def test_counters_are_atomic_across_views(make: Callable[..., SharedState]) -> None:
    async def main(a: SharedState) -> None:
        b = make()
        try:
            got = await asyncio.gather(*(s.incr("seq", "k") for s in [a, b] * 10))
            assert sorted(got) == list(range(1, 21))  # each value handed out once
            assert await b.incr("seq", "k", 5) == 25
            await a.incr("rule", "x")
            assert await a.counts("seq") == {"k": 25} and await b.counts("rule") == {"x": 1}
            await b.clear_counts("seq")
            assert await a.counts("seq") == {} and await a.counts("rule") == {"x": 1}
        finally:
            await b.close()

    run(main, make)


def test_cache_entries_live_their_lifetime(make: Callable[..., SharedState]) -> None:
    async def main(s: SharedState) -> None:
        await s.cache_put([(b"a\x00\xff", math.inf), (b"b", 0.3), (b"c", 60.0)])
        assert await s.cache_get([b"a\x00\xff", b"b", b"c", b"nope"]) == [math.inf, 0.3, 60.0, None]
        await asyncio.sleep(0.45)
        assert await s.cache_get([b"b", b"c"]) == [None, 60.0]
        assert await s.cache_clear() >= 2
        assert await s.cache_get([b"a\x00\xff", b"c"]) == [None, None]

    run(main, make)


def test_items_keep_their_order_and_names_are_unique(make: Callable[..., SharedState]) -> None:
    async def main(s: SharedState) -> None:
        assert await s.add_items("rules", [("b", '{"n":1}'), ("a", '{"n":2}')]) == []
        assert await s.add_items("rules", [("c", "{}"), ("a", "{}")]) == ["a"]  # none added
        assert await s.items("rules") == [("b", '{"n":1}'), ("a", '{"n":2}')]
        assert await s.add_items("rules", [("c", "{}")]) == []
        assert await s.remove_item("rules", "b") and not await s.remove_item("rules", "b")
        assert [k for k, _ in await s.items("rules")] == ["a", "c"]
        assert await s.items("faults") == []
        assert await s.clear_items("rules") == 2 and await s.items("rules") == []

    run(main, make)


def _record(n: int, pad: int = 0) -> str:
    return json.dumps({"n": n, "pad": "x" * pad}, separators=(",", ":"))


def test_batches_number_the_journal_add_usage_and_apply_once(
    make: Callable[..., SharedState],
) -> None:
    async def main(s: SharedState) -> None:
        first = Batch("p1", 1, (_record(1), _record(2)), {"t\x1fin": 10}, {("served", "all"): 2})
        await s.apply(first)
        await s.apply(first)  # a retried batch that had landed: not counted twice
        await s.apply(Batch("p2", 1, (_record(3),), {"t\x1fin": 5, "t\x1fout": 1}, {}))
        records = [json.loads(r) for r in await s.journal()]
        assert [(r["id"], r["n"]) for r in records] == [(1, 1), (2, 2), (3, 3)]
        assert [json.loads(r)["id"] for r in await s.journal(since_id=2)] == [3]
        assert await s.usage() == {"t\x1fin": 15, "t\x1fout": 1}
        assert await s.counts("served") == {"all": 2}
        assert await s.usage_reset() == {"t\x1fin": 15, "t\x1fout": 1}
        assert await s.usage() == {}
        assert await s.journal_clear() == 3
        await s.apply(Batch("p1", 2, (_record(4),)))
        (again,) = [json.loads(r) for r in await s.journal()]
        assert again["id"] == 4  # ids are never reused

    run(main, make)


def test_the_journal_is_capped_by_count_and_bytes(make: Callable[..., SharedState]) -> None:
    async def main(s: SharedState) -> None:
        for seq in range(1, 6):
            await s.apply(Batch("p", seq, tuple(_record(seq * 10 + i) for i in range(3))))
        kept = [json.loads(r)["n"] for r in await s.journal()]
        assert kept == [32, 40, 41, 42, 50, 51, 52]  # the last 7
        assert (await s.journal_span())[1] == 7
        await s.apply(Batch("p", 6, (_record(99, pad=3000),)))
        rest = await s.journal()
        assert sum(len(r) for r in rest) <= 4000 and json.loads(rest[-1])["n"] == 99

    run(main, lambda: make(journal_entries=7, journal_bytes=4000))


def test_versions_and_live_processes(make: Callable[..., SharedState]) -> None:
    async def main(s: SharedState) -> None:
        v0 = await s.check_in("a", 0)
        v1 = await s.bump(config=True)
        assert (v1.epoch, v1.config, v1.reload) == (v0.epoch + 1, v0.config + 1, v0.reload)
        assert (await s.bump(reload=True)).reload == v0.reload + 1
        await s.check_in("b", v1.epoch)
        assert await s.acks(5.0) == {"a": 0, "b": v1.epoch}
        await s.leave("a")
        assert await s.acks(5.0) == {"b": v1.epoch}
        await asyncio.sleep(0.25)
        assert await s.acks(0.1) == {}  # not seen lately: forgotten

    run(main, make)


def test_a_redis_that_is_not_there_is_store_down_naming_it_without_the_password() -> None:
    from mockserver.shared.redis_state import RedisState

    async def main() -> None:
        s = RedisState("redis://user:hunter2@127.0.0.1:1/0", "x:", timeout_s=0.2)
        try:
            with pytest.raises(StoreDown) as info:
                await s.incr("seq", "k")
        finally:
            await s.close()
        text = str(info.value)
        assert "hunter2" not in text and "redis at redis://***@127.0.0.1:1/0" in text

    asyncio.run(main())


def test_urls() -> None:
    assert mask_url("redis://u:pw@h:1/0") == "redis://***@h:1/0"
    assert mask_url("redis://h:1/0?password=pw&x=1") == "redis://h:1/0?password=***&x=1"
    with pytest.raises(ConfigError, match="redis://HOST:6379/0") as info:
        check_url("memcached://u:secret@h")
    assert "secret" not in str(info.value)


def test_open_state_picks_the_store(tmp_path: Path) -> None:
    store = open_state(f"sqlite://{tmp_path / 'x.db'}")
    assert store.kind == "sqlite" and (tmp_path / "x.db").exists()
    asyncio.run(store.close())
    redis_store = open_state("redis://:pw@127.0.0.1:1/0", "p:")
    assert redis_store.kind == "redis" and redis_store.where == "redis://***@127.0.0.1:1/0"
    asyncio.run(redis_store.close())
