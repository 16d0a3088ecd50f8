"""Where faults come from: the request header, rules (admin API, config file, pytest marker).

A ``FaultRule`` is ``{"fault": SPEC, "match": {"path", "model", "body": {JSONPATH: value}},
"times": N, "probability": P, "seed": S}``: every given ``match`` key must hold (``path``
and ``model`` are shell-style patterns, ``body`` maps ``$.a.b[0]`` paths to the JSON value
found there); ``times`` spends the rule after N applications; ``probability`` applies it to a
seeded random share of the matching requests (reproducible for the same request order).

``FaultBook`` (``state.faults``) holds the rules and the per-request-key counters of
``times=N`` in a spec, and turns an ``ApiRequest`` into a ``FaultPlan``.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..cassettes import matching
from ..shared.counters import Counters
from ..wire import protocol as p
from ..wire.errors import ConfigError
from ..wire.faults import Fault, FaultPlan, FaultSpecError, parse_faults
from ..wire.json_path import json_equal, json_path_get, parse_json_path
from ..wire.request import ApiRequest

#: the plan of a request without faults (plans are immutable: one object serves them all)
NO_FAULTS = FaultPlan()
#: counter kinds in a shared store: a rule's applications, its probability draws, and the
#: ``times=N`` of a fault per request key
HITS, DRAWS, TIMES = "fault-rule-hits", "fault-rule-draws", "fault-times"
_RULE_KEYS = frozenset({"fault", "match", "times", "probability", "seed", "id"})
_MATCH_KEYS = frozenset({"path", "model", "body"})


def request_key(req: ApiRequest) -> str:
    """Canonical key of a request: what an SDK's retries of one call have in common (the
    record/replay layer's key: method, path and normalized body, ``stream`` left out)."""
    return matching.request_key(req.method, req.path, req.body)


