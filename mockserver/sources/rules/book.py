"""``RuleBook``: a server's scripted-reply rules, in order, and their state.

Rules come from files (``--rules``: a file, or a directory of ``*.yaml``), the admin API and
the pytest plugin.  Files' rules come first, in file order; rules added later are tried after
those before them.  The first rule whose ``when`` holds and that still has ``times`` left
answers; its ``replies`` are served in order, the last one repeating.  The state (how often
each rule answered) is reset by ``clear`` and whenever the rules are loaded again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...shared.counters import Counters
from .conditions import Facts, Verdict, judge
from .spec import ReplySpec, Rule, RuleError, parse_rules

#: the origins of rules that are not files
API, PYTEST = "api", "pytest"
#: the counter kind of how often each rule answered, in a shared store
ANSWERED = "rule-answers"


@dataclass(frozen=True)
class Pick:
    rule: Rule
    reply: ReplySpec
    verdict: Verdict


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The files ``paths`` name: a file as is, a directory's ``*.yaml`` / ``*.yml`` in order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(
                p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        else:
            out.append(path)
    return out


def read_file(path: Path) -> Any:
    """One rules file's data; ``RuleError`` when it cannot be read or is not YAML."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(str(path), None, "", f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RuleError(str(path), None, "", f"not valid YAML: {exc}") from None


def load_file(path: Path) -> list[Rule]:
    """The rules of one YAML file; ``RuleError`` names the file, the rule, the field."""
    return parse_rules(read_file(path), str(path))


class RuleBook:
    """The rules of one server and how often each has answered; thread-safe.

    With ``counters`` (processes sharing state) the rules are the shared store's (``replace``
    installs them), how often each answered is the store's count: ``apick``, not ``pick``."""

    def __init__(self, files: Iterable[Path] = (), counters: Counters | None = None) -> None:
        self.files = tuple(files)
        self._rules: list[Rule] = []
        self._answered: dict[str, int] = {}
        self._lock = threading.Lock()
        self.counters = counters
        if self.files:
            self.load_files()

    def read_files(self) -> list[Rule]:
        """The files' rules, read now (``RuleError`` when one is bad or a name repeats)."""
        loaded: list[Rule] = []
        seen: dict[str, str] = {}
        for path in rule_files(self.files):
            for rule in load_file(path):
                if rule.name in seen:
                    raise RuleError(
                        str(path), rule.name, "name", f"already used in {seen[rule.name]}"
                    )
                seen[rule.name] = str(path)
                loaded.append(rule)
        return loaded

    def replace(self, rules: list[Rule]) -> None:
        """Install ``rules`` as the whole list."""
        with self._lock:
            self._rules = list(rules)

    # --- the rules -------------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def load_files(self) -> int:
        """(Re-)read the rule files; the other rules stay.  All of them or none."""
        loaded = self.read_files()
        with self._lock:
            others = [r for r in self._rules if r.origin in (API, PYTEST)]
            self._check_names(loaded, others)
            self._rules = loaded + others
            self._answered.clear()
        return len(loaded)

    def add(self, rules: Iterable[Rule]) -> list[Rule]:
        """Append ``rules`` (after the others); all of them or, on a name in use, none."""
        new = list(rules)
        with self._lock:
            self._check_names(new, self._rules)
            self._rules += new
        return new

    def _check_names(self, new: list[Rule], existing: list[Rule]) -> None:
        taken = {r.name: r.origin for r in existing}
        for rule in new:
            if rule.name in taken:
                raise RuleError(
                    rule.origin,
                    rule.name,
                    "name",
                    f"a rule of this name exists (from {taken[rule.name]}): delete it first",
                )
            taken[rule.name] = rule.origin

    def remove(self, name: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.name != name]
            self._answered.pop(name, None)
            return len(self._rules) < before

    def clear(self, origin: str | None = None) -> int:
        """Remove every rule (or those of one origin) and forget how often they answered."""
        with self._lock:
            before = len(self._rules)
            self._rules = [] if origin is None else [r for r in self._rules if r.origin != origin]
            self._answered = {
                k: v for k, v in self._answered.items() if any(r.name == k for r in self._rules)
            }
            return before - len(self._rules)

    # --- answering -------------------------------------------------------------------------

    def pick(self, facts: Facts) -> Pick | None:
        """The first rule that holds and has ``times`` left, and the reply it gives now
        (counted: the next matching request gets the next reply)."""
        with self._lock:
            for rule in self._rules:
                answered = self._answered.get(rule.name, 0)
                if rule.times is not None and answered >= rule.times:
                    continue
                verdict = judge(rule.when, facts)
                if verdict.ok:
                    self._answered[rule.name] = answered + 1
                    reply = rule.replies[min(answered, len(rule.replies) - 1)]
                    return Pick(rule, reply, verdict)
        return None

    async def apick(self, facts: Facts) -> Pick | None:
        """``pick`` with the answers counted by ``self.counters`` (shared by processes): a
        rule with ``times`` answers exactly that often across processes."""
        counters = self.counters
        assert counters is not None
        for rule in self.rules():
            verdict = judge(rule.when, facts)
            if not verdict.ok:
                continue
            if rule.times is None and len(rule.replies) == 1:
                counters.later(ANSWERED, rule.name)
                return Pick(rule, rule.replies[0], verdict)
            n = await counters.incr(ANSWERED, rule.name)
            if rule.times is not None and n > rule.times:
                continue
            return Pick(rule, rule.replies[min(n - 1, len(rule.replies) - 1)], verdict)
        return None

    def closest(self, facts: Facts, n: int = 3) -> list[tuple[Rule, str]]:
        """The rules that came closest to answering (most conditions held), with the first
        condition each failed (or why it could not answer)."""
        out: list[tuple[int, int, Rule, str]] = []
        with self._lock:
            for i, rule in enumerate(self._rules):
                verdict = judge(rule.when, facts)
                why = verdict.failed
                if verdict.ok:
                    why = f"answered its {rule.times} time(s) already"
                out.append((-verdict.held, i, rule, why))
        return [(rule, why) for _, _, rule, why in sorted(out, key=lambda x: (x[0], x[1]))[:n]]

    def state(self) -> dict[str, int]:
        with self._lock:
            return dict(self._answered)
