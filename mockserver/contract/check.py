"""``mockserver check PATH...``: validate cassettes, raw ``.sse`` streams and JSON bodies.

What a file is decides how it is checked:

- ``*.sse``: a raw ``text/event-stream`` body -> :func:`conformance.check_sse_bytes`;
- ``*.yaml`` / ``*.yml`` (or JSON with ``version`` and ``interactions``): a cassette ->
  ``schemas/cassette.json``, then every interaction's request (by route) and response
  (error body for status >= 400, stream for ``events``, else the route's JSON body); a
  response marked ``disconnected: true`` or an interaction marked with ``error`` may hold
  an unfinished stream;
- ``*.error.json``: an error body; other ``*.json`` by shape: ``messages`` -> request,
  ``type: message`` -> message, ``error`` -> error, ``input_tokens`` -> count_tokens
  response, ``type: model`` / ``data`` + ``has_more`` -> models.

Directories are walked recursively; there, files of another shape (e.g. a ``manifest.json``)
are skipped and reported as such, while a file named explicitly must be recognizable.
Exit status: 0 when everything conforms, 1 on violations, 2 when a path does not exist.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..wire.sse import decode_all
from ..wire.streaming import FoldError, fold
from . import conformance as c, violations as v
from .grammar import NOT_JSON, parse_json
from .validation import schema_violations
from .violations import Violation

SUFFIXES = (".sse", ".json", ".yaml", ".yml")

HELP = """\
Validate cassettes, raw .sse streams and JSON bodies against the Messages protocol.

  *.sse              a raw text/event-stream body (stream grammar + event schemas)
  *.yaml, *.yml      a cassette: its schema, then every interaction's request and response
  *.error.json       an error body (Anthropic or DeepSeek dialect)
  *.json             by shape: request, message, error, count_tokens, models, cassette

Directories are walked recursively; files there of another shape are skipped.
Exit status: 0 when everything conforms, 1 on violations, 2 when a path does not exist."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A violation in a file; ``where`` locates it inside a cassette (else empty)."""

    where: str
    violation: Violation


@dataclass(slots=True)
class FileReport:
    path: Path
    kind: str  # stream | request | message | error | count_tokens | models | cassette | skipped
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.findings


def _unreadable(path: Path, kind: str, exc: Exception) -> FileReport:
    return FileReport(path, kind, [Finding("", Violation(v.FILE_UNREADABLE, "$", str(exc)))])


def _json_kind(path: Path, data: Any) -> str | None:
    if path.name.endswith(".error.json"):
        return "error"
    if not isinstance(data, dict):
        return None
    if "interactions" in data and "version" in data:
        return "cassette"
    if "messages" in data:
        return "request"
    if data.get("type") == "message":
        return "message"
    if "error" in data:
        return "error"
    if data.get("type") == "model" or ("data" in data and "has_more" in data):
        return "models"
    if set(data) == {"input_tokens"}:
        return "count_tokens"
    return None


_BODY_CHECKS = {
    "request": c.check_request,
    "message": c.check_message,
    "error": c.check_error,
    "models": c.check_models,
    "count_tokens": c.check_count_tokens_response,
}


def check_file(path: Path, *, explicit: bool = True) -> FileReport:
    """Check one file.  ``explicit`` is False for files found by walking a directory: those
    of an unknown shape are skipped instead of reported."""
    suffix = path.suffix.lower()
    if suffix == ".sse":
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return _unreadable(path, "stream", exc)
        return FileReport(path, "stream", [Finding("", x) for x in c.check_sse_bytes(raw)])
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            return _unreadable(path, "cassette", exc)
        if not explicit and not (isinstance(data, dict) and "interactions" in data):
            return FileReport(path, "skipped", note="YAML but not a cassette")
        return FileReport(path, "cassette", list(check_cassette(data)))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(path, "json", exc)
    data = parse_json(text)
    if data is NOT_JSON:
        return FileReport(
            path, "json", [Finding("", Violation(v.FILE_UNREADABLE, "$", "not valid JSON"))]
        )
    kind = _json_kind(path, data)
    if kind is None:
        if not explicit:
            return FileReport(path, "skipped", note="not a protocol body")
        message = "not a request, message, error, count_tokens, models body or cassette"
        return FileReport(path, "json", [Finding("", Violation(v.FILE_UNRECOGNIZED, "$", message))])
    if kind == "cassette":
        return FileReport(path, kind, list(check_cassette(data)))
    return FileReport(path, kind, [Finding("", x) for x in _BODY_CHECKS[kind](data)])


def check_cassette(data: Any) -> Iterator[Finding]:
    """Findings of a loaded cassette: its schema, then each interaction's exchange."""
    for x in schema_violations("cassette", data, v.SCHEMA_CASSETTE):
        yield Finding("", x)
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        return
    for k, inter in enumerate(interactions):
        if not isinstance(inter, dict):
            continue
        label = f"interaction {k}" + (
            f" ({inter['name']})" if isinstance(inter.get("name"), str) else ""
        )
        request = _mapping(inter.get("request"))
        response = _mapping(inter.get("response"))
        route = request.get("path")
        route = route if isinstance(route, str) else ""
        for x in c.check_request_for(route, request.get("body")):
            yield Finding(f"{label} request", x)
        yield from (
            Finding(f"{label} response", x) for x in _check_response(inter, response, route)
        )
        found = c.check_structured_output(request.get("body"), _recorded_message(response))
        yield from (Finding(f"{label} response", x) for x in found)


