"""The command line as users meet it: help, serve on defaults, clear startup errors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from server_process import start

from mockserver.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_command() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("serve", "check", "conformance", "cassettes"):
        assert command in out.stdout
    serve = run("serve", "--help")
    for flag in (
        "--mode",
        "--cassettes",
        "--upstream",
        "--profile",
        "--timing",
        "--api-key",
        "--seed",
    ):
        assert flag in serve.stdout
    assert "record-new" in serve.stdout and "MOCKSERVER_UPSTREAM_API_KEY" in serve.stdout


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_serve_on_defaults_replays_the_shipped_cassettes(tmp_path: Path) -> None:
    server = start([], tmp_path / "log.txt")
    try:
        with urllib.request.urlopen(server.url + "/_mockserver/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["mode"] == "auto"
        assert health["profile"] == "deepseek-v3-anthropic"
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: x\nmodels: []\n", "at least one model"),
        ("name: [unclosed\n", "not valid YAML"),
        ("dialect: klingon\n", "dialect"),
    ],
)
def test_broken_profile_is_a_clear_startup_error(tmp_path: Path, content: str, needle: str) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(content)
    out = run("serve", "--port", "0", "--profile", str(prof))
    assert out.returncode == 2
    assert out.stderr.startswith("mockserver: error: profile") and needle in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_profile_name_lists_the_builtins() -> None:
    out = run("serve", "--port", "0", "--profile", "nope")
    assert out.returncode == 2 and "deepseek-v3-anthropic" in out.stderr


def test_bad_timing_is_refused() -> None:
    out = run("serve", "--port", "0", "--timing", "fast")
    assert out.returncode == 2 and "--timing" in out.stderr


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        url + "/v1/messages",
        data=json.dumps(body).encode(),
        headers={
            "x-api-key": "k",
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_set_changes_one_profile_key(tmp_path: Path) -> None:
    big = {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    server = start(["--mode", "synth"], tmp_path / "plain.txt")
    try:
        status, body = _post(server.url, big)
        assert status == 400 and "32000 > 8192" in str(body), body  # the profile's default
    finally:
        server.kill()
    server = start(
        ["--mode", "synth", "--set", "max_tokens_over_limit=clamp", "--set", "cache.policy=none"],
        tmp_path / "set.txt",
    )
    try:
        status, body = _post(server.url, big)
        assert status == 200 and body["type"] == "message", body
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("setting", "needles"),
    [
        ("max_tokens_over_limit=bogus", ("'max_tokens_over_limit' must be one of", "clamp")),
        ("context_window=many", ("context_window",)),
        ("max_tokns_over_limit=clamp", ("unknown profile key 'max_tokns_over_limit'", "known:")),
        ("cache.polcy=none", ("unknown profile key 'cache.polcy'", "cache.policy")),
        ("no-equals-sign", ("expected KEY=VALUE",)),
    ],
)
def test_a_bad_set_is_a_clear_startup_error(setting: str, needles: tuple[str, ...]) -> None:
    out = run("serve", "--port", "0", "--set", setting)
    assert out.returncode == 2, out
    assert out.stderr.startswith("mockserver: error:") and "Traceback" not in out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


def test_a_profile_file_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    from importlib import resources

    text = (resources.files("mockserver.profiles") / "deepseek-v3-anthropic.yaml").read_text()
    prof = tmp_path / "typo.yaml"
    prof.write_text(text + "max_tokns_over_limit: clamp\n")
    out = run("serve", "--port", "0", "--profile", str(prof))
    assert out.returncode == 2 and "unknown key 'max_tokns_over_limit'" in out.stderr
