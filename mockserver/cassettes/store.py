"""Writing cassettes: atomic, locked, appending.

Writes are atomic (temp file in the same directory, fsync, ``os.replace``) and serialized
across threads and processes by an exclusive ``flock`` on the cassette directory itself (no
lock files).  :func:`append` re-reads the file under that lock and adds to it, so concurrent
recorders (two clients, or two processes) lose nothing; in the common case it copies the old
bytes and appends the new items as text, so recording stays linear in what is recorded.
Any credential string it is given is scrubbed from the text before it reaches the disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

from ..wire.errors import CassetteError
from .cassette import (
    VERSION,
    Cassette,
    Interaction,
    dump_yaml,
    dumps,
    interaction_to_dict,
    load,
    loads,
    parse,
)

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process locking only
    fcntl = None  # type: ignore[assignment]

#: what a scrubbed secret is replaced with
REDACTED: Final = "[REDACTED]"
#: testing hook: seconds to pause halfway through writing a temp file (crash-safety tests)
PAUSE_ENV: Final = "MOCKSERVER_TEST_SAVE_PAUSE"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Exclusive lock on ``directory`` (``flock`` on the directory itself: no lock files)."""
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - no cross-process locking on this platform
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never a mix."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pause = float(os.environ.get(PAUSE_ENV) or 0)
            if pause > 0:
                half = len(data) // 2
                f.write(data[:half])
                f.flush()
                time.sleep(pause)
                f.write(data[half:])
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save(c: Cassette, path: Path | None = None) -> Path:
    """Write the whole cassette atomically (under the directory lock)."""
    target = path or c.path
    if target is None:
        raise CassetteError("cassette has no path to save to")
    with locked(target.parent):
        atomic_write(target, _encode(dumps(c), target))
    c.path = target
    return target


def update(path: Path, change: Callable[[Cassette], None]) -> Cassette:
    """Locked read-modify-write: load, apply ``change`` in place, save atomically."""
    with locked(path.parent):
        c = load(path)
        change(c)
        atomic_write(path, _encode(dumps(c), path))
    return c


def _encode(text: str, path: Path) -> bytes:
    if path.suffix == ".json":
        return (json.dumps(parse(text), indent=1, ensure_ascii=False) + "\n").encode()
    return text.encode("utf-8")


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return text


_TOP_KEY = re.compile(r"^(?![\s#\-]|\.\.\.|---)([^\n:]+):(.*)$", re.M)


_DOC_END = re.compile(r"\n\.\.\.[ \t]*\n?\Z")


def _strip_doc_end(text: str) -> str:
    """Drop a final ``...`` document-end line (written after a ``|+`` block at the end)."""
    text = text if text.endswith("\n") else text + "\n"
    return _DOC_END.sub("\n", text)


def _appendable(text: str) -> bool:
    """True when the file ends inside a block sequence ``interactions:`` written at column 0
    (the form :func:`dumps` writes), so that new items can be appended as text."""
    last = None
    for match in _TOP_KEY.finditer(text):
        last = match
    if last is None or last.group(1).strip() != "interactions" or last.group(2).strip():
        return False
    first = True
    for line in text[last.end() :].splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(("---", "...")) or (first and not line.startswith("- ")):
            return False  # another document follows, or the items are not at column 0
        first = False
    return True


def append(
    path: Path,
    interactions: Sequence[Interaction],
    *,
    secrets: Iterable[str] = (),
    name: str | None = None,
) -> None:
    """Add ``interactions`` to the end of the cassette at ``path`` (created when missing).

    Under the directory lock the current file is re-read, so whatever other threads or
    processes added meanwhile is kept; the result is written atomically.  The common case
    copies the old bytes and appends the new items as text (no re-parse, no re-dump); a file
    in another shape is parsed, merged and rewritten.  ``secrets`` never reach the disk.
    """
    secrets = tuple(secrets)
    items = dump_yaml([interaction_to_dict(i) for i in interactions])
    items = scrub(items, secrets)
    with locked(path.parent):
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        if old is None or not old.strip():
            head = f"version: {VERSION}\n" + (f"name: {json.dumps(name)}\n" if name else "")
            new = head + "interactions:\n" + items
        elif path.suffix in (".yaml", ".yml") and _appendable(_strip_doc_end(old)):
            new = _strip_doc_end(old) + items
        else:
            c = loads(old, str(path))
            c.interactions.extend(interactions)
            new = scrub(dumps(c), secrets)
        atomic_write(path, _encode(new, path))
