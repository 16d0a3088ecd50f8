"""``Outbox``: what a process writes behind its requests until the next batch (journal
records, usage sums, counter increments), and the batch in flight until the store has it."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from .seam import JOURNAL_MAX_ENTRIES, Batch

#: the most records one batch carries (a backlog goes in several)
BATCH_RECORDS = 500


class Outbox:
    """Single-threaded (the event loop's); ``take`` hands out the batch to apply and keeps
    handing out the same one until ``done``: a batch that failed is retried as it was."""

    def __init__(self, proc: str, max_records: int = JOURNAL_MAX_ENTRIES) -> None:
        self.proc = proc
        #: (a store that is away for long keeps only the newest records, as the journal would)
        self._records: deque[str] = deque(maxlen=max_records)
        self._usage: dict[str, int] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._seq = 0
        self._taken: Batch | None = None

    def record(self, text: str) -> None:
        self._records.append(text)

    def usage(self, sums: Mapping[str, int]) -> None:
        for name, n in sums.items():
            self._usage[name] = self._usage.get(name, 0) + n

    def count(self, kind: str, key: str, n: int = 1) -> None:
        self._counts[kind, key] = self._counts.get((kind, key), 0) + n

    def counted(self, kind: str, key: str) -> int:
        """What ``kind``/``key`` has gathered here and the store has not yet."""
        held = self._taken.counts.get((kind, key), 0) if self._taken is not None else 0
        return held + self._counts.get((kind, key), 0)

    def take(self) -> Batch | None:
        """The batch to apply now (the last one again if it was not ``done``), or ``None``."""
        if self._taken is not None:
            return self._taken
        if not (self._records or self._usage or self._counts):
            return None
        records = tuple(
            self._records.popleft() for _ in range(min(len(self._records), BATCH_RECORDS))
        )
        self._seq += 1
        batch = Batch(self.proc, self._seq, records, self._usage, self._counts)
        self._usage, self._counts = {}, {}
        self._taken = batch
        return batch

    def done(self) -> None:
        """The store has the batch ``take`` handed out."""
        self._taken = None

    def __len__(self) -> int:
        """Records waiting (in the batch in flight too)."""
        return len(self._records) + (len(self._taken.records) if self._taken else 0)

    def __bool__(self) -> bool:
        return self._taken is not None or bool(self._records or self._usage or self._counts)
