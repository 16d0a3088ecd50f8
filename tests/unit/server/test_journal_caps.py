"""The in-memory journal keeps at most ``limit`` entries and about ``max_bytes`` of requests
and replies: the oldest go first (so does the shared journal's waiting room)."""

from __future__ import annotations

from mockserver.server.journal import Journal
from mockserver.server.sharing.records import SharedJournal
from mockserver.shared.outbox import Outbox


def _fill(journal: Journal, n: int, size: int) -> None:
    for i in range(n):
        ex = journal.open(
            time=float(i),
            method="POST",
            path="/v1/messages",
            query="",
            headers={},
            body={"i": i},
            request_id=f"r{i}",
            raw=b"x" * size,
        )
        ex.status = 200
        journal.close(ex)


def test_count_cap() -> None:
    journal = Journal(limit=5)
    _fill(journal, 12, 10)
    assert [ex.request_id for ex in journal.all()] == [f"r{i}" for i in range(7, 12)]


def test_byte_cap_keeps_the_newest() -> None:
    journal = Journal(limit=1000, max_bytes=10_000)
    _fill(journal, 40, 2_000)
    kept = journal.all()
    assert 2 <= len(kept) <= 5 and kept[-1].request_id == "r39"
    assert sum(ex.size for ex in kept) <= 10_000
    journal.clear()
    _fill(journal, 1, 50_000)  # one entry bigger than the cap is kept (the newest always is)
    assert len(journal.all()) == 1


def test_the_shared_journal_holds_finished_exchanges_until_published() -> None:
    outbox = Outbox("p")
    journal = SharedJournal(outbox)
    journal.limit = 3
    _fill(journal, 5, 10)
    assert outbox.take() is not None  # (the requests served are counted at once)
    outbox.done()
    assert journal.publish() == 3  # the newest 3 waited
    batch = outbox.take()
    assert (
        batch is not None and len(batch.records) == 3 and '"request_id":"r4"' in batch.records[-1]
    )
    assert journal.publish() == 0
