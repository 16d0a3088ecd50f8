"""What a rule says, parsed and checked once: ``Rule``, its conditions and its replies.

A rules file (``schemas/rules.json``; README "Scripted replies")::

    version: 1
    rules:
      - name: weather-call
        when: {last_user: {contains: weather}, tools: [get_weather]}
        reply: {content: [{text: "Checking {{ match[1] }}."}, {tool_use: {name: get_weather, input: auto}}]}
        times: 2

``parse_rules`` turns one file's data (or the admin API's JSON) into ``Rule`` s; every
problem is a ``RuleError`` naming the file, the rule, the field and the reason: the schema's
structural errors first, then what the schema cannot say (a regex that does not compile, a
template that does not parse or names an unknown variable, a fault spec that does not parse,
a name used twice).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final

from jinja2 import Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ...contract.validation import describe, validator
from ...wire.errors import ConfigError
from ...wire.faults import FaultSpecError, parse_faults
from ...wire.json_path import parse_json_path

#: the variables a template may use
TEMPLATE_VARS: Final = frozenset({"last_user", "match", "tool_result", "model", "turn"})
TEXT_FORMS: Final = ("contains", "regex", "equals")

#: the longest string or list a template's ``*`` may make, the largest power ``**`` may take
MAX_PRODUCT: Final = 100_000
MAX_EXPONENT: Final = 1_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox (no access to Python objects, no mutation), with ``*`` and ``**``
    bounded: a template cannot make the server build a gigabyte string or a huge number."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_PRODUCT:
                    raise SecurityError(f"'*' would make more than {MAX_PRODUCT} items")
        elif isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"'**' exponent above {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


#: one sandboxed environment for every rule
JINJA = _Sandbox(autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=4096)
def template(text: str) -> Template:
    """``text`` compiled once (a rule's templates are rendered on every reply)."""
    return JINJA.from_string(text)


class RuleError(ConfigError, ValueError):
    """A rule that cannot be used; the message names file, rule, field and reason."""

    def __init__(self, where: str, rule: str | None, field: str, reason: str) -> None:
        parts = [where] + ([f"rule {rule!r}"] if rule else []) + ([field] if field else [])
        super().__init__(f"{': '.join(parts)}: {reason}")
        self.where, self.rule, self.field, self.reason = where, rule, field, reason


@dataclass(frozen=True)
class TextCondition:
    form: str  # contains | regex | equals
    value: str
    pattern: re.Pattern[str] | None = None

    def describe(self) -> str:
        return f"{self.form} {self.value!r}"


@dataclass(frozen=True)
class Conditions:
    model: str | None = None
    last_user: TextCondition | None = None
    system: TextCondition | None = None
    tools: tuple[str, ...] = ()
    tool_result: str | None = None
    tool_result_content: TextCondition | None = None
    turn: int | None = None
    stream: bool | None = None
    #: ``(path as written, its steps, the value it must equal)``
    body: tuple[tuple[str, tuple[str | int, ...], Any], ...] = ()


@dataclass(frozen=True)
class ReplySpec:
    """One reply: ``content`` blocks (text templates, tool uses), or ``json``, or ``error``."""

    content: tuple[dict[str, Any], ...] = ()
    json: Any = None
    has_json: bool = False
    error: str | None = None
    stop_reason: str | None = None


@dataclass
class Rule:
    name: str
    when: Conditions
    replies: tuple[ReplySpec, ...]
    times: int | None = None
    #: where it came from: a file path, "api" or "pytest"
    origin: str = "api"
    #: the rule as written (the admin API lists it back)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "origin": self.origin}


def parse_rules(data: Any, where: str, origin: str | None = None) -> list[Rule]:
    """The rules of one file's data (``{"version": 1, "rules": [...]}``); the first problem
    is a ``RuleError`` (``problems`` lists them all)."""
    rules, errors = _parse_all(data, where, origin or where)
    if errors:
        raise errors[0]
    return rules


def problems(data: Any, where: str) -> list[RuleError]:
    """Every problem of one file's data, one per rule at most."""
    return _parse_all(data, where, where)[1]


def _parse_all(data: Any, where: str, origin: str) -> tuple[list[Rule], list[RuleError]]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        errors = sorted(validator("rules").iter_errors(data), key=lambda e: list(e.absolute_path))
        return [], [_schema_error(errors[0], data, where)] if errors else []
    top = {k: v for k, v in data.items() if k != "rules"}
    errors = [e for e in validator("rules").iter_errors({**top, "rules": []})]
    found = [_schema_error(e, data, where) for e in errors[:1]]
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in data["rules"]:
        try:
            rule = parse_rule(raw, where, origin)
        except RuleError as exc:
            found.append(exc)
            continue
        if rule.name in seen:
            found.append(
                RuleError(where, rule.name, "name", "used by an earlier rule of this file")
            )
            continue
        seen.add(rule.name)
        rules.append(rule)
    return rules, found


def parse_rule(raw: Any, where: str, origin: str) -> Rule:
    """One rule (the shape of an item of ``rules``); ``RuleError`` when it cannot be used."""
    document = {"version": 1, "rules": [raw]}
    errors = sorted(validator("rules").iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise _schema_error(errors[0], document, where)
    name = str(raw["name"])
    when = _conditions(raw.get("when") or {}, where, name)
    specs = raw["replies"] if "replies" in raw else [raw["reply"]]
    key = "replies" if "replies" in raw else "reply"
    replies = tuple(
        _reply(spec, where, name, f"{key}.{i}" if key == "replies" else key)
        for i, spec in enumerate(specs)
    )
    return Rule(name, when, replies, raw.get("times"), origin, dict(raw))


def _schema_error(error: Any, data: Any, where: str) -> RuleError:
    path = list(error.absolute_path)
    rule: str | None = None
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        item = data["rules"][path[1]]
        rule = (
            str(item.get("name")) if isinstance(item, dict) and item.get("name") else f"#{path[1]}"
        )
        path = path[2:]
    _, message = describe(error)
    field = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list((error.schema.get("properties") or {}).keys())
        unknown = sorted(k for k in error.instance if k not in known)
        if unknown:
            field = f"{field}.{unknown[0]}" if field else unknown[0]
            message = f"unknown field (known here: {', '.join(known)})"
    return RuleError(where, rule, field or "(top level)", message)


def _text(cond: dict[str, Any] | None, where: str, rule: str, field: str) -> TextCondition | None:
    if cond is None:
        return None
    ((form, value),) = cond.items()
    if form == "regex":
        try:
            return TextCondition(form, value, re.compile(value))
        except re.error as exc:
            raise RuleError(
                where, rule, f"{field}.regex", f"not a regular expression: {exc}"
            ) from None
    return TextCondition(form, value)


def _conditions(when: dict[str, Any], where: str, rule: str) -> Conditions:
    result = when.get("tool_result") or {}
    body: list[tuple[str, tuple[str | int, ...], Any]] = []
    for path, value in (when.get("body") or {}).items():
        try:
            body.append((path, parse_json_path(path), value))
        except ValueError as exc:
            raise RuleError(where, rule, f"when.body.{path}", str(exc)) from None
    return Conditions(
        model=when.get("model"),
        last_user=_text(when.get("last_user"), where, rule, "when.last_user"),
        system=_text(when.get("system"), where, rule, "when.system"),
        tools=tuple(when.get("tools") or ()),
        tool_result=result.get("name"),
        tool_result_content=_text(result.get("content"), where, rule, "when.tool_result.content"),
        turn=when.get("turn"),
        stream=when.get("stream"),
        body=tuple(body),
    )


def _reply(spec: dict[str, Any], where: str, rule: str, field: str) -> ReplySpec:
    if "error" in spec:
        try:
            faults = parse_faults(spec["error"], f"{field}.error")
        except FaultSpecError as exc:
            raise RuleError(where, rule, f"{field}.error", str(exc)) from None
        if any(f.times is not None for f in faults):
            raise RuleError(
                where, rule, f"{field}.error", "use the rule's `times`, not times= in the spec"
            )
        return ReplySpec(error=spec["error"], stop_reason=spec.get("stop_reason"))
    if "json" in spec:
        _templates(spec["json"], where, rule, f"{field}.json")
        return ReplySpec(json=spec["json"], has_json=True, stop_reason=spec.get("stop_reason"))
    blocks = tuple(spec["content"])
    for i, block in enumerate(blocks):
        _templates(block, where, rule, f"{field}.content.{i}")
    return ReplySpec(content=blocks, stop_reason=spec.get("stop_reason"))


def _templates(value: Any, where: str, rule: str, field: str) -> None:
    """Every string in ``value`` must be a template that parses and uses known variables."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return
        try:
            names = meta.find_undeclared_variables(JINJA.parse(value))
        except TemplateSyntaxError as exc:
            raise RuleError(where, rule, field, f"template does not parse: {exc.message}") from None
        unknown = sorted(names - TEMPLATE_VARS)
        if unknown:
            raise RuleError(
                where,
                rule,
                field,
                f"unknown template variable {unknown[0]!r} (known: {', '.join(sorted(TEMPLATE_VARS))})",
            )
    elif isinstance(value, dict):
        for key, sub in value.items():
            _templates(sub, where, rule, f"{field}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _templates(sub, where, rule, f"{field}.{i}")
