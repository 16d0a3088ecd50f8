"""Cassettes: recorded exchanges as readable, diffable YAML (DESIGN.md §5).

A cassette is ``version: 1``, an optional ``name``/``meta``/``ignore`` (JSON paths left out
of matching) and ``interactions``.  Each interaction holds the request (method, path,
allow-listed headers, parsed JSON body) and the response: status, allow-listed headers and
either a JSON ``body`` or the stream as ``events`` (parsed ``data`` for readable diffs,
``at_ms`` offsets, and ``raw`` only when the original frame differs from the canonical
encoding), plus ``tail`` (bytes after the last event) and ``disconnected``.  Replaying an
event writes ``raw`` when present, else the canonical frame, so streams come back byte for
byte.  ``body_text`` keeps a JSON body's exact text when it is not the compact encoding
(or not JSON at all).

Headers are kept by allow-list: secrets are never written.  Writing (atomic, locked,
appending) lives in :mod:`mockserver.cassette_store`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from ..wire import protocol as p, sse
from ..wire.errors import CassetteError

VERSION: Final = 1
SUFFIXES: Final = (".yaml", ".yml", ".json")
#: request headers a cassette keeps (everything else, secrets first of all, is dropped)
REQUEST_HEADERS: Final = frozenset({p.H_VERSION, p.H_BETA, p.H_CONTENT_TYPE})
#: response headers a cassette keeps, and the prefixes of the families it keeps
RESPONSE_HEADERS: Final = frozenset({p.H_CONTENT_TYPE, p.H_REQUEST_ID, p.H_SHOULD_RETRY})
RESPONSE_HEADER_PREFIXES: Final = (p.RATELIMIT_PREFIX, p.H_RETRY_AFTER)

ERROR_UNREACHABLE: Final = "upstream_unreachable"


def keep_headers(
    headers: Mapping[str, str], names: frozenset[str], prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """The allow-listed headers, names lower-cased; secret headers never pass."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in p.SECRET_HEADERS:
            continue
        if low in names or low.startswith(prefixes):
            out[low] = value
    return out


# --- the model ------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: str = ""


