"""Replay: an interaction as the ``Reply`` that reproduces it, and ``ReplaySource``.

A recorded stream replays its exact bytes (with ``at_ms`` timing, the tail, and the
disconnect when it was cut); a recorded stream asked for without ``stream`` is folded into
the JSON message (an ``error`` event becomes the error reply with its status); a recorded
JSON message asked for as a stream is unfolded.  A miss goes to the fallback (``auto``:
synthesize; ``record-new``: forward and record) or is a 404 naming the nearest recordings.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from ..cassettes import cassette as cas
from ..cassettes.library import H_CASSETTE, Library, cassette_name
from ..cassettes.matching import Exhausted, Hit
from ..cassettes.near_miss import NearMiss
from ..wire import protocol as p, sse
from ..wire.errors import error_body
from ..wire.reply import Reply, message_reply
from ..wire.request import ApiRequest, CheckedRequest
from ..wire.streaming import FoldError, fold
from .host import Host, Notes, on_exchange
from .rules.responder import Rules

log = logging.getLogger("mockserver.replay")

Fallback = Callable[[ApiRequest, CheckedRequest | None], Awaitable[Reply]]
#: prepared replies kept by a ``ReplaySource`` (past this the store starts over)
PREPARED_MAX = 50_000
#: the counter kind of replay sequence positions, in a shared store
SEQUENCE = "replay-sequence"


# --- interaction -> reply ---------------------------------------------------------------------


def _without(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


def replay_reply(
    inter: cas.Interaction, *, stream: bool, ping: bool = True, source: str = "replay"
) -> Reply:
    """The reply that reproduces ``inter`` for a request that does (not) ask for a stream."""
    resp = inter.response
    headers = dict(resp.headers)
    if resp.events is not None:
        events = resp.events
        if stream:
            return Reply(
                status=resp.status,
                headers=headers,
                events=events,
                at_ms=resp.at_ms,
                tail=resp.tail,
                source=source,
                message=_fold_quietly(events),
                disconnect_at=len(events) if resp.disconnected else None,
            )
        headers = _without(headers, p.H_CONTENT_TYPE)
        if resp.disconnected:
            return Reply(
                status=resp.status, headers=headers, body=b"", source=source, disconnect_at=-1
            )
        try:
            message = fold((e.name, e.json()) for e in events)
        except FoldError as exc:
            err = (
                exc.error
                if isinstance(exc.error, dict)
                else {"type": p.API_ERROR, "message": str(exc)}
            )
            status = p.STATUS_FOR_ERROR_TYPE.get(str(err.get("type")), 500)
            body = sse.dumps({"type": "error", "error": err}).encode()
            return Reply(status=status, headers=headers, body=body, source=source)
        except ValueError as exc:
            text = f"recorded stream unreadable: {exc}"
            unreadable = sse.dumps(error_body("anthropic", p.API_ERROR, text, None)).encode()
            return Reply(status=500, headers=headers, body=unreadable, source=source)
        return Reply(
            status=resp.status,
            headers=headers,
            body=sse.dumps(message).encode(),
            source=source,
            message=message,
        )
    parsed = resp.json_body()
    is_message = resp.status == 200 and isinstance(parsed, dict) and parsed.get("type") == "message"
    if stream and is_message and not resp.disconnected:
        unfolded = message_reply(parsed, True, source, ping)
        return unfolded.with_(headers=_without(headers, p.H_CONTENT_TYPE))
    disconnect_at = None
    if resp.disconnected:
        disconnect_at = 1 if resp.body else -1
    return Reply(
        status=resp.status,
        headers=headers,
        body=resp.body or b"",
        source=source,
        message=parsed if is_message else None,
        disconnect_at=disconnect_at,
    )


def with_frames(reply: Reply) -> Reply:
    """``reply`` with each event's wire bytes (``raw``) computed once: the same bytes
    ``Event.wire()`` gives, without encoding them again on every replay."""
    if reply.events is None or all(e.raw for e in reply.events):
        return reply
    events = tuple(
        e if e.raw else sse.Event(e.name, e.data, e.wire(), e.terminated, e.comments)
        for e in reply.events
    )
    return reply.with_(events=events)


def _fold_quietly(events: tuple[sse.Event, ...]) -> dict[str, Any] | None:
    try:
        return fold((e.name, e.json()) for e in events)
    except (FoldError, ValueError):
        return None


# --- the source -------------------------------------------------------------------------------


class ReplaySource:
    """Replays the library; a miss goes to the scripted-reply ``rules``, then to ``fallback``
    or, without one, is a 404 (naming the nearest recordings and the closest rules)."""

    def __init__(
        self,
        host: Host,
        library: Library,
        fallback: Fallback | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.host = host
        self.library = library
        self.fallback = fallback
        self.rules = rules
        #: the reply of each interaction served so far, by ``(ref, stream)``, built once
        #: (replies are immutable; the interaction is kept to notice a reload)
        self._prepared: dict[tuple[Hashable, bool], tuple[cas.Interaction, Reply]] = {}
        host.reload_hooks.setdefault("cassettes", library.reload)

    async def startup(self) -> None:
        self.library.start()

    async def cleanup(self) -> None:
        self.library.stop()

    def scope(self, req: ApiRequest) -> str | None:
        value = req.headers.get(H_CASSETTE)
        if not value:
            return None
        try:
            return cassette_name(value)
        except ValueError:
            return value

    async def reply(self, req: ApiRequest, checked: CheckedRequest | None) -> Reply:
        library = self.library
        await library.ready()
        scope = self.scope(req)
        counters = self.host.counters
        if counters is None:
            found = library.find(
                req.method,
                req.path,
                req.body,
                cassette=scope,
                strict=self.host.settings.strict_sequence,
                raw=req.raw or None,
            )
        else:  # processes share the sequence positions

            async def next_position(key: str) -> int:
                return await counters.incr(SEQUENCE, key) - 1

            found = await library.afind(
                req.method,
                req.path,
                req.body,
                next_position,
                cassette=scope,
                strict=self.host.settings.strict_sequence,
                raw=req.raw or None,
            )
        if isinstance(found, Hit):
            library.mark_used(found.ref)
            return self.prepared_reply(found.ref, req.stream)
        if self.rules is not None and (scripted := await self.rules.answer(req, checked)):
            return scripted
        if self.fallback is not None:
            return await self.fallback(req, checked)
        return self.miss(req, scope, found)

    def prepared_reply(self, ref: Hashable, stream: bool) -> Reply:
        """The reply replaying interaction ``ref``: built on first use, then reused (the
        folded message, the event frames' bytes and the headers are computed once)."""
        name, pos, inter = self.library.interaction(ref)
        key = (ref, stream)
        known = self._prepared.get(key)
        if known is not None and known[0] is inter:
            return known[1]
        reply = replay_reply(inter, stream=stream, ping=self.host.profile.ping)
        reply = with_frames(reply).with_(extras={**reply.extras, "replayed": f"{name}#{pos}"})
        if len(self._prepared) >= PREPARED_MAX:
            self._prepared.clear()
        self._prepared[key] = (inter, reply)
        return reply

    def miss(self, req: ApiRequest, scope: str | None, exhausted: Exhausted | None) -> Reply:
        lib = self.library
        what = f"{req.method} {req.path}"
        if exhausted is not None:
            name, pos, _ = lib.interaction(exhausted.ref)
            text = (
                f"mockserver: the recorded sequence for this request ({exhausted.length} "
                f"interaction(s), last {name}#{pos}) is used up and --strict-sequence is on"
            )
            near: list[NearMiss] = []
        else:
            near = lib.near_misses(req.method, req.path, req.body, cassette=scope)
            where = f"cassette {scope!r}" if scope else f"the cassettes in {lib.directory}"
            text = f"mockserver: no recorded interaction in {where} matches {what}"
            if scope is not None and scope not in lib.names:
                text += f" (no such cassette; known: {', '.join(lib.names[:10]) or 'none'})"
            if near:
                text += ". Nearest: " + "; ".join(m.describe() for m in near)
            elif len(lib) == 0:
                text += " (the library is empty)"
            else:
                text += " (nothing recorded on this route)"
            if lib.broken:
                text += f". Unreadable cassettes: {', '.join(sorted(lib.broken))}"
            rules = self.rules.near(req) if self.rules is not None else []
            if rules:
                text += ". No rule answers it; closest: " + "; ".join(rules)
        body = error_body(self.host.profile.dialect, p.NOT_FOUND, text, req.request_id or None)
        near_dicts = [m.to_dict() for m in near]

        def record_near(ex: Notes) -> None:
            ex.near_misses.extend(near_dicts)

        return Reply(
            status=404,
            headers={p.H_SHOULD_RETRY: "false"},
            body=sse.dumps(body).encode(),
            source="unmatched",
            extras=on_exchange(record_near),
        )
