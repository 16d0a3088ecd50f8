"""A shared Redis that goes away mid-run and comes back: the API keeps answering (replay and
synth, no 5xx), the health endpoint says ``degraded`` with the reason and ``ok`` again after,
the admin API says why it cannot answer meanwhile, and nothing is counted twice (or lost):
what the processes served while Redis was away is written once it is back."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer

from mockserver.config import Settings
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
HEADERS = {p.H_API_KEY: "k", p.H_VERSION: "2023-06-01", p.H_CONTENT_TYPE: p.CT_JSON}
REPLAYED = {  # in the shipped cassettes (text.yaml)
    "model": MODEL,
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = HEADERS if path.startswith("/v1") else {p.H_CONTENT_TYPE: p.CT_JSON}
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def health(url: str) -> dict[str, Any]:
    status, data = call(url, "GET", f"{p.ADMIN_PREFIX}/health")
    assert status == 200, data
    return dict(data)


def wait_for(url: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = health(url)
        if now["status"] == status:
            return now
        time.sleep(0.05)
    raise AssertionError(f"health never became {status}: {now}")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replicas(redis: RedisServer) -> Iterator[list[str]]:
    settings = Settings(port=0, mode="auto", state=redis.url, state_prefix="outage:")
    threads = [ServerThread(settings).start() for _ in range(2)]
    try:
        yield [t.base_url for t in threads]
    finally:
        for thread in threads:
            thread.stop()


def ask_all(urls: list[str], rounds: int, tag: str) -> list[int]:
    statuses = []
    for i in range(rounds):
        for url in urls:
            statuses.append(call(url, "POST", p.PATH_MESSAGES, REPLAYED)[0])  # replay
            synth = {**REPLAYED, "messages": [{"role": "user", "content": f"{tag} {i}"}]}
            statuses.append(call(url, "POST", p.PATH_MESSAGES, synth)[0])  # synth
    return statuses


def test_redis_going_away_and_coming_back(redis: RedisServer, replicas: list[str]) -> None:
    a, b = replicas
    before = ask_all(replicas, 2, "before")
    assert set(before) == {200} and health(a)["state"]["processes"] == 2

    redis.stop(save=True)
    during = ask_all(replicas, 3, "during")
    assert set(during) == {200}, during  # no 5xx: answered from each process's own state
    for url in replicas:
        down = wait_for(url, "degraded")
        assert down["state"]["ok"] is False and "redis at redis://" in down["state"]["reason"]
    status, error = call(b, "GET", f"{p.ADMIN_PREFIX}/journal")
    assert status == 503 and "shared state is unavailable" in error["error"]["message"]

    redis.start()  # with what it held (saved at shutdown)
    for url in replicas:
        back = wait_for(url, "ok")
        assert back["state"]["ok"] is True
    after = ask_all(replicas, 1, "after")
    assert set(after) == {200}

    sent = len(before) + len(during) + len(after)
    for url in replicas:  # every exchange counted once, from every process alike
        status, usage = call(url, "GET", f"{p.ADMIN_PREFIX}/usage")
        assert status == 200 and usage["requests"] == sent, usage
        status, journal = call(url, "GET", f"{p.ADMIN_PREFIX}/journal")
        ids = [ex["id"] for ex in journal["exchanges"]]
        assert len(ids) == sent == len(set(ids))