@dataclass
class RecordedResponse:
    """A response as it was on the wire: ``body`` bytes, or ``events`` (+ ``at_ms``, ``tail``)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    events: tuple[sse.Event, ...] | None = None
    at_ms: tuple[float, ...] | None = None
    tail: bytes = b""
    disconnected: bool = False

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    def json_body(self) -> Any:
        """The parsed JSON body; None when there is none or it is not JSON."""
        if self.body is None:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def wire(self) -> bytes:
        """The exact bytes of the body (a stream: every event's frame plus the tail)."""
        if self.events is None:
            return self.body or b""
        return b"".join(e.wire() for e in self.events) + self.tail


@dataclass
class Interaction:
    request: RecordedRequest
    response: RecordedResponse
    #: marks an exchange that did not complete normally (``upstream_unreachable``)
    error: str | None = None
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return interaction_to_dict(self)


@dataclass
class Cassette:
    interactions: list[Interaction] = field(default_factory=list)
    name: str | None = None
    ignore: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    #: unknown top-level keys, kept on rewrite
    extra: dict[str, Any] = field(default_factory=dict)


# --- to and from plain data -------------------------------------------------------------------


class _Flow(dict[str, Any]):
    """A mapping dumped in YAML flow style (one line per event ``data``)."""


def _canonical_frame(name: str | None, data: str) -> bytes:
    return sse.encode_raw(name, data)


def _event_to_dict(event: sse.Event, at_ms: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.name}
    try:
        parsed = json.loads(event.data)
    except ValueError:
        parsed = None
        is_json = False
    else:
        is_json = not isinstance(parsed, str)
    if is_json:
        text = sse.dumps(parsed)
        out["data"] = _flow(parsed)
    else:  # not JSON (or a JSON string): stored as the text itself
        text = event.data
        out["data"] = event.data
    if at_ms is not None:
        out["at_ms"] = round(at_ms, 1)
    if event.raw and event.raw != _canonical_frame(event.name, text):
        out.update(_text_field("raw", event.raw))
    return out


def _flow(value: Any) -> Any:
    if isinstance(value, dict):
        return _Flow((k, _plain(v)) for k, v in value.items())
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text_field(key: str, data: bytes) -> dict[str, str]:
    """``{key: text}``, or ``{key_b64: ...}`` for bytes that are not UTF-8."""
    try:
        return {key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {_b64_key(key): base64.b64encode(data).decode("ascii")}


def _b64_key(key: str) -> str:
    """``raw`` -> ``raw_b64``, ``body_text`` -> ``body_b64``."""
    return key.removesuffix("_text") + "_b64"


def _read_text_field(d: Mapping[str, Any], key: str) -> bytes | None:
    if key in d and isinstance(d[key], str):
        return str(d[key]).encode("utf-8")
    if _b64_key(key) in d:
        return base64.b64decode(d[_b64_key(key)])
    return None


def _event_from_dict(d: Mapping[str, Any]) -> sse.Event:
    data = d.get("data")
    text = data if isinstance(data, str) else sse.dumps(data)
    raw = _read_text_field(d, "raw") or b""
    return sse.Event(d.get("event"), text, raw)


def response_to_dict(resp: RecordedResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"status": resp.status, "headers": dict(resp.headers)}
    if resp.events is not None:
        at = resp.at_ms or ()
        out["events"] = [
            _event_to_dict(e, at[i] if i < len(at) else None) for i, e in enumerate(resp.events)
        ]
        if resp.tail:
            out.update(_text_field("tail", resp.tail))
    elif resp.body is not None:
        try:
            parsed = json.loads(resp.body)
        except ValueError:
            out.update(_text_field("body_text", resp.body))
        else:
            out["body"] = parsed
            if sse.dumps(parsed).encode() != resp.body:
                out.update(_text_field("body_text", resp.body))
    if resp.disconnected:
        out["disconnected"] = True
    return out


def response_from_dict(d: Mapping[str, Any]) -> RecordedResponse:
    headers = {str(k).lower(): _header_value(v) for k, v in (d.get("headers") or {}).items()}
    resp = RecordedResponse(
        status=int(d["status"]), headers=headers, disconnected=bool(d.get("disconnected"))
    )
    if "events" in d:
        items = d["events"] or []
        resp.events = tuple(_event_from_dict(e) for e in items)
        if all("at_ms" in e for e in items):
            resp.at_ms = tuple(float(e["at_ms"]) for e in items)
        resp.tail = _read_text_field(d, "tail") or b""
    else:
        text = _read_text_field(d, "body_text")
        if text is not None:
            resp.body = text
        elif "body" in d:
            resp.body = sse.dumps(d["body"]).encode()
    return resp


def _header_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def interaction_to_dict(inter: Interaction) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if inter.name:
        out["name"] = inter.name
    req = inter.request
    request: dict[str, Any] = {"method": req.method, "path": req.path}
    if req.query:
        request["query"] = req.query
    request["headers"] = dict(req.headers)
    request["body"] = req.body
    out["request"] = request
    out["response"] = response_to_dict(inter.response)
    if inter.error:
        out["error"] = inter.error
    if inter.meta:
        out["meta"] = dict(inter.meta)
    return out


def request_from_dict(r: Mapping[str, Any]) -> RecordedRequest:
    return RecordedRequest(
        method=str(r["method"]),
        path=str(r["path"]),
        headers={str(k).lower(): _header_value(v) for k, v in (r.get("headers") or {}).items()},
        body=r.get("body"),
        query=r["query"] if isinstance(r.get("query"), str) else "",
    )


def interaction_from_dict(d: Mapping[str, Any]) -> Interaction:
    req = request_from_dict(d["request"])
    error = d.get("error")
    if isinstance(error, dict):
        error = str(error.get("type") or error)
    return Interaction(
        request=req,
        response=response_from_dict(d["response"]),
        error=error,
        name=d.get("name"),
        meta=dict(d.get("meta") or {}),
    )


_KNOWN_TOP = ("version", "name", "meta", "ignore", "interactions")


def cassette_to_dict(c: Cassette) -> dict[str, Any]:
    out: dict[str, Any] = {"version": VERSION}
    if c.name:
        out["name"] = c.name
    if c.meta:
        out["meta"] = dict(c.meta)
    if c.ignore:
        out["ignore"] = list(c.ignore)
    out.update({k: v for k, v in c.extra.items() if k not in _KNOWN_TOP})
    out["interactions"] = [interaction_to_dict(i) for i in c.interactions]  # always last
    return out


def cassette_from_dict(d: Mapping[str, Any], path: Path | None = None) -> Cassette:
    return Cassette(
        interactions=[interaction_from_dict(i) for i in d.get("interactions") or []],
        name=d.get("name"),
        ignore=tuple(d.get("ignore") or ()),
        meta=dict(d.get("meta") or {}),
        path=path,
        extra={k: v for k, v in d.items() if k not in _KNOWN_TOP},
    )


# --- YAML ------------------------------------------------------------------------------------

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors / *aliases: every value is written where it is


def _represent_flow(dumper: Any, data: _Flow) -> Any:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data and len(data) > 1 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 30,
    )
    return text


def dumps(c: Cassette) -> str:
    return dump_yaml(cassette_to_dict(c))


def parse(text: str | bytes, source: str = "<cassette>") -> Any:
    """Plain data of a cassette file (JSON or YAML); CassetteError when it does not parse."""
    try:
        if source.endswith(".json"):
            return json.loads(text)
        return yaml.load(text, Loader=_BaseLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise CassetteError(f"{source}: cannot parse: {exc}") from None


def schema_errors(data: Any) -> list[str]:
    """Readable schema violations of cassette data (``schemas/cassette.json``)."""
    from ..contract.validation import schema_violations
    from ..contract.violations import SCHEMA_CASSETTE

    return [f"{v.path}: {v.message}" for v in schema_violations("cassette", data, SCHEMA_CASSETTE)]


def loads(text: str | bytes, source: str = "<cassette>", *, validate: bool = True) -> Cassette:
    data = parse(text, source)
    if validate:
        errors = schema_errors(data)
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise CassetteError(f"{source}: not a valid cassette: {'; '.join(errors[:3])}{more}")
    try:
        return cassette_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CassetteError(f"{source}: not a valid cassette: {exc!r}") from None


def load(path: Path, *, validate: bool = True) -> Cassette:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read: {exc}") from None
    c = loads(text, str(path), validate=validate)
    c.path = path
    return c


def is_cassette_file(path: Path) -> bool:
    return path.suffix in SUFFIXES and not path.name.startswith(".")


def discover(directory: Path) -> list[Path]:
    """Cassette files under ``directory`` (recursively, hidden entries skipped), sorted."""
    if directory.is_file():
        return [directory]
    out: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        out.extend(Path(root) / f for f in files if is_cassette_file(Path(f)))
    return sorted(out)
