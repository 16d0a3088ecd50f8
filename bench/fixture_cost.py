"""What the pytest plugin's ``mockserver`` fixture costs a test.

A generated module of 200 tests, each making one ``POST /v1/messages`` that its own cassette
answers, is run three ways in separate ``pytest`` processes: with the fixture at function
scope (a server per test), at session scope (one server, reconfigured per test), and without
the fixture (the same requests to one server started once for the module, the same cassette
served).  Per-test cost = (with - without) / 200, from the session times pytest reports (the
interpreter's start is left out: it is the same for all three and only adds noise), as the
median over rounds of each round's difference; the three alternate within a round.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = 200

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

WITH_FIXTURE = (
    _REQUEST
    + """

def make(i):
    def test(mockserver):
        assert ask(mockserver.base_url)["content"][0]["text"]
    return test


for _i in range(__N__):
    globals()[f"test_{_i:03d}"] = make(_i)
"""
)

WITHOUT_FIXTURE = (
    _REQUEST
    + """
import pytest
from pathlib import Path
from mockserver.config import Settings
from mockserver.server.running import ServerThread


@pytest.fixture(scope="module")
def base_url():
    here = Path(__file__).parent / "cassettes" / "test_without" / "test_000.yaml"
    thread = ServerThread(Settings(port=0, mode="replay", cassettes=here)).start()
    yield thread.base_url
    thread.stop()


def make(i):
    def test(base_url):
        assert ask(base_url)["content"][0]["text"]
    return test


for _i in range(__N__):
    globals()[f"test_{_i:03d}"] = make(_i)
"""
)


def generate(work: Path, n: int = TESTS) -> Path:
    """The test directory: two modules, an ini per scope, a cassette per test (the shipped
    one-reply text example)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "test_with.py").write_text(WITH_FIXTURE.replace("__N__", str(n)))
    (work / "test_without.py").write_text(WITHOUT_FIXTURE.replace("__N__", str(n)))
    shipped = (ROOT / "cassettes" / "text.yaml").read_text()
    for module in ("test_with", "test_without"):
        folder = work / "cassettes" / module
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"test_{i:03d}.yaml").write_text(shipped)
    for scope in ("function", "session"):
        (work / f"{scope}.ini").write_text(
            textwrap.dedent(f"""\
                [pytest]
                mockserver_scope = {scope}
                mockserver_cassettes = cassettes
                """)
        )
    return work


def _pytest(work: Path, module: str, scope: str) -> float:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-c", str(work / f"{scope}.ini"), "--rootdir", str(work), str(work / module)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{module} ({scope}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    done = _DONE.search(proc.stdout)
    if done is None or int(done.group(1)) != TESTS:
        raise RuntimeError(f"{module} ({scope}): {proc.stdout[-500:]}")
    return float(done.group(2))  # pytest's own figure: the session, not the interpreter start


_DONE = re.compile(r"(\d+) passed in ([\d.]+)s")


def measure(work: Path, rounds: int = 3) -> list[dict[str, Any]]:
    generate(work)
    runs: dict[str, list[float]] = {"without": [], "function": [], "session": []}
    _pytest(work, "test_without.py", "function")  # warm: imports, the tokenizer's files
    for r in range(rounds):
        order = ["without", "function", "session"]
        for kind in order if r % 2 == 0 else order[::-1]:
            module = "test_without.py" if kind == "without" else "test_with.py"
            runs[kind].append(_pytest(work, module, "function" if kind == "without" else kind))
    base = statistics.median(runs["without"])
    rows = []
    for scope in ("function", "session"):
        # each round's difference to the run beside it, then their median: a machine whose
        # speed drifts moves both sides of a difference alike
        diffs = [a - b for a, b in zip(runs[scope], runs["without"], strict=True)]
        rows.append({
            "scope": scope,
            "tests": TESTS,
            "suite_s": round(statistics.median(runs[scope]), 3),
            "baseline_s": round(base, 3),
            "per_test_ms": round(statistics.median(diffs) / TESTS * 1000, 2),
            "runs_s": [round(x, 3) for x in runs[scope]],
            "baseline_runs_s": [round(x, 3) for x in runs["without"]],
        })  # fmt: skip
    return rows


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-fixture-") as tmp:
        print(json.dumps(measure(Path(tmp) / "w"), indent=1))
