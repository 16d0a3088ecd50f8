"""The checks of recorded exchanges: the contract (request, reply, stream grammar) and the
consistency of the cassette itself (each ``raw`` frame decodes to its event).

The recorder runs :func:`contract_violations` on every exchange it records (schema drift of
the real endpoint shows up there); ``mockserver cassettes lint`` runs :func:`lint_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import conformance
from ..contract.violations import CASSETTE_RAW_MISMATCH, Violation
from ..wire import sse
from ..wire.errors import CassetteError
from ..wire.streaming import FoldError, fold
from . import cassette as cas


def contract_violations(inter: cas.Interaction) -> list[Violation]:
    """The contract checks of one recorded exchange, paths pointing into the cassette."""
    req, resp = inter.request, inter.response
    out = [v.under("$.request.body") for v in conformance.check_request_for(req.path, req.body)]
    if inter.error == cas.ERROR_UNREACHABLE or (resp.disconnected and resp.events is None):
        return out
    out += [v.under("$.response") for v in _structured(req.body, resp)]
    if resp.events is not None:
        events = resp.events
        if resp.disconnected and events and not events[-1].wire().endswith((b"\n\n", b"\r\r")):
            events = events[:-1]  # the frame the hang-up cut in half is no event to check
        found = conformance.check_response(
            req.path, resp.status, events=events, complete=not resp.disconnected
        )
        for v in found:
            where = f"$.response.events[{v.event}].data" if v.event is not None else "$.response"
            out.append(v.under(where))
    else:
        found = conformance.check_response(req.path, resp.status, body=resp.json_body())
        out += [v.under("$.response.body") for v in found]
    return out


def _structured(request: Any, resp: cas.RecordedResponse) -> list[Violation]:
    """A finished structured reply's JSON against the request's schema."""
    if conformance.output_schema(request) is None or resp.status != 200:
        return []
    if resp.events is not None:
        try:
            message: Any = fold((e.name, e.json()) for e in resp.events)
        except (FoldError, ValueError):
            return []
    else:
        message = resp.json_body()
    return conformance.check_structured_output(request, message)


def lint_file(path: Path) -> list[str]:
    """Problems of one cassette: unreadable, schema, raw frames, contract checks."""
    try:
        c = cas.load(path)
    except CassetteError as exc:
        return [str(exc)]
    problems: list[str] = []
    for i, inter in enumerate(c.interactions):
        found = contract_violations(inter) + lint_cassette_events(inter)
        problems += [f"{path}#{i}: {v.rule} at {v.path}: {v.message}" for v in found]
    return problems


def lint_cassette_events(inter: cas.Interaction) -> list[Violation]:
    """Events whose ``raw`` frame does not decode to their name and data."""
    out: list[Violation] = []
    for k, event in enumerate(inter.response.events or ()):
        if event.raw:
            decoded, _ = sse.decode_all(event.raw)
            if len(decoded) != 1 or not _same_event(decoded[0], event):
                out.append(
                    Violation(
                        CASSETTE_RAW_MISMATCH,
                        f"$.response.events[{k}].raw",
                        "raw does not decode to this event's name and data",
                    )
                )
    return out


def _same_event(a: sse.Event, b: sse.Event) -> bool:
    if a.name != b.name:
        return False
    try:
        return bool(a.json() == b.json())
    except ValueError:
        return a.data == b.data
