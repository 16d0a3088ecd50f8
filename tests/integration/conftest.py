"""Live-server fixtures: a mockserver on 127.0.0.1, port 0, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from mockserver.config import Settings
from mockserver.server.running import ServerThread


@pytest.fixture
def make_server() -> Iterator[object]:
    started: list[ServerThread] = []

    def start(**overrides: object) -> ServerThread:
        settings = replace(Settings(port=0, mode="synth"), **overrides)  # type: ignore[arg-type]
        thread = ServerThread(settings).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def server(make_server: object) -> ServerThread:
    return make_server()  # type: ignore[operator, no-any-return]
