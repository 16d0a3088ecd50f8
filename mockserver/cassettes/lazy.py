"""A cassette's interactions held as text until a request needs one.

A warm library start reads each interaction as the JSON text the parse cache stored; the
``Interaction`` (its request, headers, reply bytes, events) is made the first time the
interaction is served or shown, then kept.  A library of 100,000 interactions so costs
100,000 strings until it is used, not millions of small objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, overload

from .cassette import Interaction, RecordedRequest, interaction_from_dict, request_from_dict


class LazyInteractions(list[Interaction]):
    """A list of interactions, some of them still JSON text (made on first access)."""

    def __init__(self, items: Iterable[Interaction | str | bytes] = ()) -> None:
        super().__init__(items)  # type: ignore[arg-type]  # texts until first access

    def _made(self, i: int) -> Interaction:
        item: Any = super().__getitem__(i)
        if isinstance(item, str | bytes):
            item = interaction_from_dict(json.loads(item))
            super().__setitem__(i, item)
        return item  # type: ignore[no-any-return]

    @overload
    def __getitem__(self, i: SupportsIndex) -> Interaction: ...
    @overload
    def __getitem__(self, i: slice) -> list[Interaction]: ...
    def __getitem__(self, i: SupportsIndex | slice) -> Interaction | list[Interaction]:
        if isinstance(i, slice):
            return [self._made(j) for j in range(*i.indices(len(self)))]
        return self._made(i.__index__())

    def __iter__(self) -> Iterator[Interaction]:
        return (self._made(j) for j in range(len(self)))

    def request_at(self, i: int) -> RecordedRequest:
        """Interaction ``i``'s request, without making (or keeping) the whole interaction."""
        item: Any = super().__getitem__(i)
        if isinstance(item, str | bytes):
            return request_from_dict(json.loads(item)["request"])
        return item.request  # type: ignore[no-any-return]

    def made(self) -> int:
        """How many interactions have been made so far (the rest are still text)."""
        return sum(not isinstance(x, str | bytes) for x in super().__iter__())
