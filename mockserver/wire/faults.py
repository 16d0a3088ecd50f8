"""Faults: the ``x-mockserver-fault`` grammar, ``FaultPlan`` and pure ``Reply -> Reply`` transforms.

Grammar (DESIGN.md §3): ``FAULT[, FAULT...]``, each ``KIND[;param=value...]``.

- before the body (the reply is replaced by an error): ``rate_limit`` (429), ``overloaded``
  (529), ``api_error`` (500), ``unavailable`` (503), ``timeout`` (504), ``too_large`` (413),
  ``unauthorized`` (401) and ``status;code=N`` (any 4xx/5xx); params ``retry_after=S``,
  ``retry_after_ms=MS``, ``should_retry=true|false``, ``type=ERROR_TYPE``;
- delivery of the body: ``error_event;at=K[;type=T]``, ``disconnect;at=K|headers``,
  ``stall;ms=N[;at=K]``, ``keepalive[;n=N]``, ``rechunk[;seed=S]``;
- ``times=N`` on any fault: only the first N requests with the same canonical request key
  get it (counted by ``FaultBook``, see ``fault_rules``).

``K`` counts the reply's SSE events from 0; a fault at K happens before event K is written.
A JSON (non-stream) reply counts as one event, its body, at index 0: ``stall`` without ``at``
or with ``at=0`` delays the body, ``disconnect;at=0`` sends the headers and drops the
connection instead of the body (``at`` >= 1: after it), ``keepalive`` writes blank lines
before the body (as DeepSeek does while a request waits), ``rechunk`` cuts the body bytes;
``error_event`` is ignored there (an error after a 200 exists only in streams).  A reply
replaced by an error is JSON too, so delivery faults listed with the error apply to it.

The app asks for the plan before the source step: when a fault replaces the reply the
source is skipped (no upstream call in record mode, no recorded turn used up in replay).
A live record-mode stream (``Reply.live``) only gets ``keepalive`` and ``disconnect;at=headers``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from . import protocol as p
from .errors import MockserverError, error_body
from .reply import Reply
from .sse import Event, dumps

#: kind -> (status, error type, message) of the faults that replace the reply
ERROR_KINDS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        p.RATE_LIMIT,
        "Number of requests has exceeded your per-minute rate limit. Please try again later.",
    ),
    "overloaded": (529, p.OVERLOADED, "Overloaded"),
    "api_error": (500, p.API_ERROR, "Internal server error"),
    "unavailable": (503, p.ERROR_TYPE_FOR_STATUS[503], "Service unavailable"),
    "timeout": (504, p.TIMEOUT, "Request timed out"),
    "too_large": (413, p.REQUEST_TOO_LARGE, "Request exceeds the maximum size"),
    "unauthorized": (401, p.AUTHENTICATION, "invalid x-api-key"),
    "status": (0, "", ""),  # status;code=N: type and message follow from N
}
DELIVERY_KINDS = ("error_event", "disconnect", "stall", "keepalive", "rechunk")
KINDS = (*ERROR_KINDS, *DELIVERY_KINDS)

_ERROR_PARAMS = frozenset({"retry_after", "retry_after_ms", "should_retry", "type", "times"})
PARAMS: dict[str, frozenset[str]] = {
    **{kind: _ERROR_PARAMS for kind in ERROR_KINDS},
    "status": _ERROR_PARAMS | {"code"},
    "error_event": frozenset({"at", "type", "times"}),
    "disconnect": frozenset({"at", "times"}),
    "stall": frozenset({"at", "ms", "times"}),
    "keepalive": frozenset({"n", "times"}),
    "rechunk": frozenset({"seed", "times"}),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "status": ("code",),
    "error_event": ("at",),
    "disconnect": ("at",),
    "stall": ("ms",),
}
#: canonical order of params in a fault's text
_ORDER: tuple[str, ...] = ("code", "at", "ms", "n", "seed", "type", "retry_after")
_ORDER += ("retry_after_ms", "should_retry", "times")
#: message of an in-stream error event per error type (the real texts where known)
_EVENT_MESSAGES = {p.OVERLOADED: "Overloaded", p.API_ERROR: "Internal server error"}
AT_HEADERS = -1


class FaultSpecError(MockserverError, ValueError):
    """A fault spec that does not parse; the message names the bad part."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One parsed fault.  ``at == -1`` means before the headers (``disconnect`` only)."""

    kind: str
    at: int | None = None
    ms: float = 0.0
    n: int = 1
    seed: int = 0
    code: int | None = None
    error_type: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    times: int | None = None

    @property
    def replaces_reply(self) -> bool:
        return self.kind in ERROR_KINDS

    @property
    def text(self) -> str:
        """Canonical spec text (stable: used as the ``times`` counter key and in the journal)."""
        values: dict[str, object] = {
            "code": self.code,
            "at": "headers" if self.at == AT_HEADERS else self.at,
            "ms": _num(self.ms) if self.kind == "stall" else None,
            "n": self.n if self.kind == "keepalive" else None,
            "seed": self.seed if self.kind == "rechunk" else None,
            "type": self.error_type,
            "retry_after": None if self.retry_after is None else _num(self.retry_after),
            "retry_after_ms": None if self.retry_after_ms is None else _num(self.retry_after_ms),
            "should_retry": None if self.should_retry is None else str(self.should_retry).lower(),
            "times": self.times,
        }
        parts = [self.kind] + [f"{k}={values[k]}" for k in _ORDER if values[k] is not None]
        return ";".join(parts)

    # --- replacing the reply ---------------------------------------------------------

    def error_reply(
        self, dialect: str, request_id: str, ratelimit: Mapping[str, int] | None = None
    ) -> Reply:
        """The error reply of a before-the-body fault, in the profile's dialect."""
        status, etype, message = ERROR_KINDS[self.kind]
        if self.kind == "status":
            assert self.code is not None
            status = self.code
            etype = p.ERROR_TYPE_FOR_STATUS.get(
                status, p.INVALID_REQUEST if status < 500 else p.API_ERROR
            )
            message = HTTPStatus(status).phrase if status in _HTTP_STATUSES else f"Error {status}"
        etype = self.error_type or etype
        headers: dict[str, str] = {p.H_CONTENT_TYPE: p.CT_JSON}
        retry_after = self.retry_after
        if self.kind == "rate_limit" and retry_after is None and self.retry_after_ms is None:
            retry_after = 1.0  # real 429s always carry retry-after
        if retry_after is not None:
            headers[p.H_RETRY_AFTER] = _num(retry_after)
        if self.retry_after_ms is not None:
            headers[p.H_RETRY_AFTER_MS] = _num(self.retry_after_ms)
        if self.should_retry is not None:
            headers[p.H_SHOULD_RETRY] = "true" if self.should_retry else "false"
        if self.kind == "rate_limit":
            wait = retry_after if retry_after is not None else (self.retry_after_ms or 0) / 1000
            headers.update(_exhausted(ratelimit or {}, wait))
        body = dumps(error_body(dialect, etype, message, request_id)).encode()
        return Reply(status=status, headers=headers, body=body, source="error", fault=self.text)

    # --- delivery transforms -----------------------------------------------------------

    def apply(self, reply: Reply) -> Reply:
        """Apply a delivery fault to ``reply`` (pure; an error fault returns it unchanged)."""
        if self.kind == "error_event":
            assert self.at is not None
            return inject_error_event(reply, self.at, self.error_type or p.OVERLOADED)
        if self.kind == "disconnect":
            assert self.at is not None
            return disconnect(reply, self.at)
        if self.kind == "stall":
            return stall(reply, self.ms, self.at)
        if self.kind == "keepalive":
            return keepalive(reply, self.n)
        if self.kind == "rechunk":
            return reply.with_(rechunk_seed=self.seed)
        return reply


