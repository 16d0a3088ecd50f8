"""The pytest plugin, tested the way users run it: pytester writes a small downstream project
(an ini file and a test module using ``@pytest.mark.mockserver``), runs pytest on it in each
mode, and the outcome is checked: pass on replay, fail with the near-miss diff on a miss, a
cassette written on record (against a local upstream), record-new, ``assert_all_used``,
the environment set and restored, session scope, faults, profiles, async clients.

Most runs are in-process (fast); the example app's suite runs in a subprocess, where the
plugin comes in through its ``pytest11`` entry point exactly as in a downstream project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import anthropic  # noqa: F401  (imported once here: in-process runs then reuse it)
import pytest
import yaml
from fake_upstream import running

from mockserver.config import UPSTREAM_KEY_ENV, Settings
from mockserver.server.running import ServerThread
from mockserver.sources.upstream import credential
from mockserver.testing.plugin import DUMMY_API_KEY, ENV_API_KEY, ENV_AUTH_TOKEN, ENV_BASE_URL

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agent"

INI = """\
[pytest]
mockserver_cassettes = cassettes
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""

HEADER = '''\
import asyncio
import os

import anthropic
import pytest

MODEL = "deepseek-v3-anthropic"


def ask(text, max_tokens=32, **kw):
    """One request through the official SDK, configured from the environment only."""
    with anthropic.Anthropic() as client:
        return client.messages.create(
            model=MODEL, max_tokens=max_tokens,
            messages=[{"role": "user", "content": text}], **kw
        )
'''


def project(pytester: pytest.Pytester, body: str, ini: str = "") -> Path:
    """A downstream project: ``pytest.ini`` and ``test_app.py``; returns its cassette dir."""
    pytester.makefile(".ini", pytest=INI + ini)
    pytester.makepyfile(test_app=HEADER + dedent(body))
    return pytester.path / "cassettes" / "test_app"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*args)


def interactions(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = data["interactions"]
    return items


@pytest.fixture(scope="module")
def synth_upstream() -> Iterator[str]:
    """A synthesizing mockserver standing in for the real endpoint while recording."""
    thread = ServerThread(Settings(port=0, mode="synth")).start()
    yield thread.base_url
    thread.stop()


UPSTREAM_KEY = "sk-upstream-for-tests"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        ENV_BASE_URL,
        ENV_API_KEY,
        ENV_AUTH_TOKEN,
        "MOCKSERVER_UPSTREAM",
        UPSTREAM_KEY_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    # recording needs a key for the upstream (the local ones accept any)
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)


# --- record, replay, miss, record-new --------------------------------------------------------------

HELLO = """
PROMPT = "hello plugin"


@pytest.mark.mockserver
def test_hello(mockserver):
    message = ask(PROMPT)
    assert message.content[0].text == "echo: " + PROMPT
    assert mockserver.journal.count == 1
    assert mockserver.journal.bodies[0]["messages"][0]["content"] == PROMPT
"""


