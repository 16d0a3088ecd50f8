"""Token usage and cost: per reply (``x-mockserver-cost-usd``) and in total (admin ``usage``).

Cost is exact decimal arithmetic on the profile's prices per 1M tokens:
``input·in + output·out + cache_read·cache_read + cache_creation·cache_write``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..profile import Prices

#: distinct pending usage records before they are summed (see ``UsageMeter.record``)
_PENDING_MAX = 1024
#: distinct token counts whose cost is remembered
_COSTS_MAX = 65_536
FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_MILLION = Decimal(1_000_000)


@functools.lru_cache(maxsize=256)
def _price(value: float) -> Decimal:
    """A YAML price (a float) as the decimal written in the file: ``0.14``."""
    return Decimal(repr(float(value)))


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _counts(usage: Mapping[str, Any], prices: Prices) -> tuple[int, int, int, int, int]:
    """``(input, output, cache read, cache write, of which written for 1 hour)`` tokens (the
    first four in the order of ``FIELDS``); the 1-hour part only when ``prices`` charges it
    apart."""
    writes = _tokens(usage, "cache_creation_input_tokens")
    breakdown = usage.get("cache_creation")
    writes_1h = 0
    if prices.cache_write_1h is not None and isinstance(breakdown, Mapping):
        writes_1h = min(_tokens(breakdown, "ephemeral_1h_input_tokens"), writes)
    return (
        _tokens(usage, "input_tokens"),
        _tokens(usage, "output_tokens"),
        _tokens(usage, "cache_read_input_tokens"),
        writes,
        writes_1h,
    )


def cost(usage: Mapping[str, Any], prices: Prices) -> Decimal:
    """Exact cost in USD of one reply's ``usage``.

    With ``prices.cache_write_1h`` set, the 1-hour part of the writes
    (``cache_creation.ephemeral_1h_input_tokens``) is charged at that price.
    """
    return _cost(*_counts(usage, prices), prices)


@functools.lru_cache(maxsize=4096)  # replies repeat their token counts (replays: always)
def _cost(
    inp: int, out: int, cache_read: int, writes: int, writes_1h: int, prices: Prices
) -> Decimal:
    total = (
        inp * _price(prices.input)
        + out * _price(prices.output)
        + cache_read * _price(prices.cache_read)
        + (writes - writes_1h) * _price(prices.cache_write)
    )
    if writes_1h:
        total += writes_1h * _price(prices.cache_write_1h or 0.0)
    return total / _MILLION


@functools.lru_cache(maxsize=4096)
def format_usd(value: Decimal) -> str:
    """Plain decimal text, no exponent, no trailing zeros: ``0.00000308``, ``0``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("0", "-0") else text


def _empty() -> dict[str, Any]:
    return {"requests": 0, **dict.fromkeys(FIELDS, 0), "cost": Decimal(0)}


def _add(bucket: dict[str, Any], usage: Mapping[str, Any], amount: Decimal) -> None:
    _add_counts(bucket, [_tokens(usage, key) for key in FIELDS], amount)


