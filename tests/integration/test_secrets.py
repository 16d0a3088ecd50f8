"""No key, bearer token or admin token is ever written anywhere: not to a cassette, the journal
export, the server's logs or an error message.

Canary credentials go to every route (messages, count_tokens, models, unknown routes, every
admin route) in every mode (synth, auto, replay, record and record-new against the fake
upstream), in every position a client can put them (``x-api-key``, ``Authorization: Bearer``,
the admin token header and query, ``$MOCKSERVER_UPSTREAM_API_KEY``, a password in the
``--upstream`` URL, malformed header lines), on good requests, bad ones and faulted ones.
Then every response, the journal export, every log record (all loggers, DEBUG and up, with
tracebacks) and every file under the cassette directories is searched for them.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import CHOICE, STREAM_SAMPLE, FakeUpstream, running

from mockserver.config import UPSTREAM_KEY_ENV, Settings
from mockserver.profile import load_profile
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

KEY = "sk-canary-xapikey-5e1f0a9c77"
BEARER = "sk-canary-bearer-77d2b4e1aa"
ADMIN = "adm-canary-token-0c9e3b5512"
ENV_KEY = "sk-canary-envkey-41aa90f233"
WRONG = "sk-canary-wrongkey-93be6610"
WRONG_ADMIN = "adm-canary-wrong-7781c2d0"
UPSTREAM_PASS = "canary-upstream-pass-6d1c"
CANARIES = (KEY, BEARER, ADMIN, ENV_KEY, WRONG, WRONG_ADMIN, UPSTREAM_PASS)
MODEL = "deepseek-v3-anthropic"
BODY: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "where do my keys go?"}],
}
VERSION = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


@dataclass
class Seen:
    """Everything the server said (responses) while being exercised."""

    responses: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, label: str, status: int, headers: dict[str, str], body: bytes) -> None:
        text = json.dumps(headers) + "\n" + body.decode("utf-8", "replace")
        self.responses.append((label, status, text))


def request(
    seen: Seen,
    base_url: str,
    label: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> int:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, data, headers or {})
        try:
            resp = conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, ConnectionError):
            seen.add(label, 0, {}, b"")  # a fault that drops the connection
            return 0
        seen.add(label, resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
        return resp.status
    finally:
        conn.close()


def malformed_header_lines(base_url: str) -> None:
    """Header lines aiohttp cannot parse, carrying the canaries (its error log quotes them)."""
    host, port = base_url.removeprefix("http://").split(":")
    for line in (
        f"x-api-key: {KEY}\x01",
        f"authorization Bearer {BEARER}",
        f"x-mockserver-admin-token: {ADMIN}\x7f",
    ):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST /v1/messages HTTP/1.1\r\nHost: x\r\n{line}\r\ncontent-length: 2\r\n\r\n{{}}".encode(
                    "latin-1"
                )
            )
            while sock.recv(65536):  # aiohttp's own 400 (it quotes the line back to its
                pass  # sender only; that reply is not checked here, the log is)


def exercise(seen: Seen, url: str, mode: str) -> None:
    """Every route, good and bad, with the canaries in every place a client puts them."""
    key = {"x-api-key": KEY, **VERSION}
    bearer = {"authorization": f"Bearer {BEARER}", **VERSION}
    admin = {p.H_ADMIN_TOKEN: ADMIN}
    go = lambda label, *a, **kw: request(seen, url, f"{mode} {label}", *a, **kw)  # noqa: E731
    stream = {**BODY, "stream": True}
    sample = {CHOICE: STREAM_SAMPLE}  # (used by the fake upstream; ignored elsewhere)

    go("json x-api-key", "POST", p.PATH_MESSAGES, BODY, key)
    go("stream bearer", "POST", p.PATH_MESSAGES, stream, {**bearer, **sample})
    go("both", "POST", p.PATH_MESSAGES, {**BODY, "max_tokens": 33}, {**key, **bearer})
    go("admin token on /v1", "POST", p.PATH_MESSAGES, {**BODY, "max_tokens": 34}, {**key, **admin})
    go(
        "count_tokens",
        "POST",
        p.PATH_COUNT_TOKENS,
        {"model": MODEL, "messages": BODY["messages"]},
        key,
    )
    go("models", "GET", p.PATH_MODELS, None, key)
    go("model", "GET", f"{p.PATH_MODELS}/{MODEL}", None, bearer)
    go("no model", "GET", f"{p.PATH_MODELS}/nope", None, key)
    go("unknown route", "POST", "/v1/chat/completions", BODY, bearer)
    go("bad json", "POST", p.PATH_MESSAGES, b"{not json", key)
    go("no version", "POST", p.PATH_MESSAGES, BODY, {"x-api-key": KEY})
    go(
        "wrong key",
        "POST",
        p.PATH_MESSAGES,
        {**BODY, "max_tokens": 35},
        {**VERSION, "x-api-key": WRONG},
    )
    go(
        "wrong bearer",
        "POST",
        p.PATH_MESSAGES,
        {**BODY, "max_tokens": 36},
        {**VERSION, "authorization": f"Bearer {WRONG}"},
    )
    go("no key", "POST", p.PATH_MESSAGES, {**BODY, "max_tokens": 37}, VERSION)
    go("invalid body", "POST", p.PATH_MESSAGES, {"model": MODEL, "messages": "x"}, bearer)
    for fault in ("rate_limit", "api_error", "error_event;at=2", "disconnect;at=2", "bogus"):
        go(f"fault {fault}", "POST", p.PATH_MESSAGES, stream, {**bearer, p.H_FAULT: fault})

    a = p.ADMIN_PREFIX
    go("admin health", "GET", f"{a}/health", None, admin)
    rule = {"fault": "overloaded;times=1", "match": {"path": p.PATH_MESSAGES}}
    go("admin add fault", "POST", f"{a}/faults", rule, admin)
    go("faulted by rule", "POST", p.PATH_MESSAGES, {**BODY, "max_tokens": 38}, key)
    go("admin list faults", "GET", f"{a}/faults?token={ADMIN}", None)
    go("admin clear faults", "DELETE", f"{a}/faults", None, admin)
    go("admin bad fault", "POST", f"{a}/faults", {"fault": "nonsense"}, admin)
    go("admin cache", "DELETE", f"{a}/cache", None, admin)
    go("admin usage", "GET", f"{a}/usage", None, admin)
    go("admin usage reset", "DELETE", f"{a}/usage?token={ADMIN}", None)
    go("admin reload", "POST", f"{a}/reload", None, admin)
    go("admin unknown", "GET", f"{a}/nope", None, admin)
    go("admin wrong token", "GET", f"{a}/journal", None, {p.H_ADMIN_TOKEN: WRONG_ADMIN})
    go("admin wrong query", "GET", f"{a}/journal?token={WRONG_ADMIN}", None)
    go("admin bearer", "GET", f"{a}/journal", None, {"authorization": f"Bearer {ADMIN}"})
    malformed_header_lines(url)


# --- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake(traffic_dir: Path) -> Iterator[FakeUpstream]:
    with running(traffic_dir) as upstream:
        yield upstream


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def serve(settings: Settings, seen: Seen, mode_label: str) -> str:
    """Run one server, exercise it, and return its journal export (fetched with the token)."""
    server = ServerThread(settings).start()
    try:
        exercise(seen, server.base_url, mode_label)
        host, port = server.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", f"{p.ADMIN_PREFIX}/journal", headers={p.H_ADMIN_TOKEN: ADMIN})
        resp = conn.getresponse()
        journal = resp.read().decode()
        conn.close()
        assert resp.status == 200
        assert len(json.loads(journal)["exchanges"]) >= 20, mode_label
        return journal
    finally:
        server.stop()


def test_no_credential_is_written_anywhere(
    fake: FakeUpstream,
    logs: Capture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, ENV_KEY)  # used upstream when a client sends no key
    monkeypatch.setenv("MOCKSERVER_CACHE_DIR", str(tmp_path / "parse-cache"))
    recorded = tmp_path / "recorded"
    host_port = fake.url.removeprefix("http://")
    base = Settings(port=0, admin_token=ADMIN, api_keys=(KEY, BEARER))
    deepseek = replace(load_profile(), dialect="deepseek")
    runs: list[tuple[str, Settings]] = [
        ("record", replace(base, mode="record", cassettes=recorded, upstream=fake.url)),
        ("synth", replace(base, mode="synth")),
        ("synth-deepseek", replace(base, mode="synth", profile=deepseek)),
        ("auto", replace(base, mode="auto")),
        ("replay", replace(base, mode="replay", cassettes=recorded)),
        (
            "record-new",
            replace(base, mode="record-new", cassettes=tmp_path / "new", upstream=fake.url),
        ),
        (
            "record-userinfo",
            replace(
                base,
                mode="record",
                cassettes=tmp_path / "userinfo",
                upstream=f"http://mock:{UPSTREAM_PASS}@{host_port}",
            ),
        ),
    ]
    seen = Seen()
    journals: dict[str, str] = {}
    for label, settings in runs:
        if label == "record-new":  # starts from what record wrote: hits replay, misses record
            shutil.copytree(recorded, tmp_path / "new")
        journals[label] = serve(settings, seen, label)

    # the canaries really went where they should: upstream got the client's own credentials
    sent = [r.headers for r in fake.requests]
    assert any(h.get("x-api-key") == KEY for h in sent)
    assert any(h.get("authorization") == f"Bearer {BEARER}" for h in sent)
    assert any(h.get("x-api-key") == ENV_KEY for h in sent)
    assert any(status == 401 for _, status, _ in seen.responses)  # wrong keys were refused
    assert (recorded / "recorded.yaml").is_file() and (tmp_path / "new" / "recorded.yaml").is_file()
    statuses = {label: status for label, status, _ in seen.responses}
    assert statuses["replay json x-api-key"] == 200, "replay did not hit what record wrote"

    problems: list[str] = []
    for label, status, text in seen.responses:
        problems += [f"response to {label} ({status}): {c}" for c in leaks(text)]
    for label, journal in journals.items():
        problems += [f"journal export of {label}: {c}" for c in leaks(journal)]
    log_text = "\n".join(logs.lines)
    assert "Error handling request" in log_text, "the malformed header lines were not logged?"
    problems += [f"server log: {c}" for c in leaks(log_text)]
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) >= 3
    for path in files:
        problems += [f"file {path}: {c}" for c in leaks(path.read_text(errors="replace"))]
    assert not problems, "\n".join(problems)


REDIS_PASS = "canary-redis-pass-2b7e91"


def test_the_shared_state_password_is_never_written(
    logs: Capture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--state redis://:PASSWORD@...``: not in the startup line, the health answer, the
    errors of a Redis that went away, the logs or anything a client gets."""
    from redis_server import RedisServer

    from mockserver.server.running import startup_text

    redis = RedisServer(tmp_path / "redis", password=REDIS_PASS)
    (tmp_path / "redis").mkdir()
    redis.start()
    settings = Settings(port=0, admin_token=ADMIN, api_keys=(KEY, BEARER), mode="auto")
    shared = replace(settings, state=redis.url, state_prefix="canary:")
    seen = Seen()
    texts = [startup_text(shared, "http://127.0.0.1:1")]
    server = ServerThread(shared).start()
    try:
        exercise(seen, server.base_url, "shared")
        redis.stop()  # gone: degraded health, 503 admin answers, warnings in the log
        exercise(seen, server.base_url, "shared, redis gone")
        request(
            seen,
            server.base_url,
            "health down",
            "GET",
            f"{p.ADMIN_PREFIX}/health",
            None,
            {p.H_ADMIN_TOKEN: ADMIN},
        )
    finally:
        server.stop()
        redis.stop()
    degraded = [t for label, s, t in seen.responses if label == "health down"]
    assert degraded and '"degraded"' in degraded[0] and "redis://***@127.0.0.1" in degraded[0]
    assert any(s == 503 for label, s, _ in seen.responses if "redis gone" in label)
    bad_url = subprocess.run(  # a Redis that does not answer at startup: exit 2, masked
        [
            sys.executable,
            "-m",
            "mockserver",
            "serve",
            "--port",
            "0",
            "--state",
            f"redis://user:{REDIS_PASS}@127.0.0.1:1/0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_url.returncode == 2 and "redis://***@127.0.0.1:1/0" in bad_url.stderr
    texts += [bad_url.stdout, bad_url.stderr, capsys.readouterr().out]
    texts += [t for _, _, t in seen.responses] + logs.lines
    assert "redis://***@127.0.0.1" in texts[0]
    leaked = [t[:300] for t in texts if REDIS_PASS in t]
    assert not leaked, leaked