def _recorded_message(response: dict[str, Any]) -> Any:
    """The message a recorded reply carries (a stream folded), or None."""
    events = response.get("events")
    if isinstance(events, list):
        pairs = [(e.get("event"), e.get("data")) for e in events if isinstance(e, dict)]
        try:
            return fold((name, data) for name, data in pairs if isinstance(data, dict))
        except FoldError:
            return None
    body = response.get("body")
    if body is None and isinstance(response.get("body_text"), str):
        parsed = parse_json(response["body_text"])
        body = None if parsed is NOT_JSON else parsed
    return body


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_response(inter: dict[str, Any], response: dict[str, Any], route: str) -> list[Violation]:
    status = response.get("status")
    if not isinstance(status, int):
        return []  # the cassette schema reported it
    events = response.get("events")
    if isinstance(events, list):
        cut = response.get("disconnected") is True or inter.get("error") is not None
        pairs = [(e.get("event"), e.get("data")) if isinstance(e, dict) else e for e in events]
        return c.check_stream(pairs, complete=not cut) + _raw_mismatches(events)
    if "body" in response:
        return c.check_response(route, status, body=response["body"])
    text = response.get("body_text")
    data = parse_json(text) if isinstance(text, str) else NOT_JSON
    if data is not NOT_JSON:
        return c.check_response(route, status, body=data)
    if any(key in response for key in ("body_text", "body_b64", "body_text_b64")):
        return [Violation(v.RESPONSE_NOT_JSON, "$", f"the recorded {status} body is not JSON")]
    return []


def _raw_mismatches(events: list[Any]) -> list[Violation]:
    """A recorded ``raw`` frame must decode to the event's name and data."""
    out: list[Violation] = []
    for i, event in enumerate(events):
        raw = _raw_bytes(event)
        if raw is None:
            continue
        decoded, _ = decode_all(raw)
        data = event.get("data")
        same = len(decoded) == 1 and decoded[0].name == event.get("event")
        if same:
            text = decoded[0].data
            same = text == data if isinstance(data, str) else parse_json(text) == data
        if not same:
            message = "raw frame does not decode to this event's name and data"
            out.append(Violation(v.CASSETTE_RAW_MISMATCH, "$.raw", message, i))
    return out


def _raw_bytes(event: Any) -> bytes | None:
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("raw"), str):
        return str(event["raw"]).encode()
    if isinstance(event.get("raw_b64"), str):
        try:
            return base64.b64decode(event["raw_b64"], validate=True)
        except ValueError:
            return b""
    return None


def _walk(path: Path) -> Iterator[tuple[Path, bool]]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if child.is_file() and not hidden and child.suffix.lower() in SUFFIXES:
                yield child, False
    else:
        yield path, True


def check_paths(paths: Sequence[Path]) -> list[FileReport]:
    """Reports for files and (recursively) directories, in order."""
    return [check_file(file, explicit=explicit) for path in paths for file, explicit in _walk(path)]


def _summary(reports: Sequence[FileReport]) -> dict[str, int]:
    checked = [r for r in reports if r.kind != "skipped"]
    return {
        "files": len(checked),
        "ok": sum(r.ok for r in checked),
        "failed": sum(not r.ok for r in checked),
        "violations": sum(len(r.findings) for r in checked),
        "skipped": len(reports) - len(checked),
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render_text(reports: Sequence[FileReport], *, quiet: bool = False) -> str:
    """The human-readable report: one line per file (failures only with ``quiet``), then one
    indented line per violation: where, event index, rule, JSON path, message."""
    lines: list[str] = []
    for report in reports:
        if report.kind == "skipped":
            if not quiet:
                lines.append(f"skip  {report.path}  ({report.note})")
            continue
        if report.ok:
            if not quiet:
                lines.append(f"ok    {report.path}  ({report.kind})")
            continue
        lines.append(f"FAIL  {report.path}  ({report.kind})")
        for finding in report.findings:
            x = finding.violation
            parts = [finding.where] if finding.where else []
            if x.event is not None:
                parts.append(f"event {x.event}")
            parts += [x.rule, x.path, x.message]
            lines.append("      " + "  ".join(parts))
    s = _summary(reports)
    lines.append(
        f"{_count(s['files'], 'file')} checked: {s['ok']} ok, {s['failed']} with violations "
        f"({_count(s['violations'], 'violation')}), {s['skipped']} skipped"
    )
    return "\n".join(lines) + "\n"


def render_json(reports: Sequence[FileReport]) -> str:
    files = [
        {
            "path": str(r.path),
            "kind": r.kind,
            "ok": r.ok,
            "note": r.note,
            "violations": [{"where": f.where, **f.violation.to_dict()} for f in r.findings],
        }
        for r in reports
    ]
    return json.dumps({"files": files, "summary": _summary(reports)}, indent=2, ensure_ascii=False)


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or directories")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="list only files with violations"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    return parser


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``check`` on the ``mockserver`` command line; the parsed arguments carry
    ``func`` (:func:`run`)."""
    parser = subparsers.add_parser(
        "check",
        help="validate cassettes, .sse streams and JSON bodies against the protocol",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser)


def run(args: argparse.Namespace) -> int:
    missing = [path for path in args.paths if not path.exists()]
    for path in missing:
        print(f"mockserver check: {path}: no such file or directory", file=sys.stderr)
    if missing:
        return 2
    reports = check_paths(args.paths)
    sys.stdout.write(
        render_json(reports) + "\n" if args.json else render_text(reports, quiet=args.quiet)
    )
    return 0 if all(r.ok for r in reports) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``mockserver check`` as a standalone entry point (``argv`` without the command)."""
    parser = argparse.ArgumentParser(
        prog="mockserver check",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return run(_configure(parser).parse_args(argv))
