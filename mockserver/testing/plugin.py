"""pytest plugin (entry point ``pytest11: mockserver``): offline, deterministic LLM fixtures
for apps that talk to the Anthropic Messages API.

- fixture ``mockserver``: a mock server on 127.0.0.1 (port 0; every test's server runs on
  one event loop in a background thread, made once per process) with ``.base_url``,
  ``.journal``, ``.faults``, ``.reset_cache()``, ``.cassette``, ``.state``.  While the test runs, ``ANTHROPIC_BASE_URL`` points at it (and
  ``ANTHROPIC_API_KEY`` holds a dummy key when no key is set), so unmodified app code
  reaches it; both are restored afterwards.
- marker ``@pytest.mark.mockserver(cassette=, mode=, fault=, profile=, rules=,
  assert_all_used=, set_env=)``: a marked test gets the fixture without asking for it.
- options ``--mockserver-mode`` (default ``replay``), ``--mockserver-upstream URL`` (also
  ``$MOCKSERVER_UPSTREAM``); ini ``mockserver_mode``, ``mockserver_upstream``,
  ``mockserver_cassettes``, ``mockserver_profile``, ``mockserver_scope``,
  ``mockserver_set_env``, ``mockserver_assert_all_used``.

Each test has its own cassette, ``<mockserver_cassettes>/<module>/<test>.yaml``.  ``replay``
serves it and fails the test on a request it does not hold (the report shows the nearest
recording and where it differs); ``record`` starts it over from the upstream;
``record-new`` replays what it holds and records the rest; ``auto`` replays and synthesizes
the rest; ``synth`` ignores it.  Precedence: marker, command line, environment, ini.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from ..config import DEFAULT_UPSTREAM, DUMMY_API_KEY, MODES, NO_KEY_TO_RECORD, UPSTREAM_KEY_ENV
from ..wire.errors import MockserverError

if TYPE_CHECKING:
    from types import ModuleType

    from .fixture_server import MockServer, Plan, SessionHost

__all__ = ["MockServer"]


def _fs() -> ModuleType:
    """The server side of the plugin, imported on first use: a pytest run that never asks for
    the fixture does not pay for importing the app."""
    from . import fixture_server

    return fixture_server


def __getattr__(name: str) -> Any:
    if name == "MockServer":
        return _fs().MockServer
    raise AttributeError(name)


MARKER: Final = "mockserver"
MARKER_ARGS: Final = ("cassette", "mode", "fault", "profile", "rules", "assert_all_used", "set_env")
SCOPES: Final = ("function", "session")
UPSTREAM_ENV: Final = "MOCKSERVER_UPSTREAM"
ENV_BASE_URL: Final = "ANTHROPIC_BASE_URL"
ENV_API_KEY: Final = "ANTHROPIC_API_KEY"
ENV_AUTH_TOKEN: Final = "ANTHROPIC_AUTH_TOKEN"

_SERVER = pytest.StashKey["MockServer"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockserver", "mockserver: Anthropic Messages API mock")
    group.addoption(
        "--mockserver-mode",
        choices=MODES,
        default=None,
        help="replay (default: cassettes only, a miss fails the test), record (start each "
        "test's cassette over from the upstream), record-new (replay hits, record misses), "
        "auto (replay hits, synthesize misses), synth (synthesize everything)",
    )
    group.addoption(
        "--mockserver-upstream",
        default=None,
        metavar="URL",
        help=f"endpoint to record from (also ${UPSTREAM_ENV}; default {DEFAULT_UPSTREAM})",
    )
    parser.addini("mockserver_mode", "default --mockserver-mode", default="replay")
    parser.addini("mockserver_upstream", "default --mockserver-upstream", default="")
    parser.addini(
        "mockserver_cassettes",
        "cassette directory, relative to the ini file (or rootdir)",
        default="cassettes",
    )
    parser.addini("mockserver_profile", "profile name or YAML path (default profile)", default="")
    parser.addini(
        "mockserver_scope",
        "function (a server per test) or session (one, reconfigured)",
        "string",
        "function",
    )
    parser.addini(
        "mockserver_set_env", "point ANTHROPIC_BASE_URL at the mock during tests", "bool", True
    )
    parser.addini(
        "mockserver_assert_all_used",
        "fail a test that left recorded interactions unused",
        "bool",
        False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mockserver(cassette=None, mode=None, fault=None, profile=None, rules=None, "
        "assert_all_used=None, "
        "set_env=None): serve this test's Anthropic API calls from a mock server (replaying "
        "its cassette; mode, fault spec, profile and checks per test). See mockserver docs.",
    )
    for name, allowed in (("mockserver_mode", MODES), ("mockserver_scope", SCOPES)):
        value = config.getini(name)
        if value not in allowed:
            raise pytest.UsageError(
                f"ini {name} must be one of {', '.join(allowed)}, got {value!r}"
            )


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"mockserver: mode {_mode(config, None)}, cassettes {_cassette_dir(config)}, "
        f"scope {config.getini('mockserver_scope')}"
    )


# --- settling what a test asks for --------------------------------------------------------------


def _marker_args(item: pytest.Item) -> dict[str, Any]:
    """The marker's arguments, the closest marker winning per argument."""
    merged: dict[str, Any] = {}
    for mark in item.iter_markers(MARKER):
        if len(mark.args) > 1:
            raise ValueError(
                "@pytest.mark.mockserver takes at most one positional argument (cassette)"
            )
        kwargs = {**({"cassette": mark.args[0]} if mark.args else {}), **mark.kwargs}
        unknown = sorted(set(kwargs) - set(MARKER_ARGS))
        if unknown:
            raise ValueError(
                f"@pytest.mark.mockserver: unknown argument(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(MARKER_ARGS)}"
            )
        for key, value in kwargs.items():
            merged.setdefault(key, value)
    return merged


