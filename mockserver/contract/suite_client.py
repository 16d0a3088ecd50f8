"""The live suite's HTTP side: a dependency-free client (``http.client``) that reads a stream
event by event, so the suite measures the endpoint, not a client library."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..wire import protocol as p
from ..wire.sse import Decoder, Event


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    events: list[Event] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


class Failed(Exception):
    """A case failed; the message says why."""


class Client:
    def __init__(self, base_url: str, api_key: str, version: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.api_key = api_key
        self.version = version
        self.timeout = timeout

    def headers(self, *, key: bool = True, version: bool = True) -> dict[str, str]:
        h = {"content-type": p.CT_JSON, "accept": p.CT_JSON}
        if key:
            h[p.H_API_KEY] = self.api_key
        if version:
            h[p.H_VERSION] = self.version
        return h

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        conn_cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = conn_cls(self.host, self.port, timeout=self.timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        t0 = time.monotonic()
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers or self.headers())
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            events: list[Event] = []
            if hdrs.get("content-type", "").startswith("text/event-stream"):
                dec = Decoder()
                chunks = []
                while chunk := resp.read1(65536):
                    chunks.append(chunk)
                    events += dec.feed(chunk)
                events += dec.close()
                payload = b"".join(chunks)
            else:
                payload = resp.read()
            return Response(resp.status, hdrs, payload, events, (time.monotonic() - t0) * 1000)
        finally:
            conn.close()


def fmt(violations: list[Any]) -> str:
    return "; ".join(f"{v.rule} at {v.path}: {v.message}" for v in violations[:3])
