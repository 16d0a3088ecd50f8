"""Shared fixtures: the real-traffic corpus in ../shared/traffic (skipped with a reason when absent)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "nightly", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """The suite's cassette caches (parse cache, checked files) go to a directory of this run,
    never the user's ``~/.cache`` (a test that needs its own sets it again)."""
    if "MOCKSERVER_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["MOCKSERVER_CACHE_DIR"] = tempfile.mkdtemp(prefix="mockserver-test-cache-")


TRAFFIC = Path(os.environ.get("MOCKSERVER_TRAFFIC", ROOT.parent / "shared" / "traffic"))


@pytest.fixture(scope="session")
def traffic_dir() -> Path:
    if not (TRAFFIC / "manifest.json").is_file():
        pytest.skip(f"real traffic corpus not found at {TRAFFIC} (needs ../shared/traffic)")
    return TRAFFIC


@pytest.fixture(scope="session")
def traffic_manifest(traffic_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((traffic_dir / "manifest.json").read_text())
    samples: list[dict[str, Any]] = data["samples"]
    return samples


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Redis on a free loopback port for the whole session (each test keeps to its own
    key prefix: ``redis_prefix``); stopped by its PID at the end."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses."""
    return f"t{os.getpid()}:{abs(hash(request.node.nodeid)) % 10**8}:"
