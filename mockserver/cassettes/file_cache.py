"""Checked cassette files by content: what a small cassette file parsed to, once it passed the
cassette schema, kept as JSON under the hash of the file's bytes.

The pytest plugin starts a server per test, and each reads its test's cassette: YAML (~0.8 ms
for a one-interaction file, libyaml or not: the objects are made in Python) and the schema
check (~0.6 ms) are most of what making that server costs.  A suite run again (locally, or in
CI with the cache directory kept) reads each unchanged cassette back from here instead: one
small JSON file.  The key is the hash of the bytes (with this module's format, the package
version and the cassette schema), so an edited or re-recorded file is a new key, never a stale
hit, while the same bytes in another checkout (a CI machine keeping the directory) are the same
key; a file that fails its check is never stored, so it fails again.

Where: ``$MOCKSERVER_CACHE_DIR`` (default ``~/.cache/mockserver/cassettes``; ``off`` disables
this cache too) under ``files/``.  Data JSON cannot hold exactly (a YAML timestamp, a
non-string key) is not stored.  At most ``MAX_FILES`` entries are kept: past that, a store
removes the older half (by the time each was written).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any, Final

from .parse_cache import cache_dir

log = logging.getLogger("mockserver.library")

#: bumped whenever what a file parses to, or how it is checked, changes
FORMAT: Final = b"mockserver checked cassette 1\n"
MAX_FILES: Final = 20_000
_SUFFIX: Final = ".json"


@functools.cache
def _salt() -> bytes:
    from .. import __version__

    schema = (resources.files("mockserver.schemas") / "cassette.json").read_bytes()
    return FORMAT + __version__.encode() + b"\n" + hashlib.sha256(schema).digest()


def _folder() -> Path | None:
    base = cache_dir()
    return None if base is None else base / "files"


def entry(raw: bytes) -> Path | None:
    """Where the checked data of a file holding ``raw`` is kept (None: the cache is off)."""
    folder = _folder()
    if folder is None:
        return None
    return folder / (hashlib.sha256(_salt() + raw).hexdigest() + _SUFFIX)


def load(path: Path | None) -> Any | None:
    """The checked data kept at ``path`` (see ``entry``), or None when not cached."""
    if path is None:
        return None
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def store(path: Path | None, data: Any) -> None:
    """Keep ``data`` (parsed from the bytes ``path`` was made for, and checked) at ``path``."""
    if path is None:
        return
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if json.loads(text) != data:  # e.g. a non-string key: JSON would change it
            return
    except (TypeError, ValueError):  # a YAML timestamp or set: not JSON
        return
    folder = path.parent
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        if _count(folder) > MAX_FILES:
            _prune(folder)
    except OSError as exc:
        log.debug("checked cassette not cached: %s", exc)
        tmp.unlink(missing_ok=True)


_COUNT_EVERY: Final = 500
#: stores since this process last counted the folder's files (the first store counts)
_stores_since_count = _COUNT_EVERY - 1


def _count(folder: Path) -> int:
    """The folder's entry count, looked at on a process's first store and every
    ``_COUNT_EVERY`` stores after it (0 in between)."""
    global _stores_since_count
    _stores_since_count += 1
    if _stores_since_count < _COUNT_EVERY:
        return 0
    _stores_since_count = 0
    with os.scandir(folder) as entries:
        return sum(1 for _ in entries)


def _prune(folder: Path) -> None:
    """Remove the older half of the entries."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                found.append((entry.stat().st_mtime, entry.path))
            except OSError:
                continue
    found.sort()
    for _, path in found[: len(found) // 2]:
        try:
            os.unlink(path)
        except OSError:
            continue
