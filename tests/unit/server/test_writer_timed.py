"""Recorded timing: each event goes out when it is due, never before; events already due
share a write (the same bytes in fewer system calls)."""

from __future__ import annotations

import asyncio
import time

from mockserver.server.writer import _write_timed
from mockserver.wire import sse


class _Recorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.writes: list[tuple[float, bytes]] = []

    async def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic() - self.t0, data))

    async def write_eof(self, data: bytes = b"") -> None:
        if data:
            await self.write(data)
        self.ended = True


def test_due_events_share_a_write_and_none_goes_early() -> None:
    events = tuple(sse.Event(f"e{i}", f'{{"i":{i}}}') for i in range(5))
    at = (0.0, 0.0, 1.0, 60.0, 60.0)
    rec = _Recorder()
    asyncio.run(_write_timed(rec, events, at, 1.0, b"\n"))  # type: ignore[arg-type]
    assert b"".join(d for _, d in rec.writes) == b"".join(e.wire() for e in events) + b"\n"
    sent = 0
    for when, data in rec.writes:  # each event's bytes leave at or after its due time
        for i, event in enumerate(events):
            if event.wire() in data:
                assert when >= at[i] / 1000 - 0.002, (i, when)
                sent += 1
    assert sent == len(events)
    assert len(rec.writes) <= 3  # 0+0 together, 1 ms apart (maybe together), 60+60 together
    assert rec.writes[-1][1].endswith(events[4].wire() + b"\n")


def test_speed_divides_the_delays() -> None:
    events = tuple(sse.Event("e", str(i)) for i in range(2))
    rec = _Recorder()
    asyncio.run(_write_timed(rec, events, (0.0, 200.0), 4.0, b""))  # type: ignore[arg-type]
    assert len(rec.writes) == 2
    assert 0.045 <= rec.writes[1][0] < 0.2
