"""``mockserver cassettes list|show|lint|redact``: inspect and maintain cassettes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import default_cassettes_dir
from ..wire import sse
from ..wire.errors import CassetteError
from ..wire.streaming import FoldError, fold
from . import cassette as cas, store
from .calibrate import add_calibrate_parser
from .checks import lint_file
from .matching import STAR, PathPart, parse_path


def _files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths or [default_cassettes_dir()]:
        out.extend(cas.discover(path) if path.is_dir() else [path])
    return out


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _prompt(body: Any) -> str:
    """The text of the last user turn (what a reader recognizes a request by)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [b.get("text", "") for b in content if isinstance(b, dict)]
                kinds = [b.get("type", "?") for b in content if isinstance(b, dict)]
                return " ".join(t for t in texts if t) or "[" + ", ".join(kinds) + "]"
    return ""


def _message(resp: cas.RecordedResponse) -> dict[str, Any] | None:
    if resp.events is not None:
        try:
            return fold((e.name, e.json()) for e in resp.events)
        except (FoldError, ValueError):
            return None
    body = resp.json_body()
    return body if isinstance(body, dict) and body.get("type") == "message" else None


def _answer(inter: cas.Interaction) -> str:
    resp = inter.response
    if inter.error:
        return f"[{inter.error}]"
    message = _message(resp)
    if message is None:
        body = resp.json_body()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return f"{err.get('type')}: {err.get('message')}"
        if resp.events:
            return f"[{len(resp.events)} events]"
        return "[no body]"
    parts = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            parts.append(f"{block.get('name')}({sse.dumps(block.get('input', {}))})")
        else:
            parts.append(f"[{block.get('type')}]")
    return " ".join(parts)


def _kind(inter: cas.Interaction) -> str:
    resp = inter.response
    kind = "stream" if resp.events is not None else "json"
    return kind + (" disconnected" if resp.disconnected else "")


def cmd_list(args: argparse.Namespace) -> int:
    code = 0
    for path in _files(args.paths):
        try:
            c = cas.load(path)
        except CassetteError as exc:
            print(f"{path}: ERROR {exc}")
            code = 1
            continue
        n = len(c.interactions)
        print(f"{path}  ({n} interaction{'s' if n != 1 else ''})")
        for i, inter in enumerate(c.interactions):
            req = inter.request
            body = req.body if isinstance(req.body, dict) else {}
            print(
                f"  #{i:<3} {req.method} {req.path}  {body.get('model', '-')}  {_kind(inter)}  "
                f"{inter.response.status}  {_short(_prompt(req.body), 40)!r} -> "
                f"{_short(_answer(inter))!r}"
            )
    return code


def cmd_show(args: argparse.Namespace) -> int:
    c = cas.load(args.path)
    indexes = [args.index] if args.index is not None else range(len(c.interactions))
    for i in indexes:
        if not 0 <= i < len(c.interactions):
            print(
                f"{args.path}: no interaction #{i} (it has {len(c.interactions)})", file=sys.stderr
            )
            return 1
        inter = c.interactions[i]
        if args.wire:
            sys.stdout.buffer.write(inter.response.wire())
            sys.stdout.flush()
            continue
        if args.yaml:
            print(cas.dump_yaml([inter.to_dict()]), end="")
            continue
        print(_describe(args.path, i, inter))
    return 0


def _describe(path: Path, i: int, inter: cas.Interaction) -> str:
    req, resp = inter.request, inter.response
    body = req.body if isinstance(req.body, dict) else {}
    lines = [f"{path} #{i}" + (f"  ({inter.name})" if inter.name else "")]
    flags = " (stream)" if body.get("stream") else ""
    lines.append(f"request:  {req.method} {req.path}{flags}  model {body.get('model')}")
    lines += [f"  {k}: {v}" for k, v in req.headers.items()]
    system = body.get("system")
    if system:
        lines.append(
            f"  system: {_short(system if isinstance(system, str) else json.dumps(system), 100)}"
        )
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            lines.append(f"  [{m.get('role')}] {_short(text, 100)}")
    lines.append(
        f"response: {resp.status}  {_kind(inter)}"
        + (f"  error: {inter.error}" if inter.error else "")
    )
    if resp.events is not None:
        span = f" over {resp.at_ms[-1]:.1f} ms" if resp.at_ms else ""
        lines.append(
            f"  {len(resp.events)} events{span}, {sum(1 for e in resp.events if e.raw)} with raw"
        )
    lines += [f"  {k}: {v}" for k, v in resp.headers.items()]
    message = _message(resp)
    if message is not None:
        usage = sse.dumps(message.get("usage") or {})
        lines.append(
            f"  {message.get('id')}  stop_reason {message.get('stop_reason')}  usage {usage}"
        )
    lines.append(f"  => {_answer(inter)}")
    return "\n".join(lines)


def cmd_lint(args: argparse.Namespace) -> int:
    files = _files(args.paths)
    bad = 0
    for path in files:
        problems = lint_file(path)
        if problems:
            bad += 1
            print("\n".join(problems))
        elif not args.quiet:
            print(f"{path}: OK")
    print(f"{len(files)} cassette(s), {bad} with problems", file=sys.stderr)
    return 1 if bad else 0


