"""The admin API and the inspector answer only their own pages: a foreign Host (DNS rebinding)
is a 403; a cross-site POST or DELETE (text/plain, or any foreign Origin) is a 403 that
changes nothing; a non-loopback bind needs a token (generated and printed when none is
given); ``--allowed-host`` admits a name; ``--no-admin`` serves none of it.  The API routes
are not restricted."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mockserver.config import Settings
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

API = {p.H_API_KEY: "sk-sec", p.H_VERSION: "2023-06-01", p.H_CONTENT_TYPE: p.CT_JSON}
BODY = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}
RULE = {"fault": "overloaded", "times": 1}
EVIL = "http://evil.example"


def call(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, Any]:
    """One request to 127.0.0.1:port; ``headers`` may set ``Host`` to anything."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


def port_of(thread: ServerThread) -> int:
    return int(thread.base_url.rsplit(":", 1)[1])


@pytest.fixture
def server() -> Iterator[ServerThread]:
    thread = ServerThread(Settings(port=0, mode="synth")).start()
    try:
        yield thread
    finally:
        thread.stop()


def journal_size(port: int) -> int:
    status, data = call(port, "GET", f"{p.ADMIN_PREFIX}/journal")
    assert status == 200, data
    return len(data["exchanges"])


def rules(port: int) -> list[Any]:
    status, data = call(port, "GET", f"{p.ADMIN_PREFIX}/faults")
    assert status == 200, data
    return list(data["rules"])


def assert_403(status: int, data: Any, *words: str) -> None:
    assert status == 403, data
    assert data["type"] == "error" and data["error"]["type"] == p.PERMISSION, data
    for word in words:
        assert word in data["error"]["message"], data


# --- cross-site requests change nothing ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"content-type": "text/plain", "origin": EVIL}, "content-type"),
        ({"content-type": "text/plain"}, "content-type"),  # (a form, a beacon: no preflight)
        ({"content-type": "application/x-www-form-urlencoded"}, "content-type"),
        ({}, "content-type"),
        ({"content-type": p.CT_JSON, "origin": EVIL}, "another origin"),
        ({"content-type": p.CT_JSON, "origin": "null"}, "another origin"),
    ],
)
def test_cross_site_post_and_delete_are_refused(
    server: ServerThread, headers: dict[str, str], why: str
) -> None:
    port = port_of(server)
    call(port, "POST", p.PATH_MESSAGES, body=json.dumps(BODY).encode(), headers=API)
    before = journal_size(port)
    status, data = call(
        port, "POST", f"{p.ADMIN_PREFIX}/faults", body=json.dumps(RULE).encode(), headers=headers
    )
    assert_403(status, data, why)
    assert rules(port) == []  # no fault rule was added
    for name in ("journal", "faults", "usage", "cache"):
        status, data = call(port, "DELETE", f"{p.ADMIN_PREFIX}/{name}", headers=headers)
        assert_403(status, data, why)
    status, data = call(port, "POST", f"{p.ADMIN_PREFIX}/reload", headers=headers)
    assert_403(status, data, why)
    assert journal_size(port) == before  # nothing was cleared


def test_the_servers_own_origin_may_change_it(server: ServerThread) -> None:
    port = port_of(server)
    own = {"content-type": p.CT_JSON, "origin": f"http://127.0.0.1:{port}"}
    status, data = call(
        port, "POST", f"{p.ADMIN_PREFIX}/faults", body=json.dumps(RULE).encode(), headers=own
    )
    assert status == 200 and len(rules(port)) == 1, data
    assert call(port, "DELETE", f"{p.ADMIN_PREFIX}/faults", headers=own)[0] == 200
    # a client that is not a browser sends no Origin: JSON is enough
    status, _ = call(
        port, "DELETE", f"{p.ADMIN_PREFIX}/journal", headers={"content-type": p.CT_JSON}
    )
    assert status == 200


# --- a foreign Host reads nothing ------------------------------------------------------------

ADMIN_GETS = (
    "health",
    "journal",
    "faults",
    "usage",
    "ui",
    "ui/",
    "ui/app.js",
    "ui/index.html",
    "ui/api/exchanges",
    "journal/1",
    "journal/1/interaction",
)


@pytest.mark.parametrize("name", ADMIN_GETS)
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}"]
)
def test_a_foreign_host_is_refused(server: ServerThread, name: str, host: str) -> None:
    port = port_of(server)
    call(port, "POST", p.PATH_MESSAGES, body=json.dumps(BODY).encode(), headers=API)
    status, data = call(
        port, "GET", f"{p.ADMIN_PREFIX}/{name}", headers={"host": host.format(port=port)}
    )
    assert_403(status, data, "is not this server's address", "--allowed-host")


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "localhost."]
)
def test_loopback_names_are_this_servers(server: ServerThread, host: str) -> None:
    port = port_of(server)
    status, _ = call(
        port, "GET", f"{p.ADMIN_PREFIX}/journal", headers={"host": host.format(port=port)}
    )
    assert status == 200
    status, page = call(
        port, "GET", f"{p.ADMIN_PREFIX}/ui", headers={"host": host.format(port=port)}
    )
    assert status == 200 and b"<html" in page