_HTTP_STATUSES = frozenset(s.value for s in HTTPStatus)


def _num(value: float) -> str:
    """``5.0`` -> ``"5"``, ``0.5`` -> ``"0.5"`` (as headers and spec texts want them)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _exhausted(limits: Mapping[str, int], wait_s: float) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers of an exhausted request bucket."""
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + max(wait_s, 1)))
    out: dict[str, str] = {}
    if "requests_limit" in limits:
        out[f"{p.RATELIMIT_PREFIX}requests-limit"] = str(limits["requests_limit"])
    out[f"{p.RATELIMIT_PREFIX}requests-remaining"] = "0"
    out[f"{p.RATELIMIT_PREFIX}requests-reset"] = reset
    return out


# --- pure transforms ----------------------------------------------------------------------


def error_event(error_type: str, message: str | None = None) -> Event:
    text = message or _EVENT_MESSAGES.get(error_type, error_type.replace("_", " ").capitalize())
    return Event(p.ERROR, dumps({"type": p.ERROR, "error": {"type": error_type, "message": text}}))


def inject_error_event(reply: Reply, at: int, error_type: str = p.OVERLOADED) -> Reply:
    """An ``event: error`` before event ``at``; the stream ends after it (no-op on JSON)."""
    if reply.events is None:
        return reply
    events = (*reply.events[:at], error_event(error_type))
    at_ms = reply.at_ms
    if at_ms is not None:
        keep = at_ms[: len(events) - 1]
        at_ms = (*keep, at_ms[min(at, len(at_ms) - 1)] if at_ms else 0.0)
    return reply.with_(events=events, at_ms=at_ms, tail=b"")


def disconnect(reply: Reply, at: int) -> Reply:
    """Drop the connection before event ``at`` (``-1``: before any response byte)."""
    if reply.disconnect_at is not None and reply.disconnect_at <= at:
        return reply
    return reply.with_(disconnect_at=at)


def stall(reply: Reply, ms: float, at: int | None = None) -> Reply:
    """Pause ``ms`` before event ``at``, or before every event when ``at`` is None."""
    if at is None:
        return reply.with_(stall_all_ms=reply.stall_all_ms + ms)
    stalls = dict(reply.stall_ms)
    stalls[at] = stalls.get(at, 0.0) + ms
    return reply.with_(stall_ms=stalls)


