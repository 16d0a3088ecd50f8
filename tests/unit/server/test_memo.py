"""``CheckedBodies``: bounded by entry size and total bytes, the oldest out first."""

from __future__ import annotations

from typing import Any, cast

from mockserver.server.memo import CheckedBodies
from mockserver.wire.request import CheckedRequest


def _checked(tag: str) -> CheckedRequest:
    return cast(CheckedRequest, tag)  # (the memo keeps whatever it is given)


def test_get_what_was_put() -> None:
    memo = CheckedBodies()
    memo.put(b'{"a":1}', _checked("a"))
    assert memo.get(b'{"a":1}') == "a"
    assert memo.get(b'{"a": 1}') is None  # exact bytes only
    assert len(memo) == 1


def test_large_bodies_are_not_kept() -> None:
    memo = CheckedBodies(max_entry=10, max_total=100)
    memo.put(b"x" * 11, _checked("big"))
    assert memo.get(b"x" * 11) is None and len(memo) == 0


def test_the_byte_budget_drops_the_oldest_first() -> None:
    memo = CheckedBodies(max_entry=10, max_total=30)
    keys = [bytes([65 + i]) * 10 for i in range(4)]
    for i, key in enumerate(keys):
        memo.put(key, _checked(str(i)))
    assert memo.get(keys[0]) is None  # 40 bytes > 30: the first went
    assert [memo.get(k) for k in keys[1:]] == ["1", "2", "3"]
    memo.put(keys[1], _checked("again"))  # already there: kept as it was
    assert memo.get(keys[1]) == "1"
    memo.clear()
    assert len(memo) == 0 and memo.get(keys[3]) is None
    memo.put(keys[0], _checked("0"))  # the budget counts from zero again
    assert memo.get(keys[0]) == "0"


def test_state_starts_a_new_memo_when_reconfigured() -> None:
    from mockserver.accounting.tokens import TokenCounter
    from mockserver.config import Settings
    from mockserver.server.state import State

    settings = Settings(mode="synth")
    state = State(settings=settings, counter=TokenCounter(settings.profile.overheads))
    state.checked.put(b"{}", _checked("x"))
    before: Any = state.checked
    state.reconfigure(settings)
    assert state.checked is not before and state.checked.get(b"{}") is None
