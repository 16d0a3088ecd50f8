"""One state for every worker and replica: ``mockserver serve --workers 2`` (an embedded SQLite
store) and two separate ``mockserver serve --state redis://`` processes on one real Redis
behave like one server.  Each test runs on both topologies.

With ``--workers`` the kernel picks the process of each new connection; every request here
opens its own, and the request id (whose middle part is the process's own) shows that both
processes answered.  The replicas are addressed one by one.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from server_process import ServerProcess, start

from mockserver.wire import protocol as p

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "deepseek-v3-anthropic"
HEADERS = {p.H_API_KEY: "sk-shared", p.H_VERSION: "2023-06-01", p.H_CONTENT_TYPE: p.CT_JSON}
ADMIN = {p.H_CONTENT_TYPE: p.CT_JSON}
ASK = "Count for me."
WORDS = ("first", "second", "third", "fourth")
#: a fault rule and a scripted-reply rule from files (``--faults``, ``--rules``)
FILE_FAULT = {"fault": "api_error", "times": 2, "match": {"body": {"$.metadata.user_id": "cfg"}}}
FILE_RULE = {
    "name": "from-file",
    "when": {"last_user": {"equals": "file rule?"}},
    "replies": [{"content": [{"text": "file one"}]}, {"content": [{"text": "file two"}]}],
    "times": 2,
}


def body(text: str = ASK, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def sequence_cassette(folder: Path) -> Path:
    """A cassette whose one request was answered four ways, in order."""
    shipped = yaml.safe_load((ROOT / "cassettes" / "text.yaml").read_text())
    base = shipped["interactions"][0]
    interactions = []
    for i, word in enumerate(WORDS):
        inter = copy.deepcopy(base)
        inter["name"] = word
        inter["request"]["body"] = body()
        inter["response"]["body"]["id"] = f"msg_seq{i}"
        inter["response"]["body"]["content"] = [{"type": "text", "text": word}]
        interactions.append(inter)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sequence.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "name": "sequence", "interactions": interactions})
    )
    return path


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def process(self) -> str:
        """The part of the request id that names the process that answered."""
        return self.headers[p.H_REQUEST_ID][:-8]


@dataclass
class Group:
    """Mock processes sharing one state: ``urls`` has one entry per addressable process
    (``--workers``: one URL, the kernel picks the process)."""

    kind: str
    procs: list[ServerProcess]
    urls: list[str]
    cassettes: Path
    seen: set[str] = field(default_factory=set)

    def call(
        self,
        i: int,
        method: str,
        path: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        host, port = self.urls[i % len(self.urls)].removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            payload = None if data is None else json.dumps(data)
            conn.request(method, path, payload, HEADERS if headers is None else headers)
            resp = conn.getresponse()
            answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()
        rid = answer.headers.get(p.H_REQUEST_ID, "")
        if path == p.PATH_MESSAGES and rid.startswith("req_mock"):  # (not a recorded one)
            self.seen.add(answer.process)
        return answer

    def ask(self, i: int, data: dict[str, Any], **headers: str) -> Answer:
        return self.call(i, "POST", p.PATH_MESSAGES, data, {**HEADERS, **headers})

    def admin(self, i: int, method: str, name: str, data: Any = None) -> Any:
        answer = self.call(i, method, f"{p.ADMIN_PREFIX}/{name}", data, ADMIN)
        assert answer.status == 200, answer.data
        return answer.json()

    def reset(self) -> None:
        for name in ("journal", "usage", "faults", "rules", "cache"):
            self.admin(0, "DELETE", name)
        self.admin(0, "POST", "reload")  # (sequences start over)
        self.seen.clear()

    def spread(self, n: int) -> int:
        """How many of the processes answered so far (``--workers``: at least 2 is the
        point; it takes a few connections for the kernel to use both)."""
        return len(self.seen) if n else 0


def _stop(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    if server.proc.stdout is not None:
        server.proc.stdout.close()


def _ready(group: Group, processes: int) -> None:
    """Wait until every process has joined (``health`` counts them)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = group.admin(0, "GET", "health")
        if health["state"].get("processes") == processes:
            return
        time.sleep(0.1)
    raise AssertionError(f"not every process joined: {health}")


