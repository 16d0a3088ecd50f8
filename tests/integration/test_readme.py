"""The README as a newcomer follows it: its code blocks run as written (against a server on a
free port instead of 8080), and its facts match the code."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mockserver.config import Settings
from mockserver.contract.suite import Client, Suite
from mockserver.server.running import ServerThread

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")


def section(title: str) -> str:
    start = TEXT.index(f"\n## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start : end if end != -1 else len(TEXT)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    thread = ServerThread(Settings(port=0)).start()
    try:
        yield thread.base_url
    finally:
        thread.stop()


def test_the_quickstart_says_how_to_get_the_sdk_and_runs_as_written(server: str) -> None:
    quick = section("Quickstart")
    assert "pip install anthropic" in quick
    (code,) = blocks(quick, "python")
    assert "http://127.0.0.1:8080" in code
    done = subprocess.run(
        [sys.executable, "-c", code.replace("http://127.0.0.1:8080", server)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Mock reply to: Hello" in done.stdout and "input_tokens" in done.stdout


def test_the_async_test_example_runs_under_the_plugin(pytester: pytest.Pytester) -> None:
    plugin = section("pytest plugin")
    (example,) = [b for b in blocks(plugin, "python") if "async def" in b]
    pytester.makepyfile(test_async="import anthropic\nimport pytest\n\n\n" + example)
    pytester.makeini("[pytest]\nmockserver_mode = synth\n")
    result = pytester.runpytest_inprocess("-p", "anyio")
    result.assert_outcomes(passed=1)
    assert "pytest-asyncio" in plugin and "@pytest.mark.asyncio" in plugin


def test_the_conformance_case_count_is_the_suites() -> None:
    cases = len(list(Suite(Client("http://x", "k", "v", 1), "m", "any").cases()))
    assert f"runs {cases} live cases" in section("Contract kit")


def test_the_readme_is_a_guide_and_links_its_docs() -> None:
    assert len(TEXT.splitlines()) < 400, "keep the README a user's guide: evidence goes in docs/"
    for link in re.findall(r"\]\((docs/[^)]+)\)", TEXT):
        assert (README.parent / link).is_file(), link
    assert "make serve" in TEXT and "make test" in TEXT
    assert "TIMING_" not in TEXT, "measure make test and write the figures"


def test_the_rules_example_lints_and_runs_the_loop_it_describes(tmp_path: Path) -> None:
    import anthropic
    import yaml

    scripted = section("Scripted replies (rules)")
    (example,) = blocks(scripted, "yaml")
    path = tmp_path / "agent.yaml"
    path.write_text(example, encoding="utf-8")
    lint = subprocess.run(
        [sys.executable, "-m", "mockserver", "rules", "lint", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert len(yaml.safe_load(example)["rules"]) == 5
    weather = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    thread = ServerThread(Settings(port=0, mode="synth", rule_files=(path,))).start()
    try:
        with anthropic.Anthropic(base_url=thread.base_url, api_key="k") as client:
            ask: list[Any] = [{"role": "user", "content": "What's the weather in Lisbon?"}]
            first = client.messages.create(
                model="deepseek-v3-anthropic", max_tokens=100, messages=ask, tools=[weather]
            )
            text, call = first.content
            assert first.stop_reason == "tool_use" and call.type == "tool_use"
            assert call.input == {"city": "Lisbon"}
            assert text.type == "text" and text.text == "Checking the weather in Lisbon."
            ask += [
                {"role": "assistant", "content": first.content},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21°C"}],
                },
            ]
            final = client.messages.create(
                model="deepseek-v3-anthropic", max_tokens=100, messages=ask, tools=[weather]
            )
    finally:
        thread.stop()
    said = final.content[0]
    assert said.type == "text" and said.text == "It is 21°C in the city."
    assert f'"{said.text}"' in " ".join(scripted.split())  # the README says what it does