def test_record_replay_miss_and_record_new(pytester: pytest.Pytester, traffic_dir: Path) -> None:
    cassettes = project(pytester, HELLO)
    cassette = cassettes / "test_hello.yaml"
    with running(traffic_dir) as fake:
        # record: the cassette named after the test is written from the upstream
        result = run(pytester, "--mockserver-mode=record", f"--mockserver-upstream={fake.url}")
        result.assert_outcomes(passed=1)
        assert len(fake.requests) == 1
        assert credential(fake.requests[0].headers) == UPSTREAM_KEY  # the upstream key, set
        recorded = interactions(cassette)
        assert [i["request"]["body"]["messages"][0]["content"] for i in recorded] == [
            "hello plugin"
        ]
        assert recorded[0]["response"]["body"]["content"][0]["text"] == "echo: hello plugin"
        assert UPSTREAM_KEY not in cassette.read_text()

        # replay (the default): served from the cassette, the upstream stays idle
        result = run(pytester)
        result.assert_outcomes(passed=1)
        assert len(fake.requests) == 1

        # the app's request changed: the test fails, its report shows where it differs
        project(pytester, HELLO.replace('"hello plugin"', '"hello, plugin"'))
        result = run(pytester)
        result.assert_outcomes(failed=1)
        out = result.stdout.str()
        assert "anthropic.NotFoundError" in out  # the app's own failure, with the diff noted
        assert "matched no recorded interaction" in out
        assert (
            'differs at $.messages[0].content[0].text: recorded "hello plugin", '
            'requested "hello, plugin"'
        ) in out
        assert "--mockserver-mode=record-new" in out
        assert len(fake.requests) == 1

        # record-new: the new request is recorded beside the old one
        result = run(pytester, "--mockserver-mode=record-new", f"--mockserver-upstream={fake.url}")
        result.assert_outcomes(passed=1)
        assert len(fake.requests) == 2
        prompts = [i["request"]["body"]["messages"][0]["content"] for i in interactions(cassette)]
        assert prompts == ["hello plugin", "hello, plugin"]

    # and both replay offline (the upstream is gone now)
    run(pytester).assert_outcomes(passed=1)
    project(pytester, HELLO)
    run(pytester).assert_outcomes(passed=1)


def test_recording_without_a_key_is_refused_and_says_which_variable_to_set(
    pytester: pytest.Pytester, traffic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPSTREAM_KEY_ENV)
    cassettes = project(pytester, HELLO)
    cassette = cassettes / "test_hello.yaml"
    cassette.parent.mkdir(parents=True)
    cassette.write_text("version: 1\ninteractions: []\n")
    with running(traffic_dir) as fake:
        for mode in ("record", "record-new"):
            result = run(pytester, f"--mockserver-mode={mode}", f"--mockserver-upstream={fake.url}")
            # record: refused as the test is set up; record-new: when a miss would go upstream
            result.assert_outcomes(**({"errors": 1} if mode == "record" else {"failed": 1}))
            out = result.stdout.str()
            assert "not recording with the pytest plugin's placeholder key" in out, out
            assert "ANTHROPIC_API_KEY" in out and UPSTREAM_KEY_ENV in out, out
        assert fake.requests == []  # the placeholder key never went upstream
    assert cassette.read_text() == "version: 1\ninteractions: []\n"  # nor was it recorded
    monkeypatch.setenv(ENV_API_KEY, "sk-a-real-key")  # a key of the user's: recording works
    with running(traffic_dir) as fake:
        result = run(pytester, "--mockserver-mode=record", f"--mockserver-upstream={fake.url}")
        result.assert_outcomes(passed=1)
        assert credential(fake.requests[0].headers) == "sk-a-real-key"


def test_a_miss_the_app_swallows_still_fails_the_test(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        def test_swallowed(mockserver):
            with pytest.raises(anthropic.NotFoundError):
                ask("nothing recorded")
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "mockserver: 1 request(s) matched no recorded interaction in *"
            "test_swallowed.yaml (mode replay):",
            "*request #1: POST /v1/messages",
            "*The cassette does not exist yet: record it with --mockserver-mode=record*",
        ]
    )


def test_assert_all_used(pytester: pytest.Pytester, synth_upstream: str) -> None:
    body = """
    CALLS = {calls}


    @pytest.mark.mockserver(assert_all_used={flag})
    def test_calls(mockserver):
        for n in range(CALLS):
            ask(f"question {{n}}")
    """
    cassettes = project(pytester, body.format(calls=2, flag=None))
    run(pytester, "--mockserver-mode=record", f"--mockserver-upstream={synth_upstream}")
    assert len(interactions(cassettes / "test_calls.yaml")) == 2

    project(pytester, body.format(calls=1, flag=None))
    run(pytester).assert_outcomes(passed=1)  # off by default

    result = run(pytester, "-o", "mockserver_assert_all_used=true")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 recorded interaction(s) of *test_calls.yaml were never used (assert_all_used): "
            "test_calls#1 (POST /v1/messages)"
        ]
    )
    project(pytester, body.format(calls=1, flag=True))  # the marker turns it on too
    run(pytester).assert_outcomes(failed=1)
    project(pytester, body.format(calls=2, flag=True))
    run(pytester).assert_outcomes(passed=1)


