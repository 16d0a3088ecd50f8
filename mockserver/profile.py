"""Endpoint profiles: the data that makes one Anthropic-format endpoint differ from another."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .wire.errors import ConfigError

DEFAULT_PROFILE = "deepseek-v3-anthropic"

_CHOICES: dict[str, tuple[str, ...]] = {
    "dialect": ("anthropic", "deepseek"),
    "context_rule": ("prompt", "prompt_plus_max_tokens"),
    "unknown_model": ("reject", "map"),
    "thinking": ("ignore", "reject"),
    "media_blocks": ("reject", "ignore"),
    "max_tokens_over_limit": ("reject", "clamp"),
    "structured_output": ("honor", "ignore", "reject"),
}


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    created_at: str


@dataclass(frozen=True)
class Prices:
    input: float
    output: float
    cache_read: float
    cache_write: float
    #: price of 1-hour cache writes (``usage.cache_creation.ephemeral_1h_input_tokens``);
    #: None = ``cache_write`` (Anthropic: 5m writes 1.25x input, 1h writes 2x)
    cache_write_1h: float | None = None


@dataclass(frozen=True)
class CachePolicy:
    policy: str = "automatic-prefix"
    unit_tokens: int = 64
    min_cacheable_tokens: int = 1024
    ttl_seconds: float | None = None


@dataclass(frozen=True)
class Overheads:
    per_request: int = 3
    per_message: int = 4
    per_tool: int = 8
    per_system: int = 2


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[ModelInfo, ...]
    context_window: int
    max_output_tokens: int
    dialect: str
    context_rule: str
    unknown_model: str
    thinking: str
    media_blocks: str
    max_tokens_over_limit: str
    version_required: bool
    accepted_versions: frozenset[str]
    tools: bool
    parallel_tool_calls: bool
    message_id_prefix: str
    tool_use_id_prefix: str
    request_id_prefix: str
    ping: bool
    max_request_bytes: int
    prices: Prices
    cache: CachePolicy
    overheads: Overheads
    ratelimit: dict[str, int] = field(default_factory=dict)
    #: upper bound of ``temperature`` (Anthropic 1.0, DeepSeek 2.0)
    temperature_max: float = 2.0
    #: ``output_config.format`` (JSON Schema replies): honor | ignore (prose) | reject (400)
    structured_output: str = "honor"
    source: str = ""

    @property
    def model_ids(self) -> frozenset[str]:
        return frozenset(m.id for m in self.models)

    def model(self, model_id: str) -> ModelInfo | None:
        for m in self.models:
            if m.id == model_id:
                return m
        return None


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ConfigError(f"profile {where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"profile {where}: {key!r} must be {kind}, got {value!r}")
    return value


#: every key a profile may have: top-level keys, and the keys of its nested mappings
KEYS: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "models": None,
    "context_window": None,
    "max_output_tokens": None,
    **dict.fromkeys(_CHOICES),
    "temperature_max": None,
    "anthropic_version": ("required", "accepted"),
    "tools": None,
    "parallel_tool_calls": None,
    "id_prefixes": ("message", "tool_use", "request"),
    "ping": None,
    "max_request_bytes": None,
    "prices_per_million": ("input", "output", "cache_read", "cache_write", "cache_write_1h"),
    "cache": ("policy", "unit_tokens", "min_cacheable_tokens", "ttl_seconds"),
    "token_overheads": ("per_request", "per_message", "per_tool", "per_system"),
    "ratelimit": ("requests_limit", "input_tokens_limit", "output_tokens_limit"),
}


def _check_keys(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key not in KEYS:
            raise ConfigError(
                f"profile {where}: unknown key {key!r} (known: {', '.join(sorted(KEYS))})"
            )
        nested = KEYS[key]
        if nested is not None and isinstance(value, dict):
            unknown = sorted(str(k) for k in value if k not in nested)
            if unknown:
                raise ConfigError(
                    f"profile {where}: unknown key {key}.{unknown[0]} "
                    f"(known: {', '.join(f'{key}.{k}' for k in nested)})"
                )


def apply_settings(data: Any, settings: tuple[str, ...], where: str) -> Any:
    """``data`` with each ``KEY=VALUE`` of ``settings`` applied (``--set``): ``KEY`` a profile
    key, ``section.key`` for a nested one; ``VALUE`` read as YAML (``8192``, ``clamp``,
    ``null``, ``[a, b]``).  The result is validated as a whole by ``parse_profile``."""
    if not settings:
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"profile {where}: top level must be a mapping")
    out = dict(data)
    for item in settings:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE, e.g. max_tokens_over_limit=clamp"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from exc
        section, dot, sub = key.partition(".")
        if section not in KEYS or (
            dot and (KEYS[section] is None or sub not in (KEYS[section] or ()))
        ):
            known = sorted(
                [k for k in KEYS if KEYS[k] is None]
                + [f"{k}.{s}" for k, subs in KEYS.items() if subs for s in subs]
            )
            raise ConfigError(
                f"--set {item!r}: unknown profile key {key!r} (known: {', '.join(known)})"
            )
        if dot:
            nested = out.get(section)
            out[section] = {**(nested if isinstance(nested, dict) else {}), sub: value}
        else:
            out[section] = value
    return out


def parse_profile(data: Any, where: str = "<data>") -> Profile:
    """Validate a profile mapping eagerly; every problem is a ``ConfigError`` naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"profile {where}: top level must be a mapping")
    _check_keys(data, where)
    for key, choices in _CHOICES.items():
        value = data.get(key, choices[0])
        if value not in choices:
            raise ConfigError(f"profile {where}: {key!r} must be one of {choices}, got {value!r}")
    models_raw = _get(data, "models", list, where)
    if not models_raw:
        raise ConfigError(f"profile {where}: 'models' must list at least one model")
    models = []
    for m in models_raw:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            raise ConfigError(f"profile {where}: each model needs a string 'id'")
        models.append(
            ModelInfo(m["id"], str(m.get("display_name", m["id"])), str(m.get("created_at", "")))
        )
    version = data.get("anthropic_version", {}) or {}
    ids = data.get("id_prefixes", {}) or {}
    prices = _get(data, "prices_per_million", dict, where)
    cache = data.get("cache", {}) or {}
    over = data.get("token_overheads", {}) or {}
    try:
        cache_policy = CachePolicy(
            policy=str(cache.get("policy", "automatic-prefix")),
            unit_tokens=int(cache.get("unit_tokens", 64)),
            min_cacheable_tokens=int(cache.get("min_cacheable_tokens", 1024)),
            ttl_seconds=None if cache.get("ttl_seconds") is None else float(cache["ttl_seconds"]),
        )
        profile = Profile(
            name=str(_get(data, "name", str, where)),
            models=tuple(models),
            context_window=int(_get(data, "context_window", int, where)),
            max_output_tokens=int(_get(data, "max_output_tokens", int, where)),
            dialect=str(data.get("dialect", "anthropic")),
            context_rule=str(data.get("context_rule", "prompt")),
            unknown_model=str(data.get("unknown_model", "reject")),
            thinking=str(data.get("thinking", "ignore")),
            media_blocks=str(data.get("media_blocks", "reject")),
            max_tokens_over_limit=str(data.get("max_tokens_over_limit", "reject")),
            version_required=bool(version.get("required", True)),
            accepted_versions=frozenset(str(v) for v in version.get("accepted", ["2023-06-01"])),
            tools=bool(data.get("tools", True)),
            parallel_tool_calls=bool(data.get("parallel_tool_calls", True)),
            message_id_prefix=str(ids.get("message", "msg_")),
            tool_use_id_prefix=str(ids.get("tool_use", "toolu_")),
            request_id_prefix=str(ids.get("request", "req_")),
            ping=bool(data.get("ping", True)),
            max_request_bytes=int(data.get("max_request_bytes", 32 * 1024 * 1024)),
            prices=Prices(
                input=float(prices["input"]),
                output=float(prices["output"]),
                cache_read=float(prices.get("cache_read", prices["input"])),
                cache_write=float(prices.get("cache_write", prices["input"])),
                cache_write_1h=(
                    None
                    if prices.get("cache_write_1h") is None
                    else float(prices["cache_write_1h"])
                ),
            ),
            cache=cache_policy,
            overheads=Overheads(**{k: int(v) for k, v in over.items()}),
            ratelimit={str(k): int(v) for k, v in (data.get("ratelimit") or {}).items()},
            temperature_max=float(data.get("temperature_max", 2.0)),
            structured_output=str(data.get("structured_output", "honor")),
            source=where,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"profile {where}: {exc}") from exc
    if cache_policy.policy not in ("automatic-prefix", "breakpoints", "none"):
        raise ConfigError(
            f"profile {where}: cache.policy must be automatic-prefix|breakpoints|none"
        )
    if profile.context_window <= 0 or profile.max_output_tokens <= 0:
        raise ConfigError(f"profile {where}: context_window and max_output_tokens must be > 0")
    if not profile.temperature_max > 0:
        raise ConfigError(f"profile {where}: temperature_max must be > 0")
    return profile


def builtin_names() -> list[str]:
    return sorted(
        f.name.removesuffix(".yaml")
        for f in resources.files("mockserver.profiles").iterdir()
        if f.name.endswith(".yaml")
    )


#: libyaml's safe loader where PyYAML was built with it (several times faster)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_profile(name_or_path: str | None = None, settings: tuple[str, ...] = ()) -> Profile:
    """Load a built-in profile by name, or a YAML file by path; ``settings`` are ``--set
    KEY=VALUE`` changes applied before it is validated."""
    ref = name_or_path or DEFAULT_PROFILE
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"profile file not found: {ref}")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        res = resources.files("mockserver.profiles") / f"{ref}.yaml"
        if not res.is_file():
            raise ConfigError(
                f"unknown profile {ref!r}: built-in profiles are {', '.join(builtin_names())}; "
                "or pass a path to a YAML file"
            )
        text = res.read_text(encoding="utf-8")
        where = ref
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {where}: not valid YAML: {exc}") from exc
    if settings:
        where = f"{where} with --set {' '.join(settings)}"
    return parse_profile(apply_settings(data, settings, where), where)
