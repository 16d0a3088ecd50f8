"""What the pytest plugin's ``mockserver`` fixture costs a test.

A generated module of 400 one-request tests: 200 use the fixture (each ``POST /v1/messages``
answered from its own cassette), 200 make the same request to one server the module starts
once, and the two kinds alternate (``test_000_with``, ``test_000_without``, ...).  A small
``conftest.py`` writes each test's time (setup + call + teardown, as pytest measures them).
The cost of the fixture per test is the median over the pairs of (with - without): the two
tests of a pair run a few milliseconds apart, so a machine whose speed drifts (a shared VM)
moves both alike; the mean is reported beside it.  The module runs with the fixture at
function scope (a server per test) and at session scope (one server, reconfigured per test),
each as a first run (an empty cache: every cassette's YAML read and checked) and as a rerun
(the cassettes unchanged since the last run: read back checked), a few rounds each.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = 200
#: where the conftest writes the times (an environment variable of the pytest run)
TIMES_ENV = "MOCKSERVER_BENCH_TIMES"
CACHE_ENV = "MOCKSERVER_CACHE_DIR"

_REQUEST = """
import json, urllib.request

BODY = json.dumps({
    "model": "deepseek-v3-anthropic",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}).encode()
HEADERS = {"content-type": "application/json", "x-api-key": "k",
           "anthropic-version": "2023-06-01"}


def ask(base_url):
    req = urllib.request.Request(base_url + "/v1/messages", BODY, HEADERS)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())
"""

MODULE = (
    _REQUEST
    + """
import pytest
from pathlib import Path
from mockserver.config import Settings
from mockserver.server.running import ServerThread


@pytest.fixture(scope="module")
def base_url():
    here = Path(__file__).parent / "cassettes" / "test_fixture" / "test_000_with.yaml"
    thread = ServerThread(Settings(port=0, mode="replay", cassettes=here)).start()
    yield thread.base_url
    thread.stop()


def with_fixture():
    def test(mockserver):
        assert ask(mockserver.base_url)["content"][0]["text"]
    return test


def without_fixture():
    def test(base_url):
        assert ask(base_url)["content"][0]["text"]
    return test


for _i in range(__N__):
    globals()[f"test_{_i:03d}_with"] = with_fixture()
    globals()[f"test_{_i:03d}_without"] = without_fixture()
"""
)

CONFTEST = f"""
import json, os
TIMES = {{}}


def pytest_runtest_logreport(report):
    TIMES[report.nodeid.rsplit("::", 1)[-1]] = TIMES.get(report.nodeid.rsplit("::", 1)[-1], 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["{TIMES_ENV}"], "w") as out:
        json.dump(TIMES, out)
"""


def generate(work: Path, n: int = TESTS) -> Path:
    """The test directory: the module, its conftest, an ini per scope, a cassette per test
    (the shipped one-reply text example, its reply text made different for each)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "test_fixture.py").write_text(MODULE.replace("__N__", str(n)))
    (work / "conftest.py").write_text(CONFTEST)
    shipped = (ROOT / "cassettes" / "text.yaml").read_text()
    assert "Hello! It's nice to meet you." in shipped
    folder = work / "cassettes" / "test_fixture"
    folder.mkdir(parents=True)
    for i in range(n):
        text = shipped.replace("Hello! It's nice to meet you.", f"Hello, test {i}!")
        (folder / f"test_{i:03d}_with.yaml").write_text(text)
    for scope in ("function", "session"):
        (work / f"{scope}.ini").write_text(
            textwrap.dedent(f"""\
                [pytest]
                mockserver_scope = {scope}
                mockserver_cassettes = cassettes
                """)
        )
    return work


def _pytest(work: Path, scope: str, cache: Path) -> dict[str, float]:
    """One run of the module with the checked-cassette cache in ``cache``; each test's time
    in seconds."""
    times = work / f"times-{scope}.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-c", str(work / f"{scope}.ini"), "--rootdir", str(work), str(work / "test_fixture.py")]  # fmt: skip
    env = {**os.environ, TIMES_ENV: str(times), CACHE_ENV: str(cache)}
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0 or f"{2 * TESTS} passed" not in proc.stdout:
        raise RuntimeError(f"({scope}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    found: dict[str, float] = json.loads(times.read_text())
    return found


#: (scope, run): a first run reads every cassette's YAML (an empty cache, as a fresh CI
#: machine); a rerun finds them checked (``cassettes/file_cache``)
KINDS = (("function", "first run"), ("function", "rerun"), ("session", "first run"),
         ("session", "rerun"))  # fmt: skip


def measure(work: Path, rounds: int = 3) -> list[dict[str, Any]]:
    generate(work)
    warm = work / "cache-warm"
    _pytest(work, "function", warm)  # imports, the tokenizer's files; fills the warm cache
    diffs: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS}
    withs: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS}
    withouts: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS}
    for r in range(rounds):
        for kind in KINDS if r % 2 == 0 else KINDS[::-1]:
            scope, run = kind
            cache = warm if run == "rerun" else work / f"cache-{r}-{scope}"
            times = _pytest(work, scope, cache)
            for i in range(TESTS):
                a, b = times[f"test_{i:03d}_with"], times[f"test_{i:03d}_without"]
                diffs[kind].append(a - b)
                withs[kind].append(a)
                withouts[kind].append(b)
    rows = []
    for kind in KINDS:
        rows.append({
            "scope": kind[0],
            "run": kind[1],
            "tests": TESTS,
            "rounds": rounds,
            "per_test_ms": round(statistics.median(diffs[kind]) * 1000, 2),
            "mean_ms": round(statistics.fmean(diffs[kind]) * 1000, 2),
            "with_p50_ms": round(statistics.median(withs[kind]) * 1000, 2),
            "without_p50_ms": round(statistics.median(withouts[kind]) * 1000, 2),
        })  # fmt: skip
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-fixture-") as tmp:
        print(json.dumps(measure(Path(tmp) / "w"), indent=1))
