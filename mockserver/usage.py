"""Token usage and cost: per reply (``x-mockserver-cost-usd``) and in total (admin ``usage``).

Cost is exact decimal arithmetic on the profile's prices per 1M tokens:
``input·in + output·out + cache_read·cache_read + cache_creation·cache_write``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .profile import Prices

FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_MILLION = Decimal(1_000_000)


def _price(value: float) -> Decimal:
    """A YAML price (a float) as the decimal written in the file: ``0.14``."""
    return Decimal(repr(float(value)))


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cost(usage: Mapping[str, Any], prices: Prices) -> Decimal:
    """Exact cost in USD of one reply's ``usage``.

    With ``prices.cache_write_1h`` set, the 1-hour part of the writes
    (``cache_creation.ephemeral_1h_input_tokens``) is charged at that price.
    """
    writes = _tokens(usage, "cache_creation_input_tokens")
    breakdown = usage.get("cache_creation")
    writes_1h = 0
    if prices.cache_write_1h is not None and isinstance(breakdown, Mapping):
        writes_1h = min(_tokens(breakdown, "ephemeral_1h_input_tokens"), writes)
    total = (
        _tokens(usage, "input_tokens") * _price(prices.input)
        + _tokens(usage, "output_tokens") * _price(prices.output)
        + _tokens(usage, "cache_read_input_tokens") * _price(prices.cache_read)
        + (writes - writes_1h) * _price(prices.cache_write)
    )
    if writes_1h:
        total += writes_1h * _price(prices.cache_write_1h or 0.0)
    return total / _MILLION


def format_usd(value: Decimal) -> str:
    """Plain decimal text, no exponent, no trailing zeros: ``0.00000308``, ``0``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("0", "-0") else text


def _empty() -> dict[str, Any]:
    return {"requests": 0, **dict.fromkeys(FIELDS, 0), "cost": Decimal(0)}


def _add(bucket: dict[str, Any], usage: Mapping[str, Any], amount: Decimal) -> None:
    bucket["requests"] += 1
    for key in FIELDS:
        bucket[key] += _tokens(usage, key)
    bucket["cost"] += amount


def _json(bucket: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in bucket.items() if k != "cost"}
    out["cost_usd"] = format_usd(bucket["cost"])
    return out


class UsageMeter:
    """Sums of the ``/v1/messages`` replies' usage since start or the last ``reset``."""

    def __init__(self, prices: Prices) -> None:
        self.prices = prices
        self._lock = threading.Lock()
        self._total = _empty()
        self._by_model: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, dict[str, Any]] = {}

    def record(self, usage: Mapping[str, Any], model: str | None, api_key: str) -> Decimal:
        """Count one reply; returns its cost."""
        amount = cost(usage, self.prices)
        with self._lock:
            _add(self._total, usage, amount)
            _add(self._by_model.setdefault(model or "unknown", _empty()), usage, amount)
            _add(self._by_key.setdefault(api_key, _empty()), usage, amount)
        return amount

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_mockserver/usage`` shape (``cost_usd`` as an exact decimal string)."""
        with self._lock:
            out = _json(self._total)
            out["by_model"] = {k: _json(v) for k, v in sorted(self._by_model.items())}
            out["by_api_key"] = {k: _json(v) for k, v in sorted(self._by_key.items())}
        return out

    def reset(self) -> None:
        with self._lock:
            self._total = _empty()
            self._by_model.clear()
            self._by_key.clear()
