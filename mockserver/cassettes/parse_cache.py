"""The parse cache: a library's parsed, schema-checked cassettes as one JSON file.

Parsing YAML is slow (~1 MB/s even with libyaml), so a library of ``CACHE_MIN_BYTES`` or more
keeps what its files hold in one file (``$MOCKSERVER_CACHE_DIR``, default
``~/.cache/mockserver/cassettes``; ``off`` disables it), each entry stamped with its file's
size and mtime.  An entry holds the cassette's top-level fields, each interaction as the JSON
text of its wire-text form (see ``as_wire_text``; it becomes an ``Interaction`` only when a
request needs it, see ``lazy``), and the interactions' index keys per ignore list, so that a
warm start of 100,000 interactions reads a few hundred thousand strings and builds no
per-interaction objects at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO, Final

from ..wire import sse

log = logging.getLogger("mockserver.library")

CACHE_ENV: Final = "MOCKSERVER_CACHE_DIR"
CACHE_MIN_BYTES: Final = 1 << 20


def cache_dir() -> Path | None:
    """``$MOCKSERVER_CACHE_DIR`` (``off``: None), default ``~/.cache/mockserver/cassettes``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mockserver" / "cassettes"


class ParseCache:
    """The parsed (and schema-checked) data of a library's files in one file, each entry
    stamped with its file's size and mtime.  Only for libraries of at least
    ``CACHE_MIN_BYTES``: small ones parse fast enough and leave nothing behind.

    The file is a magic line, one line of JSON (per cassette file: stamp, top-level fields,
    index keys, the byte size of each interaction's text) and then every interaction's JSON
    text back to back, UTF-8: a warm start slices that blob instead of decoding a string
    per interaction out of a JSON document."""

    def __init__(self, directory: Path, total_bytes: int) -> None:
        base = cache_dir() if total_bytes >= CACHE_MIN_BYTES else None
        self.file: Path | None = None
        if base is not None:
            key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:32]
            self.file = base / f"{key}.cache"
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        if self.file is not None:
            try:
                self.old = _read(self.file.read_bytes())
            except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
                self.old = {}

    @property
    def active(self) -> bool:
        """Whether this library keeps a cache file (big enough, and not turned off)."""
        return self.file is not None

    def get(self, name: str, stamp: list[int]) -> dict[str, Any] | None:
        """The entry of file ``name`` if its stamp is still ``stamp``: ``data`` (the
        cassette's top-level fields), ``texts`` (its interactions, JSON bytes), ``keys``."""
        entry = self.old.get(name)
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            self.new[name] = entry
            return entry
        return None

    def put(self, name: str, stamp: list[int], entry: dict[str, Any]) -> None:
        self.new[name] = {**entry, "stamp": stamp}

    def save(self) -> None:
        if self.file is None or (
            self.new.keys() == self.old.keys() and all(self.new[k] is self.old[k] for k in self.new)
        ):
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as out:
                _write(out, self.new)
            os.replace(tmp, self.file)
        except OSError as exc:
            log.debug("cassette parse cache not written: %s", exc)


_MAGIC: Final = b"mockserver parse cache 4\n"


def _write(out: BinaryIO, files: dict[str, Any]) -> None:
    head = {}
    for name, entry in files.items():
        texts = [t if isinstance(t, bytes) else t.encode() for t in entry["texts"]]
        entry["texts"] = texts
        head[name] = {
            "stamp": entry["stamp"],
            "data": entry["data"],
            "keys": entry["keys"],
            "sizes": [len(t) for t in texts],
        }
    out.write(_MAGIC)
    out.write(json.dumps(head, default=str, ensure_ascii=False).encode() + b"\n")
    for entry in files.values():
        out.writelines(entry["texts"])


def _read(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(_MAGIC):
        return {}
    end = raw.index(b"\n", len(_MAGIC))
    head = json.loads(raw[len(_MAGIC) : end])
    at = end + 1
    files = {}
    for name, entry in head.items():
        texts = []
        for size in entry.pop("sizes"):
            texts.append(raw[at : at + size])
            at += size
        if not isinstance(entry.get("keys"), dict) or not isinstance(entry.get("data"), dict):
            continue
        files[name] = {**entry, "texts": texts}
    if at != len(raw):
        raise ValueError("parse cache: truncated")
    return files


def as_wire_text(data: Any) -> Any:
    """Checked cassette data with each event's ``data`` and each JSON ``body`` replaced by the
    text they are sent as (``body_text``): what ``cassette_from_dict`` would serialize on every
    load, done once (and kept so in the parse cache, which then loads a few big strings
    instead of many small objects).  ``cassette_from_dict`` gives the same cassette for both."""
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        return data
    out = dict(data)
    out["interactions"] = [_interaction_text(i) for i in data["interactions"]]
    return out


def _interaction_text(inter: Any) -> Any:
    resp = inter.get("response") if isinstance(inter, dict) else None
    if not isinstance(resp, dict):
        return inter
    resp = dict(resp)
    events = resp.get("events")
    if isinstance(events, list):
        resp["events"] = [
            {**e, "data": sse.dumps(e["data"])}
            if isinstance(e, dict) and "data" in e and not isinstance(e["data"], str)
            else e
            for e in events
        ]
    elif "body" in resp and "body_text" not in resp and "body_b64" not in resp:
        resp["body_text"] = sse.dumps(resp.pop("body"))
    return {**inter, "response": resp}