def _mode(config: pytest.Config, marked: Any) -> str:
    mode = str(marked or config.getoption("mockserver_mode") or config.getini("mockserver_mode"))
    if mode not in MODES:
        raise ValueError(f"mockserver mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def _cassette_dir(config: pytest.Config) -> Path:
    return _base(config) / str(config.getini("mockserver_cassettes"))


def _profile(ref: str | None, *near: Path) -> str | None:
    """A profile name as given; a relative YAML path found beside the test or the ini file."""
    if not ref or not ref.endswith((".yaml", ".yml")) or Path(ref).is_absolute():
        return ref or None
    for folder in near:
        if (folder / ref).is_file():
            return str(folder / ref)
    return ref


def _faults(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str | dict):
        return (value,)
    return tuple(value)


def _rule_files(value: Any, base: Path, module: str) -> tuple[Path, ...]:
    """``rules=`` paths, found as ``cassette=`` is (a bare name beside the module's cassettes,
    a path relative to the cassettes directory, or absolute)."""
    refs = value if isinstance(value, list | tuple) else [value]
    out = []
    for ref in refs:
        if isinstance(ref, str | os.PathLike):
            out.append(_fs().marker_cassette(base, module, ref))
    return tuple(out)


def _rule_dicts(value: Any) -> tuple[Any, ...]:
    """``rules=`` given as rule dicts (``rules=[{"name": ..., "when": ..., "reply": ...}]``)."""
    refs = value if isinstance(value, list | tuple) else [value]
    return tuple(r for r in refs if isinstance(r, dict))


def _bool(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def make_plan(item: pytest.Item) -> Plan:
    """Marker, then command line, then environment, then ini (``ValueError`` when bad)."""
    config = item.config
    marked = _marker_args(item)
    module = item.path.stem
    base = _cassette_dir(config)
    cls = getattr(item, "cls", None)
    test = f"{cls.__name__}.{item.name}" if cls is not None else item.name
    ref = marked.get("cassette")
    cassette = (
        _fs().marker_cassette(base, module, ref)
        if ref
        else _fs().default_cassette(base, module, test)
    )
    upstream = (
        config.getoption("mockserver_upstream")
        or os.environ.get(UPSTREAM_ENV)
        or config.getini("mockserver_upstream")
        or DEFAULT_UPSTREAM
    )
    if marked.get("profile"):
        profile = _profile(str(marked["profile"]), item.path.parent, _base(config))
    else:
        profile = _profile(str(config.getini("mockserver_profile")), _base(config))
    plan: Plan = _fs().Plan(
        mode=_mode(config, marked.get("mode")),
        cassette=cassette,
        upstream=str(upstream),
        profile=profile,
        faults=_faults(marked.get("fault")),
        rule_files=_rule_files(marked.get("rules"), base, module),
        rules=_rule_dicts(marked.get("rules")),
        set_env=_bool(marked.get("set_env"), config.getini("mockserver_set_env")),
        assert_all_used=_bool(
            marked.get("assert_all_used"), config.getini("mockserver_assert_all_used")
        ),
    )
    return plan


# --- fixtures -----------------------------------------------------------------------------------


def _real_key() -> bool:
    """Whether a key for the upstream is set (not the plugin's placeholder)."""
    names = (ENV_API_KEY, ENV_AUTH_TOKEN, UPSTREAM_KEY_ENV)
    return any(os.environ.get(name) not in (None, "", DUMMY_API_KEY) for name in names)


def _no_key_message() -> str:
    return (
        f"{NO_KEY_TO_RECORD}: recording forwards the requests to the upstream with your key. "
        f"Set {ENV_API_KEY} (or {UPSTREAM_KEY_ENV}, used only for recording) to a real key "
        "and run again; the cassette was left as it was"
    )


@pytest.fixture(scope="session")
def _mockserver_session() -> Iterator[SessionHost]:
    host = _fs().SessionHost()  # starts nothing until a test asks for a session-scoped server
    yield host
    host.close()


@pytest.fixture
def mockserver(
    request: pytest.FixtureRequest, _mockserver_session: SessionHost
) -> Iterator[MockServer]:
    """A mock Anthropic Messages API server for this test (see the module docstring)."""
    try:
        plan = make_plan(request.node)
        settings = plan.settings()
    except (MockserverError, ValueError) as exc:
        pytest.fail(f"mockserver: {exc}", pytrace=False)
    if plan.mode == "record" and plan.set_env and not _real_key():
        # (before the cassette is started over: a refused recording must not cost the old one)
        pytest.fail(_no_key_message(), pytrace=False)
    if plan.mode == "record":  # the cassette holds exactly this run
        plan.cassette.unlink(missing_ok=True)
    session = request.config.getini("mockserver_scope") == "session"
    try:  # (a rules file that cannot be used fails the test, naming file, rule and field)
        thread = _mockserver_session.serve(settings) if session else _fs().start_server(settings)
    except MockserverError as exc:
        pytest.fail(f"mockserver: {exc}", pytrace=False)
    server = _fs().MockServer(thread, plan)
    try:
        for rule in plan.faults:
            try:
                server.faults.add(rule, origin="pytest")
            except MockserverError as exc:
                pytest.fail(f"mockserver: fault={rule!r}: {exc}", pytrace=False)
        if plan.rules:
            try:
                server.rules.add(list(plan.rules))
            except MockserverError as exc:
                pytest.fail(f"mockserver: rules=: {exc}", pytrace=False)
        with pytest.MonkeyPatch.context() as env:
            if plan.set_env:
                env.setenv(ENV_BASE_URL, server.base_url)
                if not (os.environ.get(ENV_API_KEY) or os.environ.get(ENV_AUTH_TOKEN)):
                    # recording forwards the client's key: the upstream key, when there is one
                    upstream_key = os.environ.get(UPSTREAM_KEY_ENV) or DUMMY_API_KEY
                    recording = plan.mode in _fs().RECORD_MODES
                    env.setenv(ENV_API_KEY, upstream_key if recording else DUMMY_API_KEY)
            request.node.stash[_SERVER] = server
            yield server
    finally:
        if _SERVER in request.node.stash:
            del request.node.stash[_SERVER]
        if not session:
            thread.stop()


@pytest.fixture(autouse=True)
def _mockserver_marker(request: pytest.FixtureRequest) -> None:
    """A test marked ``@pytest.mark.mockserver`` gets the fixture without naming it."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("mockserver")


# --- the verdict --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """After the test: a request no recording matched fails it with the near-miss diff (as a
    note on the test's own exception when it failed anyway); with ``assert_all_used``, so
    does a recorded interaction that no request used."""
    try:
        result = yield
    except Exception as exc:
        server = item.stash.get(_SERVER, None)
        miss = (server.refused_report() or server.miss_report()) if server is not None else None
        if miss:
            exc.add_note(miss)
        raise
    server = item.stash.get(_SERVER, None)
    if server is not None:
        problem = server.refused_report() or server.miss_report() or server.unused_report()
        if problem:
            pytest.fail(problem, pytrace=False)
    return result
