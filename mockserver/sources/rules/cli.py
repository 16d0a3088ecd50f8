"""``mockserver rules lint FILE...`` and ``mockserver rules from-cassette CASSETTE``.

``lint`` checks rule files as ``serve --rules`` loads them (exit 1 naming file, rule, field and
reason).  ``from-cassette`` prints a rules file with one rule that answers a recorded
interaction's last user text with its recorded content: record once, then edit the words.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ...cassettes import cassette as cas
from ...wire import protocol as p
from ...wire.errors import CassetteError
from ...wire.streaming import FoldError, fold
from ..compose import last_user_text
from .book import read_file, rule_files
from .spec import RuleError, parse_rules, problems as file_problems


def cmd_lint(args: argparse.Namespace) -> int:
    files = rule_files(args.files)
    if not files:
        print("mockserver rules lint: no rule files found", file=sys.stderr)
        return 1
    problems = 0
    names: dict[str, Path] = {}
    for path in files:
        try:
            data = read_file(path)
        except RuleError as exc:
            print(f"FAIL {exc}")
            problems += 1
            continue
        found = file_problems(data, str(path))
        if found:
            for problem in found:
                print(f"FAIL {problem}")
            problems += len(found)
            continue
        rules = parse_rules(data, str(path))
        clash = [r.name for r in rules if r.name in names]
        if clash:
            print(f"FAIL {path}: rule {clash[0]!r}: name: already used in {names[clash[0]]}")
            problems += 1
            continue
        names.update({r.name: path for r in rules})
        print(f"ok   {path}: {len(rules)} rule(s)")
    return 1 if problems else 0


def _quoted(text: str) -> str:
    """Recorded text as a template that renders to itself."""
    return f"{{% raw %}}{text}{{% endraw %}}" if "{{" in text or "{%" in text else text


def _recorded_message(inter: cas.Interaction) -> Any:
    resp = inter.response
    if resp.events is not None:
        try:
            return fold((e.name, e.json()) for e in resp.events)
        except (FoldError, ValueError):
            return None
    return resp.json_body()


def rule_for(inter: cas.Interaction, name: str) -> dict[str, Any]:
    """The rule that answers ``inter``'s last user text with its recorded reply."""
    body = inter.request.body if isinstance(inter.request.body, dict) else {}
    text, _ = last_user_text([m for m in body.get("messages") or [] if isinstance(m, dict)])
    rule: dict[str, Any] = {"name": name, "when": {"last_user": {"equals": text}}}
    message = _recorded_message(inter)
    status = inter.response.status
    if status >= 400 or not isinstance(message, dict):
        rule["reply"] = {"error": f"status;code={status if status >= 400 else 500}"}
        return rule
    content: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == p.BLOCK_TEXT:
            content.append({"text": _quoted(str(block.get("text", "")))})
        elif block.get("type") == p.BLOCK_TOOL_USE:
            content.append(
                {"tool_use": {"name": block.get("name"), "input": block.get("input") or {}}}
            )
    rule["reply"] = {"content": content or [{"text": ""}]}
    stop = message.get("stop_reason")
    calls = any("tool_use" in b for b in content)
    if stop and stop != (p.STOP_TOOL_USE if calls else p.STOP_END_TURN):
        rule["reply"]["stop_reason"] = stop
    return rule


def cmd_from_cassette(args: argparse.Namespace) -> int:
    try:
        cassette = cas.load(args.cassette)
    except (OSError, CassetteError) as exc:
        print(f"mockserver rules from-cassette: {exc}", file=sys.stderr)
        return 1
    interactions = cassette.interactions
    if not interactions:
        print(
            f"mockserver rules from-cassette: {args.cassette} holds no interaction", file=sys.stderr
        )
        return 1
    n = args.interaction if args.interaction is not None else len(interactions) - 1
    if not 0 <= n < len(interactions):
        print(
            f"mockserver rules from-cassette: --interaction {n}: {args.cassette} has "
            f"{len(interactions)} (0..{len(interactions) - 1})",
            file=sys.stderr,
        )
        return 1
    name = f"{Path(args.cassette).stem}-{n}"
    doc = {"version": 1, "rules": [rule_for(interactions[n], name)]}
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))
    return 0


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "rules",
        help="check scripted-reply rule files, or make one from a recording",
        description="Scripted replies: `serve --rules FILE` answers requests from rules. "
        "These commands check rule files and turn a recorded interaction into a rule.",
    )
    rules_sub = sp.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)
    lint = rules_sub.add_parser(
        "lint",
        help="check rule files (exit 1 naming file, rule, field and reason)",
        description="Check rule files as `serve --rules` loads them.",
    )
    lint.add_argument("files", nargs="+", type=Path, metavar="FILE", help="rule file or directory")
    lint.set_defaults(func=cmd_lint)
    conv = rules_sub.add_parser(
        "from-cassette",
        help="print a rule answering a recorded interaction with its recorded reply",
        description="Print a rules file with one rule: when the last user text equals the "
        "recorded one, reply with the recorded content. Edit the words, then serve --rules.",
    )
    conv.add_argument("cassette", type=Path, help="cassette file")
    conv.add_argument(
        "--interaction",
        type=int,
        default=None,
        metavar="N",
        help="which one (from 0; default: the last)",
    )
    conv.set_defaults(func=cmd_from_cassette)
