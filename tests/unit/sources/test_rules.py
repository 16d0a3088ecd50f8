"""Scripted-reply rules, in process: files parsed with errors that name file, rule, field and
reason; conditions; the book's order, ``times`` and ``replies``; templates; ``rules lint`` and
``rules from-cassette``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mockserver.cli import main as cli_main
from mockserver.sources.rules.book import RuleBook
from mockserver.sources.rules.cli import rule_for
from mockserver.sources.rules.conditions import Facts, judge
from mockserver.sources.rules.spec import RuleError, parse_rule, parse_rules

WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}


def body(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 100,
        "messages": list(messages),
        **extra,
    }


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "r", "reply": {"content": [{"text": "hi"}]}, **fields}


# --- files and their errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"version": 2, "rules": []}, ("version", "expected 1")),
        ({"version": 1}, ("(top level)", "rules")),
        ({"version": 1, "rules": [{"reply": {"content": [{"text": "x"}]}}]}, ("rule '#0'", "name")),
        (
            {"version": 1, "rules": [rule(when={"lastuser": {}})]},
            ("rule 'r'", "when.lastuser: unknown field"),
        ),
        (
            {"version": 1, "rules": [rule(when={"last_user": {"regex": "("}})]},
            ("rule 'r'", "when.last_user.regex: not a regular expression"),
        ),
        (
            {"version": 1, "rules": [rule(when={"last_user": {"contains": "a", "equals": "b"}})]},
            ("rule 'r'", "when.last_user"),
        ),
        ({"version": 1, "rules": [rule(when={"turn": 0})]}, ("rule 'r'", "when.turn")),
        (
            {"version": 1, "rules": [rule(when={"body": {"$.a[": 1}})]},
            ("rule 'r'", "when.body.$.a["),
        ),
        ({"version": 1, "rules": [rule(times=0)]}, ("rule 'r'", "times")),
        ({"version": 1, "rules": [{"name": "r"}]}, ("rule 'r'", "")),
        (
            {
                "version": 1,
                "rules": [{"name": "r", "reply": {"content": [{"text": "{{ nope }}"}]}}],
            },
            ("rule 'r'", "reply.content.0.text: unknown template variable 'nope'"),
        ),
        (
            {"version": 1, "rules": [{"name": "r", "reply": {"content": [{"text": "{{ x "}]}}]},
            ("rule 'r'", "reply.content.0.text: template does not parse"),
        ),
        (
            {"version": 1, "rules": [{"name": "r", "reply": {"error": "melted"}}]},
            ("rule 'r'", "reply.error: "),
        ),
        (
            {"version": 1, "rules": [{"name": "r", "reply": {"error": "overloaded;times=2"}}]},
            ("rule 'r'", "the rule's `times`"),
        ),
        (
            {"version": 1, "rules": [{"name": "r", "replies": [{"json": 1}, {"content": []}]}]},
            ("rule 'r'", "replies.1.content"),
        ),
        (
            {
                "version": 1,
                "rules": [{"name": "r", "reply": {"content": [{"tool_use": {"input": {}}}]}}],
            },
            ("rule 'r'", "reply.content.0.tool_use"),
        ),
        ({"version": 1, "rules": [rule(), rule()]}, ("rule 'r'", "name: used by an earlier rule")),
    ],
)
def test_bad_rules_name_file_rule_and_field(data: Any, where: tuple[str, str]) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(data, "rules.yaml")
    message = str(info.value)
    assert message.startswith("rules.yaml: "), message
    for part in where:
        assert part in message, message


def test_a_rule_as_written_is_listed_back() -> None:
    (parsed,) = parse_rules({"version": 1, "rules": [rule(times=2)]}, "f.yaml")
    assert parsed.to_json() == {**rule(times=2), "origin": "f.yaml"}


# --- conditions --------------------------------------------------------------------------------


def verdict(when: dict[str, Any], request: dict[str, Any]) -> Any:
    return judge(parse_rule(rule(when=when), "t", "t").when, Facts.of(request))


def test_every_condition() -> None:
    loop = body(
        user("weather in Paris?"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
        },
        user([{"type": "tool_result", "tool_use_id": "t1", "content": "18C"}]),
        system=[{"type": "text", "text": "You are terse."}],
        tools=[WEATHER_TOOL],
        stream=True,
        metadata={"user_id": "abc"},
    )
    first = body(
        user(
            [
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                {"type": "text", "text": "weather in Paris?"},
            ]
        )
    )
    assert verdict({"model": "deepseek-*"}, loop).ok
    assert not verdict({"model": "claude-*"}, loop).ok
    assert verdict({"last_user": {"equals": "weather in Paris?"}}, first).ok  # reminders left out
    found = verdict({"last_user": {"regex": r"in (\w+)"}}, first)
    assert found.ok and found.groups == ("in Paris", "Paris")
    assert verdict({"system": {"contains": "terse"}}, loop).ok
    assert verdict({"tools": ["get_weather"]}, loop).ok
    assert not verdict({"tools": ["get_weather", "x"]}, loop).ok
    result = verdict({"tool_result": {"name": "get_weather", "content": {"equals": "18C"}}}, loop)
    assert result.ok and result.tool_result == "18C"
    assert not verdict({"tool_result": {"name": "other"}}, loop).ok
    assert verdict({"turn": 2}, loop).ok and not verdict({"turn": 1}, loop).ok
    assert verdict({"stream": True}, loop).ok and not verdict({"stream": False}, loop).ok
    assert verdict({"body": {"$.metadata.user_id": "abc"}}, loop).ok
    assert not verdict({"body": {"$.metadata.user_id": "abd"}}, loop).ok
    assert verdict({}, loop).ok  # no condition: any request


def test_the_first_failed_condition_and_how_many_held() -> None:
    v = verdict(
        {"model": "deepseek-*", "last_user": {"contains": "hello"}, "turn": 1}, body(user("bye"))
    )
    assert not v.ok and v.held == 1 and v.failed == "last_user does not contain 'hello'"


# --- the book ---------------------------------------------------------------------------------


def book(*rules: dict[str, Any]) -> RuleBook:
    b = RuleBook()
    b.add(parse_rules({"version": 1, "rules": list(rules)}, "f.yaml"))
    return b


def test_first_rule_in_order_with_times_left_wins_and_replies_advance() -> None:
    b = book(
        {
            "name": "once",
            "when": {"last_user": {"contains": "hi"}},
            "times": 1,
            "reply": {"json": 1},
        },
        {"name": "seq", "replies": [{"json": "a"}, {"json": "b"}]},
    )
    facts = Facts.of(body(user("hi")))
    picks = [b.pick(facts) for _ in range(4)]
    assert [(p.rule.name, p.reply.json) for p in picks if p] == [
        ("once", 1),
        ("seq", "a"),
        ("seq", "b"),
        ("seq", "b"),
    ]
    b.clear()
    assert b.pick(facts) is None


def test_closest_rules_for_a_miss() -> None:
    b = book(
        {"name": "far", "when": {"model": "x-*"}, "reply": {"json": 1}},
        {
            "name": "near",
            "when": {"model": "deepseek-*", "last_user": {"equals": "hello"}},
            "reply": {"json": 1},
        },
    )
    (first, why), _ = b.closest(Facts.of(body(user("hi"))))
    assert first.name == "near" and why == "last_user is not 'hello'"


def test_names_are_unique_across_origins_and_files_reload(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "rules": [rule(name="a")]}))
    b = RuleBook([path])
    with pytest.raises(RuleError, match="a rule of this name exists"):
        b.add([parse_rule(rule(name="a"), "api", "api")])
    b.add([parse_rule(rule(name="b"), "api", "api")])
    path.write_text(yaml.safe_dump({"version": 1, "rules": [rule(name="a"), rule(name="c")]}))
    assert b.load_files() == 2
    assert [r.name for r in b.rules()] == ["a", "c", "b"]  # files first, then the API's


@pytest.mark.parametrize(
    "text",
    [
        "{{ last_user.__class__.__mro__ }}",
        "{{ match.append(1) }}",  # immutable: no mutation of what templates see
        "{{ 'x' * 10 ** 9 }}",  # bounded: no gigabyte strings
        "{{ 2 ** 100000000 }}",
        "{{ [0] * 1000000 }}",
    ],
)
def test_templates_are_sandboxed_and_bounded(text: str) -> None:
    from jinja2.exceptions import SecurityError

    from mockserver.sources.rules.spec import template

    with pytest.raises(SecurityError):
        template(text).render(last_user="x", match=[])
    assert template("{{ 'ab' * 3 }} {{ 2 ** 10 }}").render() == "ababab 1024"


# --- the CLI ---------------------------------------------------------------------------------


def test_rules_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump({"version": 1, "rules": [rule()]}))
    bad.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rules": [rule(when={"turn": "x"}), rule(name="s", reply={"error": "nope"})],
            }
        )
    )
    assert cli_main(["rules", "lint", str(good)]) == 0
    assert "1 rule(s)" in capsys.readouterr().out
    assert cli_main(["rules", "lint", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {bad}: rule 'r': when.turn" in out and f"FAIL {bad}: rule 's': reply.error" in out


def test_from_cassette_makes_a_rule_that_parses() -> None:
    from mockserver.cassettes import cassette as cas

    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "x",
        "content": [
            {"type": "text", "text": "Use {{ this }}"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
    }
    import json

    inter = cas.Interaction(
        cas.RecordedRequest("POST", "/v1/messages", {}, body(user("do it"))),
        cas.RecordedResponse(200, {}, body=json.dumps(message).encode()),
    )
    made = rule_for(inter, "c-0")
    assert made["when"] == {"last_user": {"equals": "do it"}}
    parsed = parse_rule(made, "x", "x")  # it loads; the recorded braces stay literal
    assert parsed.replies[0].content[0] == {"text": "{% raw %}Use {{ this }}{% endraw %}"}
