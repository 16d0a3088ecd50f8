"""``mockserver cassettes calibrate``: fit a profile's token overheads to recorded usage.

The mock counts a prompt as the tokenizer's count of the rendered text plus the profile's
``token_overheads`` (chat-template tokens the tokenizer cannot see)::

    input = text + per_request + per_message·messages + per_tool·tools + per_system·[system]

Recorded interactions that carry the real endpoint's ``usage`` give the real total
(``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``, from the JSON
body, or from ``message_start`` and ``message_delta`` of a stream).  The four overheads are
fitted to them by least squares (plain normal equations, no numpy), kept non-negative and
rounded to the integers that fit best.  An overhead the recordings cannot tell apart from
another (no request has a tool, or every request has one message) keeps the profile's value
and the report says so.  ``--write OUT.yaml`` writes the profile with the fitted values.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..accounting.tokens import TokenCounter, overhead
from ..profile import DEFAULT_PROFILE, Overheads, load_profile
from ..wire import protocol as p
from ..wire.errors import CassetteError, ConfigError
from . import cassette

#: the fitted overheads, in the order a collinear one gives way to an earlier one
NAMES: tuple[str, ...] = tuple(f.name for f in fields(Overheads))
ZERO = Overheads(**dict.fromkeys(NAMES, 0))
_UNIT = {name: Overheads(**{n: int(n == name) for n in NAMES}) for name in NAMES}


# --- samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One recorded request: its text tokens, overhead counts and the real input total."""

    where: str  #: ``file#index``
    text: int  #: tokens of the rendered prompt, no overheads
    counts: tuple[int, ...]  #: multiplier of each overhead (``NAMES`` order)
    actual: int  #: recorded input + cache read + cache creation

    def predict(self, over: Overheads) -> int:
        per: tuple[int, ...] = tuple(getattr(over, n) for n in NAMES)
        return self.text + sum(c * v for c, v in zip(self.counts, per, strict=True))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def total_input(usage: Any) -> int | None:
    """``input_tokens + cache_read + cache_creation`` of a usage object (None without input)."""
    if not isinstance(usage, Mapping):
        return None
    base = _int(usage.get(p.USAGE_INPUT))
    if base is None:
        return None
    extra = (_int(usage.get(k)) or 0 for k in (p.USAGE_CACHE_READ, p.USAGE_CACHE_CREATION))
    return base + sum(extra)


def stream_usage(events: Iterable[Any]) -> dict[str, Any] | None:
    """Usage of a recorded stream: ``message_start``'s, updated by ``message_delta``'s
    non-null fields (as the SDK accumulates it)."""
    usage: dict[str, Any] | None = None
    for event in events:
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        kind = event.name or data.get("type")
        if kind == p.MESSAGE_START and isinstance(data.get("message"), dict):
            usage = dict(data["message"].get("usage") or {})
        elif kind == p.MESSAGE_DELTA and usage is not None and isinstance(data.get("usage"), dict):
            usage.update({k: v for k, v in data["usage"].items() if v is not None})
    return usage


def recorded_total(inter: cassette.Interaction, count_tokens: bool = False) -> int | None:
    """The real input total of a 200 ``/v1/messages`` interaction (or ``count_tokens``)."""
    req, resp = inter.request, inter.response
    if resp.status != 200 or req.method != "POST" or not isinstance(req.body, dict):
        return None
    if req.path.endswith(p.PATH_COUNT_TOKENS):
        return total_input(resp.json_body()) if count_tokens else None
    if not req.path.endswith(p.PATH_MESSAGES):
        return None
    if resp.events is not None:
        return total_input(stream_usage(resp.events))
    body = resp.json_body()
    return total_input(body.get("usage")) if isinstance(body, dict) else None


def sample_of(body: Mapping[str, Any], actual: int, counter: TokenCounter, where: str) -> Sample:
    """``counter`` must have zero overheads (it counts the text alone)."""
    counts = tuple(overhead(body, _UNIT[n]) for n in NAMES)
    return Sample(where, counter.request(body), counts, actual)


def load_samples(
    paths: Sequence[Path], *, count_tokens: bool = False
) -> tuple[list[Sample], int, int]:
    """Samples from cassette files and directories; also (files read, interactions skipped)."""
    counter = TokenCounter(ZERO)
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"no such file or directory: {path}")
        files.extend(cassette.discover(path))
    samples: list[Sample] = []
    skipped = 0
    for file in files:
        try:
            c = cassette.load(file)
        except CassetteError as exc:
            raise ConfigError(str(exc)) from None
        for i, inter in enumerate(c.interactions):
            actual = recorded_total(inter, count_tokens)
            if actual is None:
                skipped += 1
                continue
            samples.append(sample_of(inter.request.body, actual, counter, f"{file}#{i}"))
    return samples, len(files), skipped


