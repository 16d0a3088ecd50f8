"""Near misses: where a request differs from the recorded requests closest to it (the 404 of
a replay miss, the pytest plugin's failure message, the inspector)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ..contract.violations import json_path, short
from .matching import _MISSING, ABSENT

_FIRST_KEYS: Final = ("model", "system", "messages", "tools", "tool_choice")


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    recorded: Any
    requested: Any

    def describe(self) -> str:
        return f"differs at {self.path}: recorded {_show(self.recorded)}, requested {_show(self.requested)}"


def _show(value: Any) -> str:
    return ABSENT if value is _MISSING else short(value, 80)


def differences(recorded: Any, requested: Any, limit: int = 20) -> list[Difference]:
    """Leaf differences between two canonical bodies, in reading order (at most ``limit``)."""
    out: list[Difference] = []
    _diff(recorded, requested, [], out, limit, top=True)
    return out


def _diff(
    a: Any, b: Any, at: list[str | int], out: list[Difference], limit: int, top: bool = False
) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        if top:
            keys = [k for k in _FIRST_KEYS if k in keys] + [k for k in keys if k not in _FIRST_KEYS]
        for k in keys:
            _diff(a.get(k, _MISSING), b.get(k, _MISSING), [*at, k], out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(
                a[i] if i < len(a) else _MISSING,
                b[i] if i < len(b) else _MISSING,
                [*at, i],
                out,
                limit,
            )
        return
    if type(a) is not type(b) or a != b:
        out.append(Difference(json_path(at), a, b))


@dataclass(frozen=True, slots=True)
class NearMiss:
    cassette: str
    interaction: int
    differences: tuple[Difference, ...]
    count: int  # number of differences found (capped)

    def describe(self) -> str:
        if not self.differences:
            return f"{self.cassette}#{self.interaction}"
        more = f" ({self.count} differences)" if self.count > 1 else ""
        return f"{self.cassette}#{self.interaction} {self.differences[0].describe()}{more}"

    def to_dict(self) -> dict[str, Any]:
        first = self.differences[0] if self.differences else None
        return {
            "cassette": self.cassette,
            "interaction": self.interaction,
            "path": first.path if first else None,
            "recorded": _journal_value(first.recorded) if first else None,
            "requested": _journal_value(first.requested) if first else None,
            "differences": self.count,
            "diff": [
                {
                    "path": d.path,
                    "recorded": _journal_value(d.recorded),
                    "requested": _journal_value(d.requested),
                }
                for d in self.differences
            ],
        }


def _journal_value(value: Any) -> Any:
    return ABSENT if value is _MISSING else value


def rank_near_misses(
    candidates: Iterable[tuple[str, int, Any, Any]], n: int = 3, limit: int = 20
) -> list[NearMiss]:
    """The ``n`` closest of ``(cassette, interaction, recorded body, requested body)``
    candidates (canonical bodies), fewest differences first; ties keep library order."""
    scored: list[tuple[int, int, NearMiss]] = []
    for order, (cassette, idx, recorded, requested) in enumerate(candidates):
        diffs = differences(recorded, requested, limit)
        scored.append((len(diffs), order, NearMiss(cassette, idx, tuple(diffs[:5]), len(diffs))))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [nm for _, _, nm in scored[:n]]
