"""The command line as users meet it: help, serve on defaults, clear startup errors."""

from __future__ import annotations

import json
import subprocess
import sys
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