# --- the fit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    overheads: Overheads
    #: overhead name -> why it kept the profile's value (absent: fitted)
    kept: dict[str, str]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _independent(
    columns: dict[str, list[float]], order: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """Columns (in ``order``) that are linearly independent of the earlier chosen ones."""
    basis: list[list[float]] = []
    chosen: list[str] = []
    kept: dict[str, str] = {}
    for name in order:
        col = columns[name]
        norm = math.sqrt(_dot(col, col))
        if norm == 0:
            kept[name] = "no recorded request has it"
            continue
        res = list(col)
        for q in basis:
            k = _dot(res, q)
            res = [r - k * x for r, x in zip(res, q, strict=True)]
        rn = math.sqrt(_dot(res, res))
        if rn <= 1e-9 * norm:
            kept[name] = "not separable from " + "/".join(chosen) + " in these recordings"
            continue
        basis.append([r / rn for r in res])
        chosen.append(name)
    return chosen, kept


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (``a`` is small and non-singular)."""
    n = len(b)
    m = [[*row, rhs] for row, rhs in zip(a, b, strict=True)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            m[r] = [x - f * y for x, y in zip(m[r], m[c], strict=True)]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - _dot(m[r][r + 1 : n], out[r + 1 :])) / m[r][r]
    return out


def _least_squares(cols: list[list[float]], y: list[float]) -> list[float]:
    gram = [[_dot(a, b) for b in cols] for a in cols]
    return _solve(gram, [_dot(a, y) for a in cols])


def _sse(samples: Sequence[Sample], over: Overheads) -> tuple[int, int]:
    diffs = [abs(s.predict(over) - s.actual) for s in samples]
    return sum(d * d for d in diffs), max(diffs, default=0)


def fit(samples: Sequence[Sample], prior: Overheads) -> Fit:
    """Least-squares overheads (non-negative integers); unfittable ones keep ``prior``'s."""
    columns = {n: [float(s.counts[i]) for s in samples] for i, n in enumerate(NAMES)}
    free, kept = _independent(columns, NAMES)
    values = {n: float(getattr(prior, n)) for n in NAMES}
    while free:
        fixed = [n for n in NAMES if n not in free]
        y = [
            s.actual - s.text - sum(values[n] * columns[n][i] for n in fixed)
            for i, s in enumerate(samples)
        ]
        solution = dict(zip(free, _least_squares([columns[n] for n in free], y), strict=True))
        worst = min(free, key=lambda n: solution[n])
        if solution[worst] >= 0:
            values.update(solution)
            break
        free.remove(worst)  # a negative overhead: pin it at 0 and fit the rest again
        values[worst] = 0.0
    fitted = [n for n in NAMES if n not in kept]
    best: tuple[tuple[int, int], Overheads] | None = None
    choices = [
        sorted({max(0, math.floor(values[n])), max(0, math.ceil(values[n]))}) for n in fitted
    ]
    for combo in itertools.product(*choices):
        over = replace(prior, **dict(zip(fitted, combo, strict=True)))
        score = _sse(samples, over)
        if best is None or score < best[0]:
            best = (score, over)
    return Fit(best[1] if best is not None else prior, kept)


def error_stats(samples: Sequence[Sample], over: Overheads) -> tuple[float, int]:
    """Mean and max absolute difference between predicted and recorded input totals."""
    diffs = [abs(s.predict(over) - s.actual) for s in samples]
    return (sum(diffs) / len(diffs) if diffs else 0.0), max(diffs, default=0)


# --- the profile file ------------------------------------------------------------------------


def profile_text(ref: str) -> str:
    """The YAML text of a profile (a file path or a built-in name)."""
    path = Path(ref)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    res = resources.files("mockserver.profiles") / f"{ref}.yaml"
    if not res.is_file():
        load_profile(ref)  # raises the ConfigError that names the built-in profiles
    return res.read_text(encoding="utf-8")


_KEY_LINE = re.compile(
    r"^(?P<indent>[ \t]+)(?P<key>\w+)(?P<sep>[ \t]*:[ \t]*)(?P<value>[^\s#]*)(?P<rest>.*)$"
)


def _as_dict(over: Overheads) -> dict[str, int]:
    return {n: getattr(over, n) for n in NAMES}


def with_overheads(text: str, over: Overheads, note: str = "") -> str:
    """``text`` (a profile) with its ``token_overheads`` set to ``over``; comments are kept
    when the block is in the usual block style, else the YAML is rewritten."""
    lines = text.splitlines()
    head = next(
        (i for i, ln in enumerate(lines) if re.match(r"^token_overheads:\s*(#.*)?$", ln)), None
    )
    if head is not None:
        old_comment = lines[head].partition("#")[2]
        comment = f"  # {note}" if note else (f"  #{old_comment}" if old_comment else "")
        lines[head] = "token_overheads:" + comment
        seen: set[str] = set()
        indent, last = "  ", head
        for i in range(head + 1, len(lines)):
            if not lines[i].strip():
                continue
            m = _KEY_LINE.match(lines[i])
            if m is None:
                break
            indent, last = m["indent"], i
            if m["key"] in NAMES:
                lines[i] = f"{m['indent']}{m['key']}{m['sep']}{getattr(over, m['key'])}{m['rest']}"
                seen.add(m["key"])
        missing = [f"{indent}{n}: {getattr(over, n)}" for n in NAMES if n not in seen]
        lines[last + 1 : last + 1] = missing
        out = "\n".join(lines) + "\n"
        try:
            data = yaml.safe_load(out)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and data.get("token_overheads") == _as_dict(over):
            return out
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError("profile: top level must be a mapping")
    data["token_overheads"] = _as_dict(over)
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# --- the command -----------------------------------------------------------------------------


def _table(rows: list[list[str]], out: TextIO, align: str) -> None:
    """Columns padded to their widest cell; ``align`` has ``l`` or ``r`` per column."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(align))]
    for r in rows:
        cells = [
            v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(r, widths, align, strict=True)
        ]
        print("  ".join(cells).rstrip(), file=out)


def report(samples: Sequence[Sample], prior: Overheads, result: Fit, out: TextIO) -> None:
    rows = [["overhead", "before", "after", ""]]
    for n in NAMES:
        why = f"kept: {result.kept[n]}" if n in result.kept else ""
        rows.append([n, str(getattr(prior, n)), str(getattr(result.overheads, n)), why])
    _table(rows, out, "lrrl")
    print(file=out)
    mean0, max0 = error_stats(samples, prior)
    mean1, max1 = error_stats(samples, result.overheads)
    _table(
        [
            ["error (tokens)", "before", "after"],
            ["mean abs diff", f"{mean0:.2f}", f"{mean1:.2f}"],
            ["max abs diff", str(max0), str(max1)],
        ],
        out,
        "lrr",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    profile = load_profile(args.profile)
    samples, n_files, skipped = load_samples(args.paths, count_tokens=args.include_count_tokens)
    if not samples:
        print(
            f"mockserver: no interaction with a recorded usage in {n_files} cassette file(s) "
            f"({skipped} skipped): nothing to calibrate",
            file=sys.stderr,
        )
        return 1
    prior = profile.overheads
    result = fit(samples, prior)
    print(
        f"calibrated token_overheads of profile {profile.name} on {len(samples)} interaction(s) "
        f"from {n_files} cassette file(s) ({skipped} without usage skipped)\n",
        file=out,
    )
    report(samples, prior, result, out)
    if args.write is not None:
        mean1, _ = error_stats(samples, result.overheads)
        note = (
            f"fitted by mockserver cassettes calibrate on {len(samples)} interactions "
            f"(mean abs error {mean1:.2f})"
        )
        args.write.write_text(
            with_overheads(profile_text(args.profile), result.overheads, note), encoding="utf-8"
        )
        print(f"\nwrote {args.write} (use it with --profile {args.write})", file=out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="cassette files or directories"
    )
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help="profile to start from (name or YAML file)"
    )
    parser.add_argument(
        "--write", type=Path, metavar="OUT.yaml", help="write the calibrated profile here"
    )
    parser.add_argument(
        "--include-count-tokens",
        action="store_true",
        help="also fit to recorded count_tokens answers",
    )
    parser.set_defaults(func=run)


DESCRIPTION = """\
Fit the profile's token_overheads (per request, message, tool and system prompt) to the
usage recorded in cassettes, by least squares, and report the error before and after."""


def add_calibrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``calibrate`` under the ``cassettes`` subcommand's subparsers."""
    sp = sub.add_parser(
        "calibrate",
        help="fit the profile's token overheads to recorded usage",
        description=DESCRIPTION,
    )
    add_arguments(sp)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mockserver cassettes calibrate", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