@dataclass
class FaultRule:
    """A fault for the requests that match; ``times``/``probability`` limit how often."""

    faults: tuple[Fault, ...]
    path: str | None = None
    model: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    times: int | None = None
    probability: float | None = None
    seed: int = 0
    origin: str = "api"
    id: int = 0
    hits: int = 0
    #: the rule's name in a shared store (its counters are kept under it)
    key: str = ""
    _steps: dict[str, tuple[str | int, ...]] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        try:
            self._steps = {path: parse_json_path(path) for path in self.body}
        except ValueError as exc:
            raise FaultSpecError(str(exc)) from None
        self._rng = random.Random(self.seed)

    @classmethod
    def from_json(cls, data: Any, origin: str = "api") -> FaultRule:
        """Build from the admin/config shape; a ``FaultSpecError`` names what is wrong."""
        if isinstance(data, str):
            return cls(parse_faults(data, "fault"), origin=origin)
        if not isinstance(data, Mapping):
            raise FaultSpecError("a fault rule must be an object with a 'fault' spec")
        unknown = set(data) - _RULE_KEYS
        if unknown:
            raise FaultSpecError(
                f"unknown rule field(s) {sorted(unknown)}; allowed {sorted(_RULE_KEYS)}"
            )
        spec = data.get("fault")
        if not isinstance(spec, str):
            raise FaultSpecError(
                "rule field 'fault' must be a spec string like 'overloaded;times=2'"
            )
        match = data.get("match") or {}
        if not isinstance(match, Mapping) or set(match) - _MATCH_KEYS:
            raise FaultSpecError(
                f"rule field 'match' must be an object with keys {sorted(_MATCH_KEYS)}"
            )
        for key in ("path", "model"):
            if match.get(key) is not None and not isinstance(match[key], str):
                raise FaultSpecError(f"match.{key} must be a string")
        body = match.get("body") or {}
        if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
            raise FaultSpecError("match.body must map JSON paths like '$.a.b[0]' to values")
        times, prob, seed = data.get("times"), data.get("probability"), data.get("seed", 0)
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 1
        ):
            raise FaultSpecError(f"rule field 'times' must be an integer >= 1, got {times!r}")
        if prob is not None and (
            isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1
        ):
            raise FaultSpecError(f"rule field 'probability' must be between 0 and 1, got {prob!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise FaultSpecError(f"rule field 'seed' must be an integer, got {seed!r}")
        return cls(
            parse_faults(spec, "fault"),
            path=match.get("path"),
            model=match.get("model"),
            body=dict(body),
            times=times,
            probability=None if prob is None else float(prob),
            seed=seed,
            origin=origin,
        )

    def spec(self) -> dict[str, Any]:
        """The rule as ``from_json`` takes it (what a shared store keeps)."""
        out = {k: v for k, v in self.to_json().items() if k in _RULE_KEYS and v is not None}
        out.pop("id", None)
        if not out.get("match"):
            out.pop("match", None)
        return out

    def to_json(self) -> dict[str, Any]:
        match: dict[str, Any] = {}
        if self.path is not None:
            match["path"] = self.path
        if self.model is not None:
            match["model"] = self.model
        if self.body:
            match["body"] = self.body
        return {
            "id": self.id,
            "fault": ", ".join(f.text for f in self.faults),
            "match": match,
            "times": self.times,
            "remaining": None if self.times is None else max(self.times - self.hits, 0),
            "probability": self.probability,
            "seed": self.seed,
            "hits": self.hits,
            "origin": self.origin,
        }

    def matches(self, req: ApiRequest) -> bool:
        if self.path is not None and not fnmatch.fnmatchcase(req.path, self.path):
            return False
        if self.model is not None and not fnmatch.fnmatchcase(req.model or "", self.model):
            return False
        return all(
            json_equal(json_path_get(req.body, self._steps[path]), value)
            for path, value in self.body.items()
        )

    async def afire(self, req: ApiRequest, counters: Counters) -> bool:
        """``fire`` with the counts kept by ``counters`` (shared by processes): ``times`` is
        exact across processes, ``probability`` draws the n-th number of the rule's seed
        for its n-th matching request wherever that arrives."""
        if not self.matches(req):
            return False
        if self.probability is not None:
            n = await counters.incr(DRAWS, self.key)
            if not random.Random(f"{self.seed}:{n}").random() < self.probability:
                return False
        if self.times is None:
            counters.later(HITS, self.key)
            return True
        return await counters.incr(HITS, self.key) <= self.times

    def fire(self, req: ApiRequest) -> bool:
        """Whether the rule applies to ``req`` now (spends one of ``times`` when it does)."""
        if not self.matches(req):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.probability is not None and not self._rng.random() < self.probability:
            return False
        self.hits += 1
        return True


class FaultBook:
    """The fault rules and ``times`` counters of one server (``state.faults``); thread-safe.

    With ``counters`` (processes sharing state) the rules are the shared store's (``replace``
    installs them) and every count is the store's: ``aplan`` instead of ``plan``."""

    def __init__(self, counters: Counters | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self.counters = counters

    def replace(self, rules: list[FaultRule]) -> None:
        """Install ``rules`` (ids and keys set) as the whole list."""
        with self._lock:
            self._rules = list(rules)

    @property
    def idle(self) -> bool:
        """No rule: a request without the fault header gets no fault."""
        return not self._rules

    def add(self, rule: FaultRule | Mapping[str, Any] | str, origin: str = "api") -> FaultRule:
        """Add a rule (a ``FaultRule``, its JSON shape, or a bare spec matching everything)."""
        if not isinstance(rule, FaultRule):
            rule = FaultRule.from_json(rule, origin)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def clear(self, origin: str | None = None) -> int:
        """Remove the rules (of one origin, or all, with every ``times`` counter)."""
        with self._lock:
            before = len(self._rules)
            if origin is None:
                self._rules.clear()
                self._counts.clear()
            else:
                self._rules = [r for r in self._rules if r.origin != origin]
            return before - len(self._rules)

    def load_config(self, path: Path) -> int:
        """Replace the config-file rules with those of ``path``; ``ConfigError`` when bad."""
        rules = load_rules(path)
        with self._lock:
            self._rules = [r for r in self._rules if r.origin != "config"]
        for rule in rules:
            self.add(rule)
        return len(rules)

    def plan(self, req: ApiRequest) -> FaultPlan:
        """The faults ``req`` gets: its header's, then the firing rules'; ``times`` counted
        per canonical request key.  A bad header raises ``FaultSpecError``."""
        header = req.headers.get(p.H_FAULT, "")
        if not header and not self._rules:  # the usual request: nothing to parse or fire
            return NO_FAULTS
        faults: list[Fault] = list(parse_faults(header)) if header.strip() else []
        with self._lock:
            for rule in self._rules:
                if rule.fire(req):
                    faults.extend(rule.faults)
            if not any(f.times is not None for f in faults):
                return FaultPlan.of(faults)
            key = request_key(req)
            return FaultPlan.of(self._count(faults, key))

    async def aplan(self, req: ApiRequest) -> FaultPlan:
        """``plan`` with the counts kept by ``self.counters`` (shared by processes)."""
        counters = self.counters
        assert counters is not None
        header = req.headers.get(p.H_FAULT, "")
        faults: list[Fault] = list(parse_faults(header)) if header.strip() else []
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if await rule.afire(req, counters):
                faults.extend(rule.faults)
        if not any(f.times is not None for f in faults):
            return FaultPlan.of(faults)
        key = request_key(req)
        kept = []
        for fault in faults:
            if fault.times is None or await counters.incr(TIMES, f"{fault.text}\x1f{key}") <= (
                fault.times
            ):
                kept.append(fault)
        return FaultPlan.of(kept)

    def _count(self, faults: Iterable[Fault], key: str) -> Iterable[Fault]:
        for fault in faults:
            if fault.times is None:
                yield fault
                continue
            ckey = (fault.text, key)
            seen = self._counts.get(ckey, 0)
            if seen < fault.times:
                self._counts[ckey] = seen + 1
                yield fault


def load_rules(path: Path) -> list[FaultRule]:
    """Read a YAML list of rules (the admin API's shape); any problem is a ``ConfigError``."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"fault config {path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"fault config {path}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"fault config {path}: top level must be a list of rules")
    rules = []
    for i, item in enumerate(data):
        try:
            rules.append(FaultRule.from_json(item, origin="config"))
        except FaultSpecError as exc:
            raise ConfigError(f"fault config {path}: rule {i}: {exc}") from exc
    return rules