@pytest.fixture(scope="module", params=["workers", "redis"])
def group(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Group]:
    work = tmp_path_factory.mktemp(f"shared-{request.param}")
    cassettes = work / "cassettes"
    sequence_cassette(cassettes)
    (work / "faults.yaml").write_text(yaml.safe_dump([FILE_FAULT]))
    (work / "rules.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [FILE_RULE]}))
    common = ["--mode", "auto", "--cassettes", str(cassettes)]
    common += ["--faults", str(work / "faults.yaml"), "--rules", str(work / "rules.yaml")]
    env = {"MOCKSERVER_CACHE_DIR": "off"}
    procs: list[ServerProcess] = []
    try:
        if request.param == "workers":
            procs.append(start([*common, "--workers", "2"], work / "workers.log", env))
            grp = Group("workers", procs, [procs[0].url], cassettes)
        else:
            redis = request.getfixturevalue("redis_server")
            state = ["--state", redis.url, "--state-prefix", f"shared{os.getpid()}:"]
            for k in range(2):
                procs.append(start([*common, *state], work / f"replica{k}.log", env))
            grp = Group("redis", procs, [s.url for s in procs], cassettes)
        _ready(grp, 2)
        yield grp
    finally:
        for server in procs:
            _stop(server)


@pytest.fixture
def g(group: Group) -> Group:
    group.reset()
    return group


def test_a_replayed_sequence_is_served_once_in_recorded_order_across_processes(g: Group) -> None:
    said = [g.ask(i, body()).json()["content"][0]["text"] for i in range(8)]
    assert said == [*WORDS, "fourth", "fourth", "fourth", "fourth"]  # then the last repeats
    for i in range(12):  # (more connections, until the kernel has used both workers)
        g.ask(i, body("other", max_tokens=8))
        if len(g.seen) > 1:
            break
    assert len(g.seen) == 2, g.seen


def test_times_counts_across_processes(g: Group) -> None:
    statuses = [
        g.ask(i, body("busy?"), **{p.H_FAULT: "overloaded;times=2"}).status for i in range(6)
    ]
    assert statuses == [529, 529, 200, 200, 200, 200]


def test_a_fault_rule_added_on_one_process_applies_on_the_other(g: Group) -> None:
    added = g.admin(
        0, "POST", "faults", {"fault": "rate_limit", "times": 3, "match": {"path": "/v1/*"}}
    )
    assert added["rules"][0]["remaining"] == 3
    statuses = [g.ask(i + 1, body(f"q{i}")).status for i in range(5)]
    assert statuses == [429, 429, 429, 200, 200]
    (rule,) = [r for r in g.admin(1, "GET", "faults")["rules"] if r["origin"] == "api"]
    assert rule["hits"] == 3 and rule["remaining"] == 0
    assert g.admin(1, "DELETE", "faults") == {"deleted": 2}  # (and the --faults file's)
    assert g.admin(0, "GET", "faults") == {"rules": []}


def test_scripted_rules_and_their_times_are_shared(g: Group) -> None:
    g.admin(
        0,
        "POST",
        "rules",
        {
            "name": "once",
            "when": {"last_user": {"equals": "hi"}},
            "reply": {"content": [{"text": "scripted"}]},
            "times": 1,
        },
    )
    texts = [g.ask(i + 1, body("hi")).json()["content"][0]["text"] for i in range(3)]
    assert texts[0] == "scripted" and all(t != "scripted" for t in texts[1:])
    listed = {r["name"]: r["answered"] for r in g.admin(1, "GET", "rules")["rules"]}
    assert listed == {"from-file": 0, "once": 1}
    taken = g.call(
        1, "POST", f"{p.ADMIN_PREFIX}/rules", {"name": "once", "reply": {"json": 1}}, ADMIN
    )
    assert taken.status == 400 and b"exists" in taken.data


def test_turn_two_reads_turn_ones_prefix_from_the_cache_whichever_process_served_it(
    g: Group,
) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(400))
    first = g.ask(0, body(long_prompt))
    turn2 = body(long_prompt)
    turn2["messages"] += [
        {"role": "assistant", "content": first.json()["content"]},
        {"role": "user", "content": "and now?"},
    ]
    for i in range(1, 4):
        usage = g.ask(i, turn2).json()["usage"]
        assert usage["cache_read_input_tokens"] >= 256, (i, usage)


