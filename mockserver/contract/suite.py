"""The live conformance suite: ``mockserver conformance --base-url URL``.

Runs protocol cases against any endpoint (the real one, a gateway, or mockserver itself) and
checks every reply with the same schemas and stream grammar the rest of the kit uses.
Synchronous and dependency-free on the client side (``http.client``), so it measures the
endpoint, not a client library.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .suite_cases import DEFAULT_MODEL, ReplyCases
from .suite_client import Client, Failed
from .suite_errors import ErrorCases


@dataclass
class Outcome:
    case: str
    passed: bool
    why: str = ""
    dialect: str | None = None
    status: int | None = None


class Suite(ReplyCases, ErrorCases):
    """Every case: the reply cases, then the error cases, each group in definition order."""

    def cases(self) -> Iterator[tuple[str, Callable[[], None]]]:
        for group in (ReplyCases, ErrorCases):
            for name in group.__dict__:
                if name.startswith("case_"):
                    yield name.removeprefix("case_"), getattr(self, name)


def run_suite(
    base_url: str,
    *,
    api_key: str = "sk-conformance",
    model: str = DEFAULT_MODEL,
    dialect: str = "anthropic",
    version: str = "2023-06-01",
    timeout: float = 60.0,
    only: list[str] | None = None,
) -> list[Outcome]:
    suite = Suite(Client(base_url, api_key, version, timeout), model, dialect)
    outcomes = []
    for name, fn in suite.cases():
        if only and name not in only:
            continue
        suite.seen_dialect = None
        try:
            fn()
            outcomes.append(Outcome(name, True, dialect=suite.seen_dialect))
        except Failed as exc:
            outcomes.append(Outcome(name, False, str(exc), suite.seen_dialect))
        except (
            OSError,
            http.client.HTTPException,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
        ) as exc:
            outcomes.append(
                Outcome(name, False, f"{type(exc).__name__}: {exc}", suite.seen_dialect)
            )
    return outcomes


def format_table(outcomes: list[Outcome]) -> str:
    width = max(len(o.case) for o in outcomes) if outcomes else 10
    lines = [f"{'case':<{width}}  result  dialect    why", "-" * (width + 40)]
    for o in outcomes:
        result = "pass" if o.passed else "FAIL"
        lines.append(f"{o.case:<{width}}  {result:<6}  {o.dialect or '-':<9}  {o.why}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    outcomes = run_suite(
        args.base_url,
        api_key=args.api_key,
        model=args.model,
        dialect=args.dialect,
        version=args.anthropic_version,
        timeout=args.timeout,
        only=args.case or None,
    )
    print(format_table(outcomes))
    if args.report:
        report = {
            "base_url": args.base_url,
            "model": args.model,
            "expected_dialect": args.dialect,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "passed": sum(o.passed for o in outcomes),
            "failed": sum(not o.passed for o in outcomes),
            "cases": [asdict(o) for o in outcomes],
        }
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(o.passed for o in outcomes) else 1


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "conformance",
        help="run the live protocol suite against any base URL",
        description="Run the live protocol suite against an Anthropic-format endpoint (the real "
        "one, a gateway, or mockserver). Prints a table and exits 1 when a case fails.",
    )
    sp.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    sp.add_argument("--api-key", default="sk-conformance", help="key to send (x-api-key)")
    sp.add_argument("--model", default=DEFAULT_MODEL)
    sp.add_argument(
        "--dialect",
        choices=("anthropic", "deepseek", "any"),
        default="anthropic",
        help="error envelope to expect (default anthropic, the alias's contract)",
    )
    sp.add_argument("--anthropic-version", default="2023-06-01")
    sp.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    sp.add_argument("--case", action="append", help="run only this case (repeatable)")
    sp.add_argument("--report", help="write a JSON report to this file")
    sp.set_defaults(func=_cmd)