def _add_counts(
    bucket: dict[str, Any], counts: Sequence[int], amount: Decimal, times: int = 1
) -> None:
    bucket["requests"] += times
    for key, n in zip(FIELDS, counts, strict=True):
        if n:
            bucket[key] += n * times
    bucket["cost"] += amount * times if times != 1 else amount


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
        #: replies counted but not yet added to the sums, as ``(model, key, counts) -> how
        #: many``: a reply costs one dict update, the sums are made when read
        self._pending: dict[tuple[str, str, tuple[int, ...]], int] = {}
        #: the cost (and its text) of each token counts seen (replies repeat their counts)
        self._costs: dict[tuple[int, ...], tuple[Decimal, str]] = {}
        #: the sums are a shared store's: pending replies wait for ``drain``, however many
        self.shared = False

    def record(self, usage: Mapping[str, Any], model: str | None, api_key: str) -> str:
        """Count one reply; returns its cost in USD as ``format_usd`` writes it."""
        counts = _counts(usage, self.prices)
        known = self._costs.get(counts)
        if known is None:
            if len(self._costs) >= _COSTS_MAX:
                self._costs.clear()
            amount = _cost(*counts, self.prices)
            known = self._costs[counts] = (amount, format_usd(amount))
        entry = (model or "unknown", api_key, counts)
        with self._lock:
            self._pending[entry] = self._pending.get(entry, 0) + 1
            if len(self._pending) >= _PENDING_MAX and not self.shared:
                self._flush()
        return known[1]

    def _flush(self) -> None:
        """Add the pending replies to the sums (with the lock held)."""
        pending, self._pending = self._pending, {}
        for (model, api_key, counts), times in pending.items():
            known = self._costs.get(counts)
            # (a cost forgotten since is made again: the memo is bounded)
            amount = known[0] if known is not None else _cost(*counts, self.prices)
            tokens = counts[:4]
            _add_counts(self._total, tokens, amount, times)
            by_model = self._by_model.get(model)
            if by_model is None:
                by_model = self._by_model[model] = _empty()
            _add_counts(by_model, tokens, amount, times)
            by_key = self._by_key.get(api_key)
            if by_key is None:
                by_key = self._by_key[api_key] = _empty()
            _add_counts(by_key, tokens, amount, times)

    def drain(self) -> dict[tuple[str, str, tuple[int, ...]], int]:
        """The replies counted since the last ``drain`` (for a shared store), taken away:
        ``(model, key label, token counts) -> how many``."""
        with self._lock:
            pending, self._pending = self._pending, {}
            return pending

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_mockserver/usage`` shape (``cost_usd`` as an exact decimal string)."""
        with self._lock:
            self._flush()
            out = _json(self._total)
            out["by_model"] = {k: _json(v) for k, v in sorted(self._by_model.items())}
            out["by_api_key"] = {k: _json(v) for k, v in sorted(self._by_key.items())}
        return out

    def reset(self) -> None:
        with self._lock:
            self._pending = {}
            self._total = _empty()
            self._by_model.clear()
            self._by_key.clear()


# --- usage shared by processes (``--workers N``, ``--state redis://``) -------------------------

#: how a shared store names a usage sum: ``SCOPE<US>NAME<US>FIELD``, scope ``t`` (total),
#: ``m`` (by model) or ``k`` (by key label); fields: ``requests``, ``FIELDS``, ``writes_1h``
_SEP = "\x1f"
_SUM_FIELDS = ("requests", *FIELDS, "writes_1h")


def usage_sums(pending: Mapping[tuple[str, str, tuple[int, ...]], int]) -> dict[str, int]:
    """``UsageMeter.drain()``'s replies as sums to add to a shared store."""
    out: dict[str, int] = {}
    for (model, api_key, counts), times in pending.items():
        values = (1, *counts)  # requests, the four fields, writes_1h
        for scope, name in (("t", ""), ("m", model), ("k", api_key)):
            for field_name, n in zip(_SUM_FIELDS, values, strict=True):
                if n:
                    key = f"{scope}{_SEP}{name}{_SEP}{field_name}"
                    out[key] = out.get(key, 0) + n * times
    return out


def snapshot_of(sums: Mapping[str, int], prices: Prices) -> dict[str, Any]:
    """The ``GET /_mockserver/usage`` shape of a shared store's sums (cost is linear in the
    token counts, so the sums give it exactly)."""
    buckets: dict[tuple[str, str], dict[str, int]] = {("t", ""): {}}
    for key, n in sums.items():
        scope, name, field_name = key.split(_SEP, 2)
        buckets.setdefault((scope, name), {})[field_name] = n

    def bucket_json(values: Mapping[str, int]) -> dict[str, Any]:
        counts = [values.get(f, 0) for f in _SUM_FIELDS]
        bucket = {"requests": counts[0], **dict(zip(FIELDS, counts[1:5], strict=True))}
        cost = _cost(*counts[1:], prices) if any(counts[1:]) else Decimal(0)
        return _json({**bucket, "cost": cost})

    out = bucket_json(buckets[("t", "")])
    for scope, label in (("m", "by_model"), ("k", "by_api_key")):
        out[label] = {
            name: bucket_json(values) for (s, name), values in sorted(buckets.items()) if s == scope
        }
    return out