def test_record_mode_starts_the_cassette_over(
    pytester: pytest.Pytester, synth_upstream: str
) -> None:
    cassettes = project(
        pytester,
        """
        def test_once(mockserver):
            ask("only this")
        """,
    )
    for _ in range(2):
        run(pytester, "--mockserver-mode=record", f"--mockserver-upstream={synth_upstream}")
    assert len(interactions(cassettes / "test_once.yaml")) == 1


# --- environment ---------------------------------------------------------------------------------


def test_environment_is_set_for_the_test_and_restored(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        f"""
        @pytest.fixture
        def own_key(monkeypatch):
            monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-own-key")


        def test_set(mockserver):
            assert os.environ["ANTHROPIC_BASE_URL"] == mockserver.base_url
            assert mockserver.base_url.startswith("http://127.0.0.1:")
            assert os.environ["ANTHROPIC_API_KEY"] == "{DUMMY_API_KEY}"


        def test_restored_after_the_test():
            assert "ANTHROPIC_BASE_URL" not in os.environ
            assert "ANTHROPIC_API_KEY" not in os.environ


        def test_a_key_that_is_set_is_kept(own_key, mockserver):
            assert os.environ["ANTHROPIC_API_KEY"] == "sk-own-key"


        @pytest.mark.mockserver(set_env=False)
        def test_switched_off_in_the_marker(mockserver):
            assert "ANTHROPIC_BASE_URL" not in os.environ


        @pytest.mark.mockserver(mode="synth")
        def test_the_marker_alone_is_enough():
            assert ask("hi").content[0].type == "text"
        """,
    )
    run(pytester).assert_outcomes(passed=5)
    assert ENV_BASE_URL not in os.environ and ENV_API_KEY not in os.environ

    result = run(pytester, "-o", "mockserver_set_env=false", "-k", "test_set")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*KeyError: 'ANTHROPIC_BASE_URL'*"])


# --- session scope, faults, profiles, async --------------------------------------------------------

SESSION = '''
SEEN = []  # (base URL, server state) of every test


@pytest.mark.mockserver(mode="synth", fault="overloaded;times=1;retry_after_ms=1")
def test_synth_with_a_fault(mockserver):
    """Every distinct request gets one 529 first: the SDK retries."""
    SEEN.append((mockserver.base_url, mockserver.state))
    assert ask("retry me", max_tokens=200).stop_reason == "end_turn"
    journal = mockserver.journal
    assert [ex.status for ex in journal] == [529, 200]
    assert journal.retries() == 1
    assert journal.headers[1]["x-stainless-retry-count"] == "1"


@pytest.mark.mockserver(mode="record-new")
def test_recorded(mockserver):
    SEEN.append((mockserver.base_url, mockserver.state))
    ask("remember me")
    assert [ex.source for ex in mockserver.journal] == ["record"]  # fresh journal, no fault


@pytest.mark.mockserver(cassette="test_recorded")
def test_replayed_from_the_other_cassette(mockserver):
    SEEN.append((mockserver.base_url, mockserver.state))
    ask("remember me")
    assert [ex.source for ex in mockserver.journal] == ["replay"]
    assert mockserver.mode == "replay"


@pytest.mark.mockserver(mode="synth", profile="tiny.yaml")
def test_profile_from_the_marker(mockserver):
    SEEN.append((mockserver.base_url, mockserver.state))
    assert mockserver.state.profile.name == "tiny"
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        ask("too long", max_tokens=200)


@pytest.mark.mockserver(mode="synth")
def test_async_client_and_streaming(mockserver):
    SEEN.append((mockserver.base_url, mockserver.state))

    async def main():
        async with anthropic.AsyncAnthropic() as client:
            first = await client.messages.create(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "one"}]
            )
            async with client.messages.stream(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "two"}]
            ) as stream:
                second = await stream.get_final_message()
        return first, second

    first, second = asyncio.run(main())
    assert first.content[0].text and second.content[0].text
    assert [ex.stream for ex in mockserver.journal] == [False, True]
    assert mockserver.state.profile.name == "deepseek-v3-anthropic"  # the profile is back


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.mockserver(mode="synth")
async def test_async_test_function(mockserver):
    """The server runs on its own loop: an async test's loop never waits on it."""
    SEEN.append((mockserver.base_url, mockserver.state))
    async with anthropic.AsyncAnthropic() as client:
        await client.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "async"}]
        )
    assert mockserver.journal.count == 1


def test_servers():
    assert len(SEEN) == 6
    assert len({id(state) for _, state in SEEN}) == {servers}
    if {servers} == 1:  # one server, reconfigured: same port all along
        assert len({url for url, _ in SEEN}) == 1
'''


