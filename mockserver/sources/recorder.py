"""Recording: forward to the upstream, pass its reply on as it arrives, tee it into a cassette.

One shared ``aiohttp.ClientSession`` per server.  The request goes upstream with the
client's own credentials (``x-api-key`` or ``Authorization``), or with the key from
``$MOCKSERVER_UPSTREAM_API_KEY`` when the client sent none.  A stream is written to the client
chunk by chunk as it comes (``Reply.live``) while an ``sse.Decoder`` tees the events, with
their ``at_ms`` offsets, into the cassette.  What happened is what gets recorded:

- 4xx/5xx replies pass through as given and are recorded with their status and body;
- connection refused (or DNS failure, connect timeout): the client gets a 502 ``api_error``
  saying the upstream was unreachable, recorded with ``error: upstream_unreachable``;
- the upstream hanging up: the client's connection is dropped at the same point, and the
  recording is marked ``disconnected: true`` (never a clean-looking recording).

Every recorded exchange goes through the contract checks (unless ``--no-validate``); the
violations are logged as warnings and kept in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp

from ..cassettes import cassette as cas, store
from ..cassettes.checks import contract_violations
from ..cassettes.library import H_CASSETTE, Library, cassette_name
from ..config import DUMMY_API_KEY, NO_KEY_TO_RECORD, UPSTREAM_KEY_ENV
from ..contract.violations import Violation
from ..wire import protocol as p, sse
from ..wire.errors import ApiError, CassetteError, error_body
from ..wire.reply import Disconnected, Reply
from ..wire.request import ApiRequest, CheckedRequest
from ..wire.streaming import FoldError, fold
from ..wire.written import WrittenStream
from .host import Host, Notes, on_exchange
from .replay import ReplaySource
from .rules.responder import Rules
from .upstream import Upstream, upstream_headers

log = logging.getLogger("mockserver.recorder")

#: the cassette recordings go to when the request names none (header ``x-mockserver-cassette``)
DEFAULT_CASSETTE: Final = "recorded"
UNREACHABLE_STATUS: Final = 502
_READ_ERRORS: Final = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def record_dir(cassettes: Path | None) -> Path:
    """Where recordings go: ``--cassettes`` (a directory, or one ``.yaml`` file that takes
    every recording), else ``./cassettes``."""
    return cassettes if cassettes is not None else Path.cwd() / "cassettes"


class _Journal:
    """Late access to the journal entry of a live stream (bound before the stream is written)."""

    def __init__(self) -> None:
        self.ex: Notes | None = None

    def bind(self, ex: Notes) -> None:
        self.ex = ex


class Recorder:
    def __init__(self, host: Host, directory: Path, library: Library | None = None) -> None:
        self.host = host
        self.directory = directory
        self.library = library
        self.upstream = Upstream(host.settings.upstream)

    def target(self, req: ApiRequest) -> tuple[str, Path]:
        if cas.is_cassette_file(self.directory) and not self.directory.is_dir():
            # --cassettes names one cassette file (the pytest plugin's per-test cassette)
            return cassette_name(self.directory.name), self.directory
        try:
            name = cassette_name(req.headers.get(H_CASSETTE) or DEFAULT_CASSETTE)
        except ValueError as exc:
            raise ApiError.invalid(f"{H_CASSETTE}: {exc}") from None
        return name, self.directory / f"{name}.yaml"

    async def forward(self, req: ApiRequest) -> Reply:
        """Send ``req`` upstream; the reply the client gets, recorded as it happens."""
        name, path = self.target(req)
        headers, secrets = upstream_headers(req.headers, os.environ.get(UPSTREAM_KEY_ENV))
        if DUMMY_API_KEY in secrets:  # the upstream would answer 401: nothing worth recording
            return _refused(req)
        # the client's exact bytes go upstream (a request made in code has none: its body)
        data = req.raw if req.raw or req.body is None else sse.dumps(req.body).encode()
        recorded = cas.RecordedRequest(
            method=req.method,
            path=req.path,
            headers=cas.keep_headers(req.headers, cas.REQUEST_HEADERS),
            body=req.body,
            query=req.query,
        )
        meta = {
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "upstream": self.upstream.public_url,
        }
        url = self.upstream.url(req.path, req.query)
        try:
            resp = await self.upstream.session().request(
                req.method, url, headers=headers, data=data
            )
        except (
            aiohttp.ClientConnectorError,
            aiohttp.InvalidURL,
            aiohttp.ConnectionTimeoutError,
        ) as exc:
            return await self._unreachable(req, recorded, meta, name, path, secrets, exc)
        except _READ_ERRORS as exc:
            log.warning(  # (the public URL: never the user:password part of --upstream)
                "upstream %s dropped the connection before replying: %r",
                self.upstream.public_url,
                exc,
            )
            inter = cas.Interaction(
                recorded,
                cas.RecordedResponse(status=UNREACHABLE_STATUS, disconnected=True),
                error="upstream_disconnected",
                meta=meta,
            )
            violations = await self._save(name, path, inter, secrets)
            return Reply(
                status=UNREACHABLE_STATUS,
                source="record",
                disconnect_at=-1,
                extras=_journal(violations),
            )
        kept = cas.keep_headers(resp.headers, cas.RESPONSE_HEADERS, cas.RESPONSE_HEADER_PREFIXES)
        if resp.content_type == "text/event-stream":
            holder = _Journal()
            live = self._tee(resp, recorded, kept, meta, name, path, secrets, holder)
            return Reply(
                status=resp.status,
                headers=kept,
                live=live,
                source="record",
                extras=on_exchange(holder.bind),
            )
        body = bytearray()
        cut = False
        try:
            async for chunk in resp.content.iter_any():
                body += chunk
        except _READ_ERRORS as exc:
            log.warning("upstream %s hung up mid-body: %r", self.upstream.public_url, exc)
            cut = True
        finally:
            resp.release()
        response = cas.RecordedResponse(resp.status, kept, body=bytes(body), disconnected=cut)
        inter = cas.Interaction(recorded, response, meta=meta)
        violations = await self._save(name, path, inter, secrets)
        message = response.json_body() if resp.status == 200 else None
        return Reply(
            status=resp.status,
            headers=kept,
            body=bytes(body),
            source="record",
            message=message
            if isinstance(message, dict) and message.get("type") == "message"
            else None,
            disconnect_at=(1 if body else 0) if cut else None,
            extras=_journal(violations),
        )

    async def _unreachable(
        self,
        req: ApiRequest,
        recorded: cas.RecordedRequest,
        meta: dict[str, Any],
        name: str,
        path: Path,
        secrets: list[str],
        exc: Exception,
    ) -> Reply:
        text = f"mockserver: upstream {self.upstream.public_url} unreachable: {exc}"
        log.warning(text)
        body = sse.dumps(
            error_body("anthropic", p.API_ERROR, text, req.request_id or None)
        ).encode()
        headers = {p.H_CONTENT_TYPE: p.CT_JSON}
        response = cas.RecordedResponse(UNREACHABLE_STATUS, headers, body=body)
        inter = cas.Interaction(recorded, response, error=cas.ERROR_UNREACHABLE, meta=meta)
        violations = await self._save(name, path, inter, secrets)
        return Reply(
            status=UNREACHABLE_STATUS,
            headers=headers,
            body=body,
            source="record",
            extras=_journal(violations),
        )

    async def _tee(
        self,
        resp: aiohttp.ClientResponse,
        recorded: cas.RecordedRequest,
        headers: dict[str, str],
        meta: dict[str, Any],
        name: str,
        path: Path,
        secrets: list[str],
        holder: _Journal,
    ) -> AsyncIterator[bytes]:
        """Yield the upstream body as it arrives; record it once it has ended."""
        decoder = sse.Decoder()
        events: list[sse.Event] = []
        at: list[float] = []
        start = time.monotonic()
        ms = 0.0
        cut: str | None = None
        try:
            try:
                async for chunk in resp.content.iter_any():
                    ms = (time.monotonic() - start) * 1000
                    for event in decoder.feed(chunk):
                        events.append(event)
                        at.append(ms)
                    yield chunk
            except _READ_ERRORS as exc:
                cut = f"{type(exc).__name__}: {exc}"
                log.warning("upstream stream cut after %d events: %s", len(events), cut)
        except BaseException:  # the client went away (or we were cancelled): nothing to record
            resp.close()
            log.warning("client left during a recorded stream; %s not recorded", recorded.path)
            raise
        resp.release()
        tail = decoder.tail
        last = decoder.close()
        if last:
            events += last
            at += [ms] * len(last)
            tail = b""
        response = cas.RecordedResponse(
            resp.status,
            headers,
            events=tuple(events),
            at_ms=tuple(at),
            tail=tail,
            disconnected=cut is not None,
        )
        inter = cas.Interaction(recorded, response, meta=meta)
        violations = await self._save(name, path, inter, secrets)
        if holder.ex is not None:
            ex = holder.ex
            ex.violations.extend(v.to_dict() for v in violations)
            ex.written = WrittenStream(response.events or (), response.at_ms)
            try:
                message = fold((e.name, e.json()) for e in events)
            except (FoldError, ValueError):
                message = None
            if message is not None:
                ex.response = message
                ex.usage = dict(message.get("usage") or {})
                if resp.status == 200 and ex.usage and cut is None:  # the app could not charge it
                    ex.cost_usd = self.host.usage.record(ex.usage, ex.model, ex.api_key)
            if cut is not None:
                ex.fault = "upstream_disconnect"
        if cut is not None:
            raise Disconnected(f"upstream disconnected mid-stream ({cut})")

    async def _save(
        self, name: str, path: Path, inter: cas.Interaction, secrets: list[str]
    ) -> list[Violation]:
        violations = contract_violations(inter) if self.host.settings.validate else []
        if violations:
            what = f"{inter.request.method} {inter.request.path} -> {inter.response.status}"
            for v in violations[:10]:
                log.warning("contract: recorded %s: %s", what, v)
            if len(violations) > 10:
                log.warning("contract: recorded %s: and %d more", what, len(violations) - 10)
        try:
            await asyncio.to_thread(store.append, path, [inter], secrets=secrets)
        except (OSError, CassetteError) as exc:
            log.error("recording into %s failed: %s", path, exc)
        else:
            if self.library is not None:
                self.library.add(name, [inter])
        return violations

    async def close(self) -> None:
        await self.upstream.close()


def _refused(req: ApiRequest) -> Reply:
    text = (
        f"{NO_KEY_TO_RECORD}: set ANTHROPIC_API_KEY (or {UPSTREAM_KEY_ENV}, used only for "
        "recording) to a real key of the upstream, then record again"
    )
    log.warning(text)
    body = sse.dumps(error_body("anthropic", p.AUTHENTICATION, text, req.request_id or None))
    headers = {p.H_CONTENT_TYPE: p.CT_JSON, p.H_SHOULD_RETRY: "false"}
    return Reply(status=401, headers=headers, body=body.encode(), source="error")


def _journal(violations: list[Violation]) -> dict[str, Any]:
    found = [v.to_dict() for v in violations]

    def keep(ex: Notes) -> None:
        ex.violations.extend(found)

    return on_exchange(keep)


# --- the sources -------------------------------------------------------------------------------


class RecordSource:
    """``record``: every request goes upstream (our checks do not judge it) and is recorded."""

    def __init__(self, host: Host, recorder: Recorder) -> None:
        self.host = host
        self.recorder = recorder

    async def startup(self) -> None:
        return None

    async def cleanup(self) -> None:
        await self.recorder.close()

    async def reply(self, req: ApiRequest, checked: CheckedRequest | None) -> Reply:
        return await self.recorder.forward(req)

    async def reply_unchecked(self, req: ApiRequest) -> Reply:
        return await self.recorder.forward(req)


class RecordNewSource(ReplaySource):
    """``record-new``: replay what the cassettes hold; forward and record the rest."""

    def __init__(
        self, host: Host, library: Library, recorder: Recorder, rules: Rules | None = None
    ) -> None:
        async def forward(req: ApiRequest, checked: CheckedRequest | None) -> Reply:
            return await recorder.forward(req)

        super().__init__(host, library, fallback=forward, rules=rules)
        self.recorder = recorder

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.recorder.close()

    async def reply_unchecked(self, req: ApiRequest) -> Reply:
        return await self.reply(req, None)


def make_record_source(host: Host, rules: Rules | None = None) -> RecordSource | RecordNewSource:
    """``record``: everything goes upstream (rules are not consulted); ``record-new``: replay,
    then the rules, then forward and record."""
    directory = record_dir(host.settings.cassettes)
    log.info("recording %s into %s", Upstream(host.settings.upstream).public_url, directory)
    if host.settings.mode == "record":
        return RecordSource(host, Recorder(host, directory))
    library = Library(directory, host.settings.ignore_paths)
    return RecordNewSource(host, library, Recorder(host, directory, library), rules)