def _edit(value: Any, parts: Sequence[PathPart], change: Callable[[Any, Any], None]) -> int:
    """Call ``change(container, key)`` for every place ``parts`` selects; the count."""
    if not parts:
        return 0
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        keys = list(value) if head is STAR else [head] if head in value else []
    elif isinstance(value, list):
        n = len(value)
        keys = (
            list(range(n))
            if head is STAR
            else [head]
            if isinstance(head, int) and -n <= head < n
            else []
        )
    else:
        return 0
    count = 0
    for key in reversed(keys):  # deleting from a list back to front keeps indexes valid
        if rest:
            count += _edit(value[key], rest, change)
        else:
            change(value, key)
            count += 1
    return count


def redact(c: cas.Cassette, headers: Sequence[str], paths: Sequence[str], replace: Any) -> int:
    """Remove (or replace with ``replace`` when not None) headers and JSON paths, which address
    an interaction (``$.request.body.metadata``, ``$.response.events[*].data.message.id``)."""

    def change(container: Any, key: Any) -> None:
        if replace is None:
            del container[key]
        else:
            container[key] = replace

    parsed = [parse_path(x) for x in paths]
    count = 0
    for i, inter in enumerate(c.interactions):
        d = inter.to_dict()
        n = 0
        for side in ("request", "response"):
            h = d[side].get("headers") or {}
            for name in headers:
                if name.lower() in h:
                    n += 1
                    change(h, name.lower())
        for parts in parsed:
            before = json.dumps(d, sort_keys=True)
            hits = _edit(d, parts, change)
            if hits and json.dumps(d, sort_keys=True) != before:
                n += hits
                _drop_stale_text(d, parts)
        if n:
            c.interactions[i] = cas.interaction_from_dict(d)
            count += n
    return count


def _drop_stale_text(d: dict[str, Any], parts: Sequence[PathPart]) -> None:
    """Exact-text copies (``raw``, ``body_text``) would still hold what was redacted."""
    resp = d.get("response") or {}
    if parts[:2] == ("response", "events"):
        for event in resp.get("events") or []:
            event.pop("raw", None)
    elif parts[:2] == ("response", "body"):
        resp.pop("body_text", None)


def cmd_redact(args: argparse.Namespace) -> int:
    if not args.header and not args.path and not args.string:
        print("cassettes redact: give --header, --path or --string", file=sys.stderr)
        return 2
    try:
        replace = json.loads(args.replace) if args.replace is not None else None
    except ValueError:
        replace = args.replace
    try:
        for p in args.path:
            parse_path(p)
    except ValueError as exc:
        print(f"cassettes redact: {exc}", file=sys.stderr)
        return 2
    for path in _files(args.paths):
        counts = [0]

        def change(c: cas.Cassette, counts: list[int] = counts) -> None:
            counts[0] = redact(c, args.header, args.path, replace)
            if args.string:
                text = cas.dumps(c)
                hits = sum(text.count(s) for s in args.string)
                if hits:
                    fresh = cas.loads(store.scrub(text, args.string), validate=False)
                    c.interactions = fresh.interactions
                    counts[0] += hits

        store.update(path, change)
        print(f"{path}: redacted {counts[0]} occurrence(s)")
    return 0


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("cassettes", help="list, show, lint, redact and calibrate cassettes")
    actions = sp.add_subparsers(dest="cassettes_action", metavar="ACTION", required=True)
    default = "(default: the shipped example cassettes)"
    ls = actions.add_parser("list", help="list the interactions of cassettes")
    ls.add_argument("paths", nargs="*", type=Path, help=f"cassette files or directories {default}")
    ls.set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="show interactions of one cassette readably")
    show.add_argument("path", type=Path)
    show.add_argument("index", nargs="?", type=int, help="interaction number (default: all)")
    form = show.add_mutually_exclusive_group()
    form.add_argument("--yaml", action="store_true", help="print the interaction as stored")
    form.add_argument("--wire", action="store_true", help="print the exact response bytes")
    show.set_defaults(func=cmd_show)
    lint = actions.add_parser(
        "lint", help="check cassettes: schema, raw frames, contract checks; exit 1 on problems"
    )
    lint.add_argument(
        "paths", nargs="*", type=Path, help=f"cassette files or directories {default}"
    )
    lint.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    lint.set_defaults(func=cmd_lint)
    red = actions.add_parser(
        "redact",
        help="remove or replace headers, JSON paths or strings in cassettes, in place (atomically)",
        description="JSON paths address one interaction, e.g. $.request.body.metadata, "
        "$.response.events[*].data.message.id, $.response.body.id.",
    )
    red.add_argument("paths", nargs="+", type=Path, help="cassette files or directories")
    red.add_argument("--header", action="append", default=[], help="header name (repeatable)")
    red.add_argument("--path", action="append", default=[], help="JSON path (repeatable)")
    red.add_argument("--string", action="append", default=[], help="literal text, anywhere")
    red.add_argument(
        "--replace", help="put this value (JSON, else a string) in place instead of removing"
    )
    red.set_defaults(func=cmd_redact)
    add_calibrate_parser(actions)  # calibrate.py: fit token overheads to recorded usage