def _tiny_profile(pytester: pytest.Pytester) -> None:
    text = (ROOT / "mockserver" / "profiles" / "deepseek-v3-anthropic.yaml").read_text()
    text = text.replace("name: deepseek-v3-anthropic", "name: tiny", 1)
    pytester.path.joinpath("tiny.yaml").write_text(
        text.replace("max_output_tokens: 8192", "max_output_tokens: 100", 1)
    )


@pytest.mark.parametrize(("scope", "servers"), [("session", 1), ("function", 6)])
def test_scopes_faults_profiles_and_async(
    pytester: pytest.Pytester, synth_upstream: str, scope: str, servers: int
) -> None:
    _tiny_profile(pytester)
    cassettes = project(
        pytester, SESSION.replace("{servers}", str(servers)), f"mockserver_scope = {scope}\n"
    )
    result = run(pytester, f"--mockserver-upstream={synth_upstream}")
    result.assert_outcomes(passed=7)
    assert sorted(p.name for p in cassettes.iterdir()) == ["test_recorded.yaml"]


# --- cassette names, marker mistakes ----------------------------------------------------------------


def test_cassette_names(pytester: pytest.Pytester, synth_upstream: str) -> None:
    cassettes = project(
        pytester,
        f"""
        @pytest.mark.parametrize("city", ["Paris", "São Paulo"])
        def test_city(mockserver, city):
            ask(city)


        class TestGroup:
            def test_member(self, mockserver):
                ask("member")


        @pytest.mark.mockserver("shared")
        def test_shared_a(mockserver):
            ask("shared")


        @pytest.mark.mockserver(cassette="elsewhere/one.yaml")
        def test_elsewhere(mockserver):
            assert mockserver.cassette.name == "one.yaml"
            ask("elsewhere")


        @pytest.mark.mockserver(cassette={str(pytester.path / "abs" / "x")!r})
        def test_absolute(mockserver):
            ask("absolute")
        """,
    )
    run(pytester, "--mockserver-mode=record-new", f"--mockserver-upstream={synth_upstream}")
    written = sorted(p.relative_to(pytester.path).as_posix() for p in pytester.path.rglob("*.yaml"))
    assert written == [
        "abs/x.yaml",
        "cassettes/elsewhere/one.yaml",
        "cassettes/test_app/TestGroup.test_member.yaml",
        "cassettes/test_app/shared.yaml",
        "cassettes/test_app/test_city-Paris.yaml",
        "cassettes/test_app/test_city-S_xe3o_Paulo.yaml",  # pytest escapes the id,
    ]
    assert cassettes.is_dir()
    run(pytester).assert_outcomes(passed=6)  # and they replay


def test_marker_mistakes_are_reported(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        @pytest.mark.mockserver(casette="typo")
        def test_typo(mockserver):
            pass


        @pytest.mark.mockserver(mode="synth", fault="overloaded;times=zero")
        def test_bad_fault(mockserver):
            pass


        @pytest.mark.mockserver(mode="synth", profile="no-such-profile")
        def test_bad_profile(mockserver):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*mockserver: @pytest.mark.mockserver: unknown argument(s) casette; allowed: cassette*",
            "*mockserver: fault='overloaded;times=zero': *",
            "*mockserver: unknown profile 'no-such-profile'*",
        ]
    )
    assert (
        pytester.runpytest_inprocess("--mockserver-mode=bogus").ret == pytest.ExitCode.USAGE_ERROR
    )