def test_the_api_answers_any_host(server: ServerThread) -> None:
    port = port_of(server)
    status, data = call(
        port,
        "POST",
        p.PATH_MESSAGES,
        body=json.dumps(BODY).encode(),
        headers={**API, "host": "mock.internal:80"},
    )
    assert status == 200 and data["type"] == "message"


def test_allowed_host_admits_a_name() -> None:
    thread = ServerThread(Settings(port=0, allowed_hosts=("mock.internal",))).start()
    try:
        port = port_of(thread)
        named = {"host": f"mock.internal:{port}"}
        assert call(port, "GET", f"{p.ADMIN_PREFIX}/journal", headers=named)[0] == 200
        change = {**named, "content-type": p.CT_JSON, "origin": f"http://mock.internal:{port}"}
        assert call(port, "DELETE", f"{p.ADMIN_PREFIX}/journal", headers=change)[0] == 200
        other = {"host": f"other.internal:{port}"}
        assert call(port, "GET", f"{p.ADMIN_PREFIX}/journal", headers=other)[0] == 403
    finally:
        thread.stop()


# --- a non-loopback bind needs a token; --no-admin serves nothing ------------------------------


def test_a_network_bind_generates_and_prints_a_token_that_works() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mockserver",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--mode",
            "synth",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        text = "".join(lines)
        found = re.search(
            r"inspector: (http://127\.0\.0\.1:(\d+))/_mockserver/ui\?token=(\S+)", text
        )
        assert found, text
        assert "served to the network" in text and "admin token" in text
        port, token = int(found.group(2)), found.group(3)
        assert len(token) >= 24
        # without the token: 401 on every admin call and on the inspector's data
        for name in ("health", "journal", "faults", "usage", "ui/api/exchanges"):
            status, data = call(port, "GET", f"{p.ADMIN_PREFIX}/{name}")
            assert status == 401 and data["error"]["type"] == p.AUTHENTICATION, (name, data)
        status, _ = call(
            port, "DELETE", f"{p.ADMIN_PREFIX}/journal", headers={"content-type": p.CT_JSON}
        )
        assert status == 401
        # with it: served (header or query), and the inspector URL it printed works
        status, _ = call(port, "GET", f"{p.ADMIN_PREFIX}/journal", headers={p.H_ADMIN_TOKEN: token})
        assert status == 200
        status, _ = call(port, "GET", f"{p.ADMIN_PREFIX}/ui/api/exchanges?token={token}")
        assert status == 200
        assert call(port, "GET", f"{p.ADMIN_PREFIX}/ui?token={token}")[0] == 200
        # the API itself needs no admin token
        assert (
            call(port, "POST", p.PATH_MESSAGES, body=json.dumps(BODY).encode(), headers=API)[0]
            == 200
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert token not in err  # printed once on stdout, never logged


def test_no_admin_answers_404_on_every_admin_path() -> None:
    thread = ServerThread(Settings(port=0, admin=False, mode="synth")).start()
    try:
        port = port_of(thread)
        for name in (*ADMIN_GETS, "", "nope", "reload"):
            for method in ("GET", "POST", "DELETE"):
                status, data = call(
                    port, method, f"{p.ADMIN_PREFIX}/{name}", headers={"content-type": p.CT_JSON}
                )
                assert status == 404 and data["error"]["type"] == p.NOT_FOUND, (method, name, data)
        assert call(port, "GET", p.ADMIN_PREFIX)[0] == 404
        status, _ = call(port, "POST", p.PATH_MESSAGES, body=json.dumps(BODY).encode(), headers=API)
        assert status == 200
        assert thread.state is not None
        assert [ex.path for ex in thread.state.journal.all()] == [
            p.PATH_MESSAGES
        ]  # 404s unjournaled
    finally:
        thread.stop()


def test_settings_for_a_network_bind_always_carry_a_token() -> None:
    settings = Settings(host="0.0.0.0", port=0)
    assert settings.admin_token and settings.admin_token_generated
    assert Settings(host="0.0.0.0", port=0, admin_token="mine").admin_token_generated is False
    assert Settings(host="0.0.0.0", port=0, admin=False).admin_token is None
    assert Settings(port=0).admin_token is None  # loopback: no token unless asked for
    assert Settings(host="::1", port=0).admin_token is None
    t0 = time.monotonic()
    assert Settings(host="0.0.0.0", port=0).admin_token != settings.admin_token  # fresh per run
    assert time.monotonic() - t0 < 1