def keepalive(reply: Reply, n: int) -> Reply:
    """``n`` keep-alive lines before the first event (blank lines before a JSON body)."""
    line = b": keep-alive\n\n" if reply.is_stream else b"\n"
    return reply.with_(preamble=reply.preamble + line * n)


# --- parsing ------------------------------------------------------------------------------


def parse_faults(text: str, where: str = p.H_FAULT) -> tuple[Fault, ...]:
    """Parse a comma-separated fault list; a ``FaultSpecError`` names the bad part."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise FaultSpecError(f"{where}: empty fault spec; expected KIND[;param=value...]")
    return tuple(parse_fault(part, where) for part in parts if part)


def parse_fault(text: str, where: str = p.H_FAULT) -> Fault:
    pieces = [s.strip() for s in text.split(";")]
    kind = pieces[0].lower()

    def bad(msg: str) -> FaultSpecError:
        return FaultSpecError(f"{where}: {msg} in fault {text.strip()!r}")

    if kind not in PARAMS:
        raise bad(f"unknown fault kind {pieces[0]!r} (known: {', '.join(KINDS)})")
    raw: dict[str, str] = {}
    for piece in pieces[1:]:
        if not piece:
            continue
        name, sep, value = piece.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not sep or not value:
            raise bad(f"parameter {piece!r} is not name=value")
        if name not in PARAMS[kind]:
            allowed = ", ".join(sorted(PARAMS[kind]))
            raise bad(f"unknown parameter {name!r} for {kind} (allowed: {allowed})")
        if name in raw:
            raise bad(f"parameter {name!r} given twice")
        raw[name] = value
    for name in REQUIRED.get(kind, ()):
        if name not in raw:
            raise bad(f"{kind} needs {name}=...")
    try:
        return _build(kind, raw)
    except ValueError as exc:
        raise bad(str(exc)) from None


def _int(raw: Mapping[str, str], name: str, lo: int, hi: int = 2**31) -> int | None:
    if name not in raw:
        return None
    try:
        value = int(raw[name])
    except ValueError:
        raise ValueError(f"{name}={raw[name]} is not an integer") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} must be between {lo} and {hi}")
    return value


def _float(raw: Mapping[str, str], name: str, lo: float, hi: float = 86_400_000) -> float | None:
    if name not in raw:
        return None
    try:
        value = float(raw[name])
    except ValueError:
        raise ValueError(f"{name}={raw[name]} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{name}={raw[name]} must be between {_num(lo)} and {_num(hi)}")
    return value


def _build(kind: str, raw: Mapping[str, str]) -> Fault:
    at: int | None = None
    if "at" in raw:
        if raw["at"].lower() == "headers":
            if kind != "disconnect":
                raise ValueError("at=headers is only valid for disconnect")
            at = AT_HEADERS
        else:
            at = _int(raw, "at", 0)
    should_retry: bool | None = None
    if "should_retry" in raw:
        flag = raw["should_retry"].lower()
        if flag not in ("true", "false"):
            raise ValueError(f"should_retry={raw['should_retry']} must be true or false")
        should_retry = flag == "true"
    error_type = raw.get("type")
    if error_type is not None and error_type not in p.ERROR_TYPES:
        known = ", ".join(sorted(p.ERROR_TYPES))
        raise ValueError(f"type={error_type} is not an error type (known: {known})")
    return Fault(
        kind=kind,
        at=at,
        ms=_float(raw, "ms", 0) or 0.0,
        n=_int(raw, "n", 1, 10_000) or 1,
        seed=_int(raw, "seed", 0) or 0,
        code=_int(raw, "code", 400, 599),
        error_type=error_type,
        retry_after=_float(raw, "retry_after", 0),
        retry_after_ms=_float(raw, "retry_after_ms", 0),
        should_retry=should_retry,
        times=_int(raw, "times", 1),
    )


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """The faults one request gets, in order (header first, then matching rules)."""

    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.faults)

    @property
    def text(self) -> str | None:
        return ", ".join(f.text for f in self.faults) or None

    @property
    def error(self) -> Fault | None:
        """The first fault that replaces the reply, if any (the source step is then skipped)."""
        return next((f for f in self.faults if f.replaces_reply), None)

    def apply(self, reply: Reply) -> Reply:
        """Apply every delivery fault to ``reply`` (pure)."""
        for fault in self.faults:
            reply = fault.apply(reply)
        if self.faults:
            reply = reply.with_(fault=self.text)
        return reply

    def reply(
        self,
        source_reply: Reply | None,
        *,
        dialect: str,
        request_id: str,
        ratelimit: Mapping[str, int] | None = None,
    ) -> Reply:
        """The final reply: the error of a before-the-body fault, else ``source_reply``
        with the delivery faults applied."""
        err = self.error
        if err is not None:
            base = err.error_reply(dialect, request_id, ratelimit)
            delivery = [f for f in self.faults if not f.replaces_reply]
            return FaultPlan((err, *delivery)).apply(base)
        assert source_reply is not None
        return self.apply(source_reply)

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> FaultPlan:
        return cls(tuple(faults))