# --- scripted replies -------------------------------------------------------------------------------

RULES_TESTS = """
SCRIPT = {"name": "ping", "when": {"last_user": {"equals": "ping"}},
          "reply": {"content": [{"text": "pong from {{ model }}"}]}}


@pytest.mark.mockserver(rules="agent")  # cassettes/test_app/agent.yaml, as cassette= is found
def test_rules_file_from_the_marker(mockserver):
    reply = ask("hello rules")
    assert reply.content[0].text == "scripted hello"
    assert mockserver.journal.last.source == "rule"


@pytest.mark.mockserver(rules=[SCRIPT])
def test_rules_as_dicts(mockserver):
    assert ask("ping").content[0].text == "pong from deepseek-v3-anthropic"


def test_rules_added_in_the_test(mockserver):
    mockserver.rules.add(SCRIPT)
    assert mockserver.rules.names() == ["ping"]
    assert ask("ping").content[0].text.startswith("pong")
    assert mockserver.rules.clear() == 1 and len(mockserver.rules) == 0


def test_rules_are_gone_after_the_test(mockserver):
    assert len(mockserver.rules) == 0
    with pytest.raises(anthropic.NotFoundError):  # replay: no cassette, no rule
        ask("ping")
    mockserver.journal.clear()  # (the miss is what this test expects)


@pytest.mark.mockserver(rules=[{"name": "bad", "when": {"last_user": {"regex": "("}},
                                "reply": {"content": [{"text": "x"}]}}])
def test_a_bad_rule_is_reported(mockserver):
    pass
"""


@pytest.mark.parametrize("scope", ["function", "session"])
def test_rules_from_the_marker_and_the_fixture(pytester: pytest.Pytester, scope: str) -> None:
    cassettes = project(pytester, RULES_TESTS, f"mockserver_scope = {scope}\n")
    cassettes.mkdir(parents=True)
    (cassettes / "agent.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rules": [
                    {
                        "name": "hello",
                        "when": {"last_user": {"contains": "hello"}},
                        "reply": {"content": [{"text": "scripted hello"}]},
                    }
                ],
            }
        )
    )
    result = run(pytester)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*mockserver: rules=: *'bad'*when.last_user.regex*"])


# --- the example app -------------------------------------------------------------------------------


def _example_files() -> dict[str, bytes]:
    return {
        p.relative_to(EXAMPLE).as_posix(): p.read_bytes()
        for p in EXAMPLE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_example_agent_tests_pass_offline() -> None:
    """``examples/agent``'s own test suite, run as its users run it (replay, no network)."""
    before = _example_files()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
    assert _example_files() == before  # replay wrote nothing


def test_example_cassettes_are_what_recording_produces(pytester: pytest.Pytester) -> None:
    """Re-recording the example against a fresh synth upstream (as its README says)
    reproduces the committed cassettes, which then replay."""
    for name in ("agent.py", "test_agent.py", "pytest.ini"):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    upstream = ServerThread(Settings(port=0, mode="synth")).start()  # a cold prompt cache
    try:
        result = run(
            pytester, "--mockserver-mode=record-new", f"--mockserver-upstream={upstream.base_url}"
        )
    finally:
        upstream.stop()
    result.assert_outcomes(passed=4)
    committed = sorted((EXAMPLE / "cassettes").rglob("*.yaml"))
    assert committed
    for path in committed:
        fresh = pytester.path / path.relative_to(EXAMPLE)
        keep = ("request", "response")
        old = [{k: i[k] for k in keep} for i in interactions(path)]
        new = [{k: i[k] for k in keep} for i in interactions(fresh)]
        for i in old + new:  # per-run ids and timestamps
            i["response"]["headers"] = {}
        assert new == old, path.name
    run(pytester).assert_outcomes(passed=4)
