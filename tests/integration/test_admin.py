"""The admin API under /_mockserver/: every route and its shape, token enforcement, filters."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mockserver import create_app
from mockserver.config import Settings
from mockserver.server.journal import key_label
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p
from mockserver.wire.errors import ConfigError

MODEL = "deepseek-v3-anthropic"
API_HEADERS = {p.H_API_KEY: "sk-admin-test", p.H_VERSION: "2023-06-01"}


class Http:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def __call__(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        out_headers = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status, out_headers, parsed

    def admin(self, method: str, name: str, body: Any = None, **headers: str) -> Any:
        status, _, data = self(method, f"{p.ADMIN_PREFIX}/{name}", body, headers)
        assert status == 200, data
        return data

    def message(self, text: str, **extra: Any) -> tuple[int, dict[str, str], Any]:
        body = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
        fault = extra.pop("fault", None)
        headers = {**API_HEADERS, **({p.H_FAULT: fault} if fault else {})}
        return self("POST", p.PATH_MESSAGES, {**body, **extra}, headers)


@pytest.fixture(scope="module")
def thread() -> Iterator[ServerThread]:
    t = ServerThread(Settings(port=0, mode="synth")).start()
    yield t
    t.stop()


@pytest.fixture
def h(thread: ServerThread) -> Http:
    client = Http(thread.base_url)
    client.admin("DELETE", "journal")
    client.admin("DELETE", "faults")
    client.admin("DELETE", "usage")
    return client


def assert_error(status: int, data: Any, want_status: int, etype: str, *words: str) -> None:
    assert status == want_status, data
    assert data["type"] == "error" and data["error"]["type"] == etype
    assert data["request_id"].startswith("req_")
    for word in words:
        assert word in data["error"]["message"]


# --- health -----------------------------------------------------------------------------


def test_health(h: Http) -> None:
    before = h.admin("GET", "health")
    assert set(before) == {"status", "mode", "profile", "uptime", "requests", "state"}
    assert before["status"] == "ok" and before["mode"] == "synth"
    assert before["state"] == {"kind": "memory", "ok": True}  # one process: nothing shared
    assert before["profile"] == "deepseek-v3-anthropic"
    assert isinstance(before["uptime"], float) and before["uptime"] >= 0
    h.message("one")
    h("GET", "/nowhere")
    after = h.admin("GET", "health")
    assert after["requests"] == before["requests"] + 2  # admin calls are not counted
    assert after["uptime"] >= before["uptime"]


# --- journal ------------------------------------------------------------------------------


def test_journal_shape_and_order(h: Http) -> None:
    h.message("first")
    h.message("second", fault="overloaded")
    h("POST", p.PATH_COUNT_TOKENS, {"model": MODEL, "messages": []}, API_HEADERS)
    exchanges = h.admin("GET", "journal")["exchanges"]
    assert [ex["id"] for ex in exchanges] == sorted(ex["id"] for ex in exchanges)
    assert [ex["path"] for ex in exchanges] == [p.PATH_MESSAGES] * 2 + [p.PATH_COUNT_TOKENS]
    first, second, third = exchanges
    for key in ("id", "time", "method", "path", "headers", "body", "status", "source", "fault"):
        assert key in first
    assert "violations" in first and "near_misses" in first
    assert first["headers"][p.H_API_KEY] == "***"  # secrets masked
    assert first["body"]["messages"][0]["content"] == "first"
    assert (first["status"], first["source"], first["fault"]) == (200, "synth", None)
    assert (second["status"], second["source"], second["fault"]) == (529, "error", "overloaded")
    assert third["status"] == 400 and third["source"] == "error"
    assert first["cost_usd"] and first["usage"]["output_tokens"] > 0


def test_journal_filters(h: Http) -> None:
    h.message("a")
    h.message("b", fault="api_error")
    h.message("c", model="other-model")
    h("GET", "/v1/nothing", headers=API_HEADERS)
    everything = h.admin("GET", "journal")["exchanges"]
    ids = [ex["id"] for ex in everything]

    def ids_for(query: str) -> list[int]:
        return [ex["id"] for ex in h.admin("GET", f"journal?{query}")["exchanges"]]

    assert ids_for("path=/v1/messages") == ids[:3]
    assert ids_for("path=/v1/nothing") == ids[3:]
    assert ids_for("status=500") == [ids[1]]
    assert ids_for("status=404") == [ids[2], ids[3]]  # unknown model, unknown path
    assert ids_for("source=synth") == [ids[0]]
    assert ids_for(f"model={MODEL}") == ids[:2]
    assert ids_for(f"since_id={ids[1]}") == ids[2:]
    assert ids_for("limit=2") == ids[:2]
    assert ids_for(f"since_id={ids[0]}&limit=1&path=/v1/messages") == [ids[1]]
    status, _, data = h("GET", f"{p.ADMIN_PREFIX}/journal?status=abc")
    assert_error(status, data, 400, p.INVALID_REQUEST, "status")
    status, _, data = h("GET", f"{p.ADMIN_PREFIX}/journal?limit=0")
    assert_error(status, data, 400, p.INVALID_REQUEST, "limit")


def test_journal_delete(h: Http) -> None:
    h.message("x")
    h.message("y")
    assert h.admin("DELETE", "journal") == {"deleted": 2}
    assert h.admin("GET", "journal") == {"exchanges": []}
    h.admin("GET", "health")  # admin calls are not journaled
    assert h.admin("GET", "journal") == {"exchanges": []}


# --- faults -------------------------------------------------------------------------------


def test_faults_post_get_delete(h: Http) -> None:
    one = h.admin("POST", "faults", {"fault": "overloaded;times=1", "match": {"model": MODEL}})
    rule = one["rules"][0]
    assert rule["fault"] == "overloaded;times=1" and rule["match"] == {"model": MODEL}
    assert rule["origin"] == "api" and rule["hits"] == 0 and rule["remaining"] is None
    many = h.admin("POST", "faults", [{"fault": "keepalive", "times": 3}, "stall;ms=1"])
    assert [r["fault"] for r in many["rules"]] == ["keepalive;n=1", "stall;ms=1"]
    listed = h.admin("GET", "faults")["rules"]
    assert [r["id"] for r in listed] == [rule["id"], *(r["id"] for r in many["rules"])]
    assert h.message("faulted")[0] == 529
    assert h.admin("GET", "faults")["rules"][0]["hits"] == 1
    assert h.admin("DELETE", "faults") == {"deleted": 3}
    assert h.admin("GET", "faults") == {"rules": []}
    assert h.message("faulted")[0] == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"fault": "overloaded;at=2"}, ["unknown parameter 'at' for overloaded"]),
        ({"fault": "overloaded", "match": {"body": {"x": 1}}}, ["must start with '$'"]),
        ([{"fault": "api_error"}, {"fault": "nope"}], ["unknown fault kind 'nope'"]),
        ({"match": {"path": "/v1/messages"}}, ["'fault' must be a spec string"]),
        (None, ["Send a fault rule"]),
    ],
)
def test_bad_fault_rules_are_400(h: Http, body: Any, words: list[str]) -> None:
    status, _, data = h("POST", f"{p.ADMIN_PREFIX}/faults", body)
    assert_error(status, data, 400, p.INVALID_REQUEST, *words)
    assert h.admin("GET", "faults") == {"rules": []}  # nothing was added


def test_bad_json_to_faults(h: Http) -> None:
    conn = http.client.HTTPConnection(h.host, h.port, timeout=5)
    conn.request(
        "POST",
        f"{p.ADMIN_PREFIX}/faults",
        body=b"{nope",
        headers={"content-type": "application/json"},
    )
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    assert_error(resp.status, data, 400, p.INVALID_REQUEST, "not valid JSON")


def test_bad_fault_header_is_400(h: Http) -> None:
    status, _, data = h.message("bad", fault="overloaded;times=zero")
    assert_error(status, data, 400, p.INVALID_REQUEST, p.H_FAULT, "times=zero is not an integer")


# --- cache, usage, reload ----------------------------------------------------------------


def test_cache_delete(h: Http) -> None:
    first = h.admin("DELETE", "cache")
    assert set(first) == {"deleted"} and isinstance(first["deleted"], int)
    assert h.admin("DELETE", "cache") == {"deleted": 0}  # nothing left to forget


def test_usage_and_cost_header(h: Http) -> None:
    costs: list[Decimal] = []
    usages: list[dict[str, int]] = []
    for text, extra in (("u1", {}), ("u2 longer prompt here", {"stream": True})):
        status, headers, _ = h.message(text, **extra)
        assert status == 200
        costs.append(Decimal(headers[p.H_COST]))
    for ex in h.admin("GET", "journal")["exchanges"]:
        usages.append(ex["usage"])
        u = ex["usage"]
        expected = (
            u["input_tokens"] * Decimal("0.14")
            + u["output_tokens"] * Decimal("0.28")
            + u["cache_read_input_tokens"] * Decimal("0.003")
            + u["cache_creation_input_tokens"] * Decimal("0.14")
        ) / 1_000_000  # the default profile's prices per 1M tokens
        assert Decimal(ex["cost_usd"]) == expected
    assert sum(costs) > 0 and costs == [Decimal(ex) for ex in _journal_costs(h)]
    # errors cost nothing; count_tokens is free and not counted
    status, headers, _ = h.message("err", fault="overloaded")
    assert status == 529 and headers[p.H_COST] == "0"
    h(
        "POST",
        p.PATH_COUNT_TOKENS,
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        API_HEADERS,
    )
    usage = h.admin("GET", "usage")
    keys = {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }
    assert set(usage) == {"requests", "cost_usd", "by_model", "by_api_key"} | keys
    assert usage["requests"] == 2
    assert usage["input_tokens"] == sum(u["input_tokens"] for u in usages)
    assert usage["output_tokens"] == sum(u["output_tokens"] for u in usages)
    assert Decimal(usage["cost_usd"]) == sum(costs)
    assert list(usage["by_model"]) == [MODEL] and usage["by_model"][MODEL]["requests"] == 2
    label = key_label(API_HEADERS[p.H_API_KEY])
    assert list(usage["by_api_key"]) == [label]  # a label, never the key
    cleared = h.admin("DELETE", "usage")
    assert cleared["requests"] == 2
    assert h.admin("GET", "usage")["requests"] == 0


def _journal_costs(h: Http) -> list[str]:
    return [ex["cost_usd"] for ex in h.admin("GET", "journal?status=200")["exchanges"]]


def test_reload_without_config(h: Http) -> None:
    assert h.admin("POST", "reload") == {"reloaded": {}}


def test_reload_fault_config(tmp_path: Path) -> None:
    config = tmp_path / "faults.yaml"
    config.write_text("- fault: overloaded\n  match: {model: nobody}\n")
    t = ServerThread(Settings(port=0, mode="synth", fault_config=config)).start()
    try:
        h = Http(t.base_url)
        assert [r["fault"] for r in h.admin("GET", "faults")["rules"]] == ["overloaded"]
        h.admin("POST", "faults", "keepalive")
        config.write_text("- fault: api_error\n- fault: stall;ms=1\n")
        assert h.admin("POST", "reload") == {"reloaded": {"fault_rules": 2}}
        rules = h.admin("GET", "faults")["rules"]
        assert [(r["fault"], r["origin"]) for r in rules] == [
            ("keepalive;n=1", "api"),
            ("api_error", "config"),
            ("stall;ms=1", "config"),
        ]
        config.write_text("- fault: broken\n")
        status, _, data = h("POST", f"{p.ADMIN_PREFIX}/reload")
        assert_error(status, data, 400, p.INVALID_REQUEST, "previous configuration kept", "broken")
        assert len(h.admin("GET", "faults")["rules"]) == 3
    finally:
        t.stop()


def test_bad_fault_config_fails_at_startup(tmp_path: Path) -> None:
    config = tmp_path / "faults.yaml"
    config.write_text("- fault: overloaded;times=-1\n")
    with pytest.raises(ConfigError, match=r"rule 0: .*times=-1"):
        create_app(Settings(port=0, fault_config=config))
    with pytest.raises(ConfigError, match="cannot read"):
        create_app(Settings(port=0, fault_config=tmp_path / "absent.yaml"))


# --- routing and the admin token ----------------------------------------------------------


def test_unknown_admin_route_and_method(h: Http) -> None:
    status, _, data = h("GET", f"{p.ADMIN_PREFIX}/nope")
    assert_error(status, data, 404, p.NOT_FOUND, "/_mockserver/nope")
    status, headers, data = h("PUT", f"{p.ADMIN_PREFIX}/faults")
    assert status == 405 and data["type"] == "error"
    assert headers["allow"] == "DELETE, GET, POST"
    assert h.admin("GET", "journal") == {"exchanges": []}  # none of it was journaled


@pytest.mark.parametrize("path", ["/ui", "/ui/app.js", "/ui/api/exchanges", "/journal/1"])
def test_inspector_paths_answer_reads_only(h: Http, path: str) -> None:
    """The inspector's paths have no routes of their own (the admin API's one route finds
    them): a write there is a 405 naming GET and HEAD, a HEAD is answered like a GET."""
    status, headers, data = h("POST", f"{p.ADMIN_PREFIX}{path}")
    assert status == 405 and data["type"] == "error", data
    assert headers["allow"] == "GET, HEAD"
    assert "POST not allowed here" in data["error"]["message"]
    if path != "/journal/1":  # (the journal is empty here: a 404 either way)
        status, headers, _ = h("HEAD", f"{p.ADMIN_PREFIX}{path}")
        assert status == 200 and headers["content-type"].split(";")[0] in (
            "text/html",
            "text/javascript",
            "application/json",
        )


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerThread]:
    t = ServerThread(Settings(port=0, mode="synth", admin_token="s3cret")).start()
    yield t
    t.stop()


@pytest.mark.parametrize(
    "name", ["health", "journal", "faults", "usage", "nope", "journal?token=wrong"]
)
def test_admin_token_required(guarded: ServerThread, name: str) -> None:
    h = Http(guarded.base_url)
    for headers in ({}, {p.H_ADMIN_TOKEN: "wrong"}, {"authorization": "Bearer s3cret"}):
        status, _, data = h("GET", f"{p.ADMIN_PREFIX}/{name}", headers=headers)
        assert_error(status, data, 401, p.AUTHENTICATION, p.H_ADMIN_TOKEN)


def test_admin_token_accepted(guarded: ServerThread) -> None:
    h = Http(guarded.base_url)
    assert h.admin("GET", "health", **{p.H_ADMIN_TOKEN: "s3cret"})["status"] == "ok"
    status, _, data = h("GET", f"{p.ADMIN_PREFIX}/usage?token=s3cret")
    assert status == 200 and "cost_usd" in data
    status, _, data = h("DELETE", f"{p.ADMIN_PREFIX}/cache?token=s3cret")
    assert status == 200 and isinstance(data["deleted"], int)
    # the API itself does not need the admin token
    assert h.message("no admin token needed")[0] == 200