def test_usage_and_the_journal_are_the_same_from_every_process(g: Group) -> None:
    sent = 10
    served = g.admin(0, "GET", "health")["requests"]
    for i in range(sent):
        assert g.ask(i, body(f"count {i}")).status == 200
    journals = [g.admin(i, "GET", "journal")["exchanges"] for i in range(2)]
    assert journals[0] == journals[1]
    ids = [ex["id"] for ex in journals[0]]
    assert len(ids) == sent and len(set(ids)) == sent  # every exchange once
    assert [ex["body"]["messages"][0]["content"] for ex in journals[0]] == [
        f"count {i}" for i in range(sent)
    ]  # in arrival order (ids are given as exchanges end)
    usages = [g.admin(i, "GET", "usage") for i in range(2)]
    assert usages[0] == usages[1] and usages[0]["requests"] == sent
    assert float(usages[0]["cost_usd"]) > 0
    healths = [g.admin(i, "GET", "health") for i in range(2)]
    assert [h["requests"] for h in healths] == [served + sent] * 2  # (since start)
    assert healths[0]["state"]["processes"] == 2
    assert g.admin(1, "DELETE", "journal") == {"deleted": sent}
    assert g.admin(0, "GET", "journal") == {"exchanges": []}


def test_recording_with_shared_state_is_refused_clearly(tmp_path: Path) -> None:
    for extra in (["--workers", "2"], ["--state", "redis://:secret-pw@127.0.0.1:1/0"]):
        done = subprocess.run(
            [sys.executable, "-m", "mockserver", "serve", "--mode", "record-new", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "records with one process" in done.stderr and "secret-pw" not in done.stderr


def test_rules_and_fault_rules_from_files_count_across_processes(g: Group) -> None:
    texts = [g.ask(i, body("file rule?")).json()["content"][0]["text"] for i in range(4)]
    assert texts[:2] == ["file one", "file two"]
    assert all(t.startswith("Mock reply to:") for t in texts[2:])  # spent: synth answers
    statuses = [g.ask(i, body(f"c{i}", metadata={"user_id": "cfg"})).status for i in range(4)]
    assert statuses == [500, 500, 200, 200]
    listed = g.admin(1, "GET", "faults")["rules"]
    assert [(r["origin"], r["hits"]) for r in listed] == [("config", 2)]
    assert g.admin(0, "DELETE", "rules") == {"deleted": 1}  # the file's rule, everywhere
    assert g.admin(1, "GET", "rules") == {"rules": []}
    assert g.admin(1, "POST", "reload")["reloaded"]["rules"] == 1  # and back, counts reset
    assert g.ask(0, body("file rule?")).json()["content"][0]["text"] == "file one"


def test_reload_on_one_process_reloads_every_process(g: Group) -> None:
    assert g.ask(0, body()).json()["content"][0]["text"] == "first"
    cassette = g.cassettes / "sequence.yaml"
    text = cassette.read_text()
    try:
        cassette.write_text(text.replace("text: first", "text: premier"))
        g.admin(len(g.urls) - 1, "POST", "reload")
        said = [g.ask(i, body()).json()["content"][0]["text"] for i in range(6)]
        assert said[0] == "premier" and said[1:4] == ["second", "third", "fourth"]
    finally:
        cassette.write_text(text)
