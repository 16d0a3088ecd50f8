"""``kill -9`` at random moments of a record run, 20 times over: no cassette is ever torn, and
no exchange that had completed is lost.

Each run starts ``mockserver serve --mode record`` against the fake upstream, lets four clients
record streams, JSON replies and errors into three cassettes, and SIGKILLs the server at a
random moment (in a third of the runs every save also pauses halfway through writing its temp
file, so that kills land inside saves too).

"Completed" is what the recorder guarantees: it saves an exchange *before* the reply ends (a
JSON reply is sent after the save; a stream's final chunk is written after it), so a client
that has read its whole reply knows the exchange is on disk.  The clients' completed replies
are snapshotted under a lock right before the kill; every one must be in a cassette afterwards.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import CHOICE, DELAY, STREAM_SAMPLE, FakeUpstream, call, running
from server_process import ServerProcess, start

from mockserver.cassettes import cassette as cas
from mockserver.cassettes.library import H_CASSETTE
from mockserver.cassettes.store import PAUSE_ENV

RUNS = 20
CLIENTS = 4
CASSETTES = ("alpha", "beta", "gamma")
#: (x-fake-upstream choice, stream?) — what the clients ask the upstream for
SCENARIOS: tuple[tuple[str, bool], ...] = (
    ("", False),  # a small JSON message
    ("", True),  # the same as a stream
    (STREAM_SAMPLE, True),  # a real recorded stream
    ("032-pyd-haiku45-parallel-tool-use-x4.json", False),
    ("046-sdkpy-429-rate-limit.error.json", False),
    ("slow", True),  # a real stream, paced: often in flight at the kill
    ("disconnect", True),  # the upstream hangs up mid-stream
)


@pytest.fixture(scope="module")
def fake(traffic_dir: Path) -> Iterator[FakeUpstream]:
    with running(traffic_dir) as upstream:
        yield upstream


@dataclass
class Run:
    server: ServerProcess
    rng: random.Random
    tag: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    completed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _client(run: Run, k: int) -> None:
    rng = random.Random(f"{run.tag}-{k}")
    n = 0
    while not run.stop.is_set():
        prompt = f"{run.tag} client {k} request {n}"
        n += 1
        choice, stream = rng.choice(SCENARIOS)
        body: dict[str, Any] = {
            "model": "deepseek-v3-anthropic",
            "max_tokens": 32,
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
        headers = {H_CASSETTE: rng.choice(CASSETTES), DELAY: "0.01"}
        if choice:
            headers[CHOICE] = choice
        with run.lock:
            run.sent.append(prompt)
        try:
            status, _, _, cut = call(run.server.url, body, headers, timeout=10)
        except OSError:
            return  # the server is gone
        if status and not cut:  # the whole reply arrived: the recorder had saved it
            with run.lock:
                run.completed.append(prompt)


def _recorded(directory: Path) -> tuple[list[str], list[Path]]:
    prompts: list[str] = []
    files = cas.discover(directory)
    for path in files:
        for inter in cas.load(path).interactions:  # raises on a torn or invalid cassette
            prompts.append(inter.request.body["messages"][0]["content"])
    return prompts, files


def _kill_run(
    i: int, server: ServerProcess, rng: random.Random, directory: Path, totals: dict[str, int]
) -> None:
    """Clients recording; SIGKILL at a random moment; then check what is on disk."""
    run = Run(server, rng, tag=f"run{i}")
    threads = [threading.Thread(target=_client, args=(run, k)) for k in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.6))
        with run.lock:  # everything completed before this point must survive the kill
            done = list(run.completed)
            server.kill()
    finally:
        run.stop.set()
        server.kill()
        for t in threads:
            t.join(15)
    prompts, files = _recorded(directory)
    lost = sorted(set(done) - set(prompts))
    assert not lost, f"run {i}: completed before the kill, not in any cassette: {lost}"
    assert set(prompts) <= set(run.sent), f"run {i}: a cassette holds a request never sent"
    assert len(prompts) == len(set(prompts)), f"run {i}: an exchange was recorded twice"
    assert files or not done, f"run {i}: replies completed but no cassette exists"
    temp = list(directory.glob(".*.tmp")) if directory.exists() else []
    totals["killed_mid_save"] += bool(temp)
    totals["completed"] += len(done)
    totals["recorded"] += len(prompts)
    totals["saved_not_yet_replied"] += len(set(prompts) - set(done))
    totals["runs"] += 1


def test_kill_9_during_recording_never_tears_or_loses_a_cassette(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    rng = random.Random(20240917)
    totals = dict.fromkeys(
        ("runs", "completed", "recorded", "saved_not_yet_replied", "killed_mid_save"), 0
    )
    dirs = [tmp_path / f"run{i:02d}" for i in range(RUNS)]

    def launch(i: int) -> ServerProcess:
        pause = "0.02" if i % 3 == 0 else ""  # every save pauses halfway through its temp file
        return start(
            ["--mode", "record", "--upstream", fake.url, "--cassettes", str(dirs[i])],
            tmp_path / f"run{i:02d}.log",
            env={PAUSE_ENV: pause},
        )

    t0 = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=1)  # the next server starts while this run runs
    upcoming: Future[ServerProcess] = pool.submit(launch, 0)
    try:
        for i in range(RUNS):
            server = upcoming.result()
            if i + 1 < RUNS:
                upcoming = pool.submit(launch, i + 1)
            _kill_run(i, server, rng, dirs[i], totals)
    finally:
        pool.shutdown()
        if upcoming.exception() is None:
            upcoming.result().kill()  # (already killed unless a run failed before it)
    took = time.monotonic() - t0

    # every cassette of every run passes the linter, as a user would run it
    existing = [d for d in dirs if d.exists()]
    lint = subprocess.run(
        [sys.executable, "-m", "mockserver", "cassettes", "lint", "-q", *map(str, existing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    n_files = sum(len(cas.discover(d)) for d in existing)
    assert f"{n_files} cassette(s), 0 with problems" in lint.stderr, lint.stderr
    print(
        f"\n{RUNS} kill -9 runs in {took:.1f} s: {json.dumps(totals)}; "
        f"{n_files} cassettes lint clean"
    )
    assert totals["completed"] >= RUNS, "too few exchanges completed to show anything"
