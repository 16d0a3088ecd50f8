"""``CycleCollector``: automatic collection off while serving, cycles collected when idle or
after much growth, everything as it was after ``stop``."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

from mockserver.server.collector import CycleCollector


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


class _Leaf:
    """A tracked object that no free list recycles (so it counts as growth)."""


def _cycle() -> weakref.ref[_Node]:
    return weakref.ref(_Node())


def _with_collector(
    body: Callable[[CycleCollector, list[bool]], None], **kwargs: int
) -> CycleCollector:
    busy = [False]

    async def main() -> CycleCollector:
        collector = CycleCollector(lambda: busy[0], interval=3600, **kwargs)
        collector.start()
        try:
            assert not gc.isenabled()  # no automatic pause while serving
            body(collector, busy)
        finally:
            await collector.stop()
        return collector

    was = gc.isenabled()
    try:
        return asyncio.run(main())
    finally:
        assert gc.isenabled() == was  # restored by stop()


def test_idle_server_collects_its_cycles() -> None:
    def body(collector: CycleCollector, busy: list[bool]) -> None:
        gc.collect()  # (reset the counts)
        junk = [_Leaf() for _ in range(50)]  # some growth, over idle_min_growth
        ref = _cycle()
        assert ref() is not None  # automatic collection is off: the cycle stays
        assert collector.tick()
        assert ref() is None
        del junk

    collector = _with_collector(body, idle_min_growth=10)
    assert collector.collections == 1 and collector.forced == 0


def test_busy_server_does_not_pause_until_growth_passes_the_bound() -> None:
    def body(collector: CycleCollector, busy: list[bool]) -> None:
        busy[0] = True
        gc.collect()
        ref = _cycle()
        keep = [_Leaf() for _ in range(100)]
        assert not collector.tick()  # busy, under max_growth: no pause
        assert ref() is not None
        keep += [_Leaf() for _ in range(2_000)]
        assert collector.tick()  # past max_growth: collected even though busy
        assert ref() is None
        del keep

    collector = _with_collector(body, idle_min_growth=10, max_growth=1_000)
    assert collector.forced == 1 and collector.collections == 1


def test_little_growth_is_not_worth_a_collection() -> None:
    def body(collector: CycleCollector, busy: list[bool]) -> None:
        gc.collect()
        assert not collector.tick()

    assert _with_collector(body, idle_min_growth=1_000_000).collections == 0


def test_the_watch_task_ticks_in_the_loop() -> None:
    async def main() -> int:
        collector = CycleCollector(lambda: False, interval=0.01, idle_min_growth=1)
        collector.start()
        try:
            junk = [_Leaf() for _ in range(100)]
            ref = _cycle()
            for _ in range(200):
                await asyncio.sleep(0.01)
                if ref() is None:
                    break
            assert ref() is None
            del junk
        finally:
            await collector.stop()
        return collector.collections

    assert asyncio.run(main()) >= 1


def test_a_serving_process_counts_open_and_recent_requests_as_busy() -> None:
    from mockserver.accounting.tokens import TokenCounter
    from mockserver.config import Settings
    from mockserver.server.running import serving_collector
    from mockserver.server.state import State

    settings = Settings(mode="synth")
    state = State(settings=settings, counter=TokenCounter(settings.profile.overheads))

    async def main() -> list[bool]:
        collector = serving_collector(state)
        try:
            seen: list[object] = [collector.busy()]  # nothing open: idle
            state.in_flight = 1
            seen.append(collector.busy())  # one open: never pause it
            state.in_flight = 0
            state.served += 3
            seen.append(collector.served())  # what it compares between two looks
            return seen
        finally:
            await collector.stop()

    assert asyncio.run(main()) == [False, True, 3]


def test_idle_collections_go_young_then_middle_then_full() -> None:
    generations: list[int] = []

    def body(collector: CycleCollector, busy: list[bool]) -> None:
        real = gc.collect

        def spy(generation: int = 2) -> int:
            generations.append(generation)
            return real(generation)

        gc.collect = spy  # type: ignore[assignment]
        try:
            for _ in range(CycleCollector.FULL_EVERY):
                keep = [_Leaf() for _ in range(20)]
                assert collector.tick()
                del keep
        finally:
            gc.collect = real  # type: ignore[assignment]

    _with_collector(body, idle_min_growth=5)
    assert generations.count(2) == 1 and generations[-1] == 2
    assert generations.count(1) == CycleCollector.FULL_EVERY // CycleCollector.MIDDLE_EVERY - 1
    assert generations[: CycleCollector.MIDDLE_EVERY - 1] == [0] * (CycleCollector.MIDDLE_EVERY - 1)


def test_traffic_that_never_goes_quiet_is_collected_once_per_lull() -> None:
    served = [0]

    async def main() -> tuple[list[bool], int]:
        collector = CycleCollector(
            lambda: False, lambda: served[0], interval=3600, idle_min_growth=5, lull_s=3600
        )
        collector.start()
        try:
            seen = []
            for _ in range(3):  # a request started between every two looks: never quiet
                served[0] += 1
                keep = [_Leaf() for _ in range(20)]
                seen.append(collector.tick())
                del keep
            collector._last_at -= 3600  # the lull has passed
            served[0] += 1
            keep = [_Leaf() for _ in range(20)]
            seen.append(collector.tick())  # collected at a moment with nothing in flight
            keep += [_Leaf() for _ in range(20)]
            seen.append(collector.tick())  # quiet now (nothing started since): collected
            del keep
        finally:
            await collector.stop()
        return seen, collector.collections

    seen, collections = asyncio.run(main())
    assert seen == [False, False, False, True, True] and collections == 2
