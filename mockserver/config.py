"""Frozen ``Settings``, validated eagerly (a bad value is a ``ConfigError`` at startup)."""

from __future__ import annotations

import functools
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .profile import Profile, load_profile
from .shared.opening import check_url
from .wire.errors import ConfigError

MODES = ("auto", "replay", "synth", "record", "record-new")
DEFAULT_UPSTREAM = "https://llm.bytespike.ai"
#: environment variable holding the key used for recording when the client sends none
UPSTREAM_KEY_ENV = "MOCKSERVER_UPSTREAM_API_KEY"
#: the placeholder key the pytest plugin sets when none is set; never sent upstream
DUMMY_API_KEY = "sk-mockserver-dummy-key"
#: how a refused recording starts its error message (the plugin looks for it)
NO_KEY_TO_RECORD = "mockserver: not recording with the pytest plugin's placeholder key"
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)x$")
#: the names of this machine's loopback interface, as a ``Host`` header spells them
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def loopback_bind(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def wildcard_bind(host: str) -> bool:
    """Whether binding ``host`` serves every interface (``0.0.0.0``, ``::``)."""
    return host.strip().strip("[]") in ("0.0.0.0", "::", "")


#: the event loops a server can run on (``--loop``)
LOOPS: Final = ("asyncio", "uvloop")


@functools.cache
def uvloop_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def resolve_loop(name: str | None) -> str:
    """The loop ``name`` asks for (``None``: uvloop when installed, else asyncio), checked."""
    if name is None:
        return "uvloop" if uvloop_installed() else "asyncio"
    if name not in LOOPS:
        raise ConfigError(f"--loop must be one of {', '.join(LOOPS)}, got {name!r}")
    if name == "uvloop" and not uvloop_installed():
        raise ConfigError(
            "--loop uvloop: uvloop is not installed here (pip install uvloop; it does not "
            "build on Windows). Use --loop asyncio"
        )
    return name


def default_cassettes_dir() -> Path:
    """The example cassettes shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("mockserver.example_cassettes")))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    mode: str = "auto"
    cassettes: Path | None = None  # None = the shipped examples; a .yaml file = that one cassette
    upstream: str = DEFAULT_UPSTREAM
    profile: Profile = field(default_factory=load_profile)
    timing: str = "instant"  # instant | recorded | SPEEDx
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # empty: any non-empty key
    seed: int = 0
    strict_sequence: bool = False
    admin_token: str | None = field(default=None, repr=False)
    #: the admin API and the inspector are served (``--no-admin``: not at all)
    admin: bool = True
    #: more ``Host`` names the admin API and the inspector answer to (``--allowed-host``)
    allowed_hosts: tuple[str, ...] = ()
    #: the admin token was made here, for a non-loopback bind given none (printed at startup)
    admin_token_generated: bool = False
    validate: bool = True  # run contract checks on recorded exchanges
    ignore_paths: tuple[str, ...] = ()  # JSON paths left out of matching
    fault_config: Path | None = None
    #: scripted-reply rule files (``--rules``: files, or directories of ``*.yaml``)
    rule_files: tuple[Path, ...] = ()
    workers: int = 1
    #: where processes share their state: ``redis://HOST:PORT/DB`` (``--state``), or the
    #: SQLite file ``--workers N`` makes for itself; ``None``: this process's, in memory
    state: str | None = field(default=None, repr=False)  # (a Redis URL may hold a password)
    #: the prefix of every key in a shared Redis (two mocks can share one)
    state_prefix: str = "mockserver:"
    log_requests: bool = False
    #: seconds a client has to send a request: its head (counted from the connection or the
    #: previous reply, so also how long an idle keep-alive connection stays open) and,
    #: separately, its body; a trickling (slowloris) client is cut off after it
    read_timeout: float = 60.0
    #: the event loop (``--loop``): ``None`` picks uvloop when it is installed, else asyncio
    loop: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "loop", resolve_loop(self.loop))
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, got {self.port}")
        if self.timing not in ("instant", "recorded") and not _SPEED.match(self.timing):
            raise ConfigError(
                f"--timing must be instant, recorded or a speed factor like 4x, got {self.timing!r}"
            )
        if self.speed <= 0:
            raise ConfigError("--timing speed factor must be > 0")
        if not self.read_timeout > 0:
            raise ConfigError(f"read_timeout must be > 0 seconds, got {self.read_timeout}")
        if self.workers < 1:
            raise ConfigError("--workers must be >= 1")
        if self.state is not None:
            check_url(self.state)
        if self.mode in ("record", "record-new") and (self.workers > 1 or self.state):
            raise ConfigError(
                f"--mode {self.mode} records with one process: with --workers or --state each "
                "process would write its own recordings and a request could be recorded twice. "
                "Record with one process, then serve the cassettes with --workers/--state"
            )
        if self.admin and self.admin_token is None and not loopback_bind(self.host):
            # served to the network: the admin API (journal: prompts, replies) needs a token
            object.__setattr__(self, "admin_token", secrets.token_urlsafe(24))
            object.__setattr__(self, "admin_token_generated", True)
        if self.mode in ("record", "record-new") and not self.upstream.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(f"--upstream must be an http(s) URL, got {self.upstream!r}")

    @property
    def speed(self) -> float:
        """Factor by which recorded delays are divided (0 = no delays at all)."""
        if self.timing == "instant":
            return float("inf")
        if self.timing == "recorded":
            return 1.0
        m = _SPEED.match(self.timing)
        return float(m.group(1)) if m else 1.0

    @property
    def cassette_dir(self) -> Path:
        return self.cassettes if self.cassettes is not None else default_cassettes_dir()
