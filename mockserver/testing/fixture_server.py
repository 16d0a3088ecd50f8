"""The pytest plugin's server side: what one test asks for (``Plan``), the server that serves
it (one per test, or one per session reconfigured for each test), and the checks after the
test (requests no recording matched, with their near-miss diff; interactions never used).

Nothing here imports pytest: ``pytest_plugin`` turns options and markers into a ``Plan``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ..cassettes import cassette as cas
from ..cassettes.matching import ABSENT
from ..config import NO_KEY_TO_RECORD, Settings
from ..contract.violations import short
from ..profile import Profile, load_profile
from ..server.fault_rules import FaultBook
from ..server.journal import Exchange
from ..server.running import ServerThread
from ..server.state import State
from ..sources.modes import make_source
from ..sources.replay import ReplaySource
from ..sources.rules.book import PYTEST, RuleBook
from ..sources.rules.spec import parse_rule
from .journal_view import JournalView

RECORD_MODES: Final = ("record", "record-new")
#: a name, an absolute path, or a path relative to the cassettes directory
CassetteRef = str | os.PathLike[str]
FaultRef = str | Mapping[str, Any]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_MAX_NAME = 120
#: differences shown per near miss
_MAX_DIFFS = 5


@dataclass(frozen=True)
class Plan:
    """What one test asks for, settled from marker, command line, environment and ini."""

    mode: str
    cassette: Path
    upstream: str
    profile: str | None = None
    faults: tuple[FaultRef, ...] = ()
    #: rule files (``rules=`` a path) and rules given as dicts (``rules=[{...}]``)
    rule_files: tuple[Path, ...] = ()
    rules: tuple[Mapping[str, Any], ...] = ()
    set_env: bool = True
    assert_all_used: bool = False

    def settings(self) -> Settings:
        """The server settings (``ConfigError`` for a bad profile or upstream)."""
        return Settings(
            host="127.0.0.1",
            port=0,
            mode=self.mode,
            cassettes=self.cassette,
            upstream=self.upstream,
            profile=cached_profile(self.profile),
            rule_files=self.rule_files,
        )


@lru_cache(maxsize=32)
def cached_profile(ref: str | None) -> Profile:
    return load_profile(ref)


# --- cassette names ---------------------------------------------------------------------------


def safe_name(text: str) -> str:
    """A file name for a test (or module) name: ``test_x[a b-1]`` -> ``test_x-a_b-1``."""
    name = _UNSAFE.sub("_", text.replace("[", "-").replace("]", "")).strip("._-") or "_"
    if len(name) > _MAX_NAME:  # long parametrized ids: keep them apart with a hash
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        name = f"{name[: _MAX_NAME - 13]}-{digest}"
    return name


def default_cassette(base: Path, module: str, test: str) -> Path:
    """``<cassettes>/<module>/<test>.yaml``."""
    return base / safe_name(module) / f"{safe_name(test)}.yaml"


def marker_cassette(base: Path, module: str, ref: CassetteRef) -> Path:
    """A marker's ``cassette=``: an absolute path is used as is, a name with a ``/`` is
    relative to the cassettes directory, a bare name lives beside the module's default
    cassettes (so tests of one module can share it); ``.yaml`` is added when no suffix."""
    text = os.fspath(ref).strip()
    if not text:
        raise ValueError("@pytest.mark.mockserver: cassette= must not be empty")
    path = Path(text)
    if not cas.is_cassette_file(path):
        path = path.with_name(path.name + ".yaml")
    if path.is_absolute():
        return path
    if len(path.parts) == 1:
        return base / safe_name(module) / path
    return base / path


class RulesView:
    """``mockserver.rules``: a test's own scripted replies."""

    def __init__(self, book: RuleBook) -> None:
        self._book = book

    def add(self, rule: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
        """Add one rule (or several), tried after the rules already there; ``RuleError``
        (naming the rule and field) when one cannot be used."""
        items = rule if isinstance(rule, list) else [rule]
        self._book.add([parse_rule(dict(item), "mockserver.rules.add", PYTEST) for item in items])

    def clear(self) -> int:
        """No rule answers any more; returns how many were removed."""
        return self._book.clear()

    def __len__(self) -> int:
        return len(self._book)

    def names(self) -> list[str]:
        return [r.name for r in self._book.rules()]


# --- the fixture's object -----------------------------------------------------------------------


class MockServer:
    """The ``mockserver`` fixture: the running mock server one test talks to."""

    def __init__(self, thread: ServerThread, plan: Plan) -> None:
        self._thread = thread
        self.plan = plan
        #: the requests the app sent, with helpers (``requests``, ``tools_offered()``, ...)
        self.journal = JournalView(lambda: self.state.journal)

    def __repr__(self) -> str:
        return f"<MockServer {self.base_url} mode={self.mode} cassette={self.cassette}>"

    @property
    def base_url(self) -> str:
        return self._thread.base_url

    @property
    def state(self) -> State:
        """The server's runtime state (journal, faults, usage, settings): for power users."""
        state = self._thread.state
        assert state is not None, "the mock server is not running"
        return state

    @property
    def rules(self) -> RulesView:
        """Scripted replies for this test: ``.add(rule)`` (the rules-file shape of one rule, or
        a list), ``.clear()``; gone after the test."""
        return RulesView(self.state.rules)

    @property
    def faults(self) -> FaultBook:
        """Fault rules for the requests still to come: ``.add("overloaded;times=1")``, ``.clear()``."""
        return self.state.faults

    @property
    def mode(self) -> str:
        return self.plan.mode

    @property
    def cassette(self) -> Path:
        """The cassette file this test replays from / records into."""
        return self.plan.cassette

    def reset_cache(self) -> int:
        """Forget the prompt-cache simulation's state; returns the entries dropped."""
        return self.state.reset_cache()

    def unused(self) -> list[str]:
        """Interactions of the cassette no request has used (yet), as ``name#pos (METHOD path)``."""
        source = self.state.source
        if not isinstance(source, ReplaySource):  # record and synth modes replay nothing
            return []
        source.library.load()  # nothing asked yet: the library may not be loaded
        return [
            f"{name}#{pos} ({inter.request.method} {inter.request.path})"
            for name, pos, inter in source.library.unused()
        ]

    # --- the checks after the test ------------------------------------------------------------

    def miss_report(self) -> str | None:
        """Why requests found no recording (with the near-miss diff), or None."""
        misses = self.journal.unmatched
        if not misses:
            return None
        lines = [
            f"mockserver: {len(misses)} request(s) matched no recorded interaction in "
            f"{self.cassette} (mode {self.mode}):"
        ]
        for ex in misses:
            lines += _describe_miss(ex)
        if not self.cassette.exists():
            lines.append(
                "The cassette does not exist yet: record it with --mockserver-mode=record "
                "(or record-new) and --mockserver-upstream URL."
            )
        else:
            lines.append(
                "If the app's requests changed on purpose, re-record: --mockserver-mode="
                "record-new adds the new interactions, record starts the cassette over."
            )
        return "\n".join(lines)

    def refused_report(self) -> str | None:
        """Requests the recorder refused to forward with the plugin's placeholder key, or None."""
        refused = [ex for ex in self.journal.all if _refusal(ex)]
        if not refused:
            return None
        return (
            f"{_refusal(refused[0])}\n  ({len(refused)} request(s) not recorded; "
            f"the cassette {self.cassette} was left as it was)"
        )

    def unused_report(self) -> str | None:
        """With ``assert_all_used``: the recorded interactions no request used, or None."""
        if not self.plan.assert_all_used:
            return None
        unused = self.unused()
        if not unused:
            return None
        return (
            f"mockserver: {len(unused)} recorded interaction(s) of {self.cassette} were never "
            f"used (assert_all_used): {', '.join(unused)}"
        )


def _describe_miss(ex: Exchange) -> list[str]:
    lines = [f"  request #{ex.id}: {ex.method} {ex.path}"]
    for near in ex.near_misses:
        lines.append(
            f"    nearest recording {near['cassette']}#{near['interaction']}: "
            f"{near['differences']} difference(s)"
        )
        diffs = near.get("diff") or []
        for diff in diffs[:_MAX_DIFFS]:
            lines.append(
                f"      differs at {diff['path']}: recorded {_show(diff['recorded'])}, "
                f"requested {_show(diff['requested'])}"
            )
        if len(diffs) > _MAX_DIFFS:
            lines.append(f"      ... and {len(diffs) - _MAX_DIFFS} more")
    if not ex.near_misses:
        error = ex.response.get("error") if isinstance(ex.response, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        lines.append(f"    {text or 'nothing recorded on this route'}")
    return lines


def _refusal(ex: Exchange) -> str | None:
    """The recorder's refusal text when ``ex`` is a request it would not forward."""
    error = ex.response.get("error") if isinstance(ex.response, dict) else None
    text = error.get("message") if isinstance(error, dict) else None
    return text if isinstance(text, str) and text.startswith(NO_KEY_TO_RECORD) else None


def _show(value: Any) -> str:
    return ABSENT if value == ABSENT else short(value, 200)


# --- hosting ------------------------------------------------------------------------------------


def start_server(settings: Settings) -> ServerThread:
    """A server for one test, on the process's shared loop (its thread made once)."""
    return ServerThread(settings, shared=True).start()


class SessionHost:
    """One server for the whole session, reconfigured for each test (same port, fresh
    journal, faults, usage and source)."""

    def __init__(self) -> None:
        self.thread: ServerThread | None = None

    def serve(self, settings: Settings) -> ServerThread:
        if self.thread is None:
            self.thread = start_server(settings)
        else:
            self._run(self._swap(settings))
        return self.thread

    async def _swap(self, settings: Settings) -> None:
        assert self.thread is not None and self.thread.state is not None
        state = self.thread.state
        old = state.source
        port = urlsplit(self.thread.base_url).port or 0
        state.reconfigure(replace(settings, port=port))
        state.source = make_source(state)
        await _lifecycle(state.source, "startup")
        await _lifecycle(old, "cleanup")

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self.thread is not None
        asyncio.run_coroutine_threadsafe(coro, self.thread.loop).result(30)

    def close(self) -> None:
        if self.thread is None:
            return
        try:
            if self.thread.state is not None:
                self._run(_lifecycle(self.thread.state.source, "cleanup"))
        finally:
            self.thread.stop()
            self.thread = None


async def _lifecycle(source: object, hook: str) -> None:
    fn = getattr(source, hook, None)
    if fn is not None:
        await fn()
