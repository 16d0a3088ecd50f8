"""Machine facts, target verdicts, the printed tables and the JSON file in ``bench/results/``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mockserver.config import LOOPS

from .suite import Results

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import aiohttp

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    facts: dict[str, Any] = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "affinity": affinity,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wrk": _wrk_version(),
        "git_commit": _git_commit(),
    }
    try:
        import uvloop  # noqa: F401

        facts["uvloop_installed"] = True
    except ImportError:
        facts["uvloop_installed"] = False
    return facts


def _wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0] if text else "wrk"


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


# --- targets ----------------------------------------------------------------------------------


def _row(
    results: Results, name: str, c: int, tool: str | None = None, loop: str | None = None
) -> dict[str, Any] | None:
    for row in results.throughput:
        if (
            row["name"] == name
            and row["concurrency"] == c
            and (tool is None or row["tool"] == tool)
            and (loop is None or row.get("loop") == loop)
        ):
            return row
    return None


def verdicts(results: Results) -> list[dict[str, Any]]:
    """Each target of issue 10 with the measured value and pass/fail (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(target: str, value: Any, ok: bool | None, limit: str) -> None:
        out.append({"target": target, "limit": limit, "measured": value, "pass": ok})

    for loop in LOOPS:
        for name, limit in (
            ("replay-json", 0.7),
            ("replay-stream", 0.6),
            ("synth-json-fresh", 0.4),
        ):
            row = _row(results, name, 64, loop=loop)
            if row is None:
                continue
            r = row.get("ratio_rps")
            add(f"{name} rps / ceiling at c=64, {loop}", r, None if r is None else r >= limit,
                f">= {limit}")  # fmt: skip
        for name in ("replay-json", "replay-stream"):
            row = _row(results, name, 64, loop=loop)
            if row is None:
                continue
            r = row.get("ratio_p99")
            add(f"{name} p99 / ceiling p99 at c=64, {loop}", r, None if r is None else r <= 1.5,
                "<= 1.5")  # fmt: skip
    for clients, workers in ((5000, 1), (10_000, 2)):
        paced = next(
            (r for r in results.paced
             if r["clients"] == clients and r.get("workers", 1) == workers),
            None,
        )  # fmt: skip
        if paced is None:
            continue
        late = paced["lateness_ms"]["p99"] if paced.get("lateness_ms") else None
        add(
            f"{clients:,} paced streams, --workers {workers}: p99 event lateness (ms)",
            late,
            None if late is None else late < 20,
            "< 20",
        )
    for size, seconds, mb in ((10_000, 1.0, 200), (100_000, 2.0, 500)):
        big = [r for r in results.startup if r["interactions"] == size]
        if big:
            warm = next((r for r in big if r["parse_cache"] == "warm"), big[-1])
            t, mem = warm["first_replay_s"], warm["rss_mb"]
            add(f"startup, {size:,} interactions, to first replay (s)", t, t < seconds,
                f"< {seconds:g}")  # fmt: skip
            add(f"resident memory, {size:,} interactions (MB)", mem, mem < mb, f"< {mb}")
    for row in results.fixture:
        if row["scope"] == "function":
            ms = row["per_test_ms"]
            add(f"pytest fixture cost per test, function scope, {row['run']} (ms)", ms, ms < 5,
                "< 5")  # fmt: skip
    typical = [r["p50_us"] for r in results.instances if r["kind"] == "typical"]
    if typical:
        worst = max(typical)
        add(
            "tool input for a typical tool schema, p50 (us, worst schema)",
            worst,
            worst < 1000,
            "< 1000",
        )
    by_name = {str(r["workers"]): r for r in results.workers}
    for name, target, limit in (
        ("2", "--workers 2 (shared state) / one process, replay JSON c=64", 1.6),
        ("1 + redis", "one process on --state redis:// / in memory, replay JSON c=64", 0.8),
    ):
        ratio = by_name[name].get("speedup") if name in by_name else None
        add(target, ratio, None if ratio is None else ratio >= limit, f">= {limit}")
    if results.matching:
        g = results.matching[-1].get("growth_vs_smallest")
        add(
            "matching cost, largest / smallest library",
            g,
            None if g is None else g <= 1.5,
            "<= 1.5",
        )
    return out


# --- output -----------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([line, sep, *body])


def _section(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
    return [title, table(headers, rows), ""]


def _json_row(r: dict[str, Any]) -> list[Any]:
    if not r["installed"]:
        return [r["library"], None, None, None, None, "not installed"]
    differs = "; ".join(r.get("differs_from_stdlib") or [])
    keys = ("decode_small_us", "decode_big_us", "encode_reply_us", "sorted_key_us")
    return [r["library"], *(r.get(k) for k in keys), differs[:90]]


def render(results: Results, facts: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    parts = [
        f"mockserver benchmarks, {facts['date']}: {facts['cpu_model']}, {facts['cores']} cores, "
        f"Python {facts['python']}, aiohttp {facts['aiohttp']}, load generator: "
        f"{'wrk' if facts['wrk'] else 'python'}",
        "",
    ]
    if results.throughput:
        rows = [
            [
                r["name"], r.get("loop", "-"), r["concurrency"], r["tool"], r["rps"], r.get("ceiling_rps"),
                r.get("ratio_rps"), r.get("cpu_us_per_reply"), r.get("ceiling_cpu_us"),
                r.get("ratio_cpu"), r["latency_ms"]["p50"], r["latency_ms"]["p99"],
                r.get("ceiling_p99_ms"), r.get("ratio_p99"), (r.get("ttfe_ms") or {}).get("p50"),
                r.get("ceiling_ttfe_p50_ms"),
            ]
            for r in results.throughput
        ]  # fmt: skip
        parts += [
            "Throughput against the ceiling, side by side (requests or streams per second; "
            "latency of the whole reply; ttfe = time to first event)",
            table(
                [
                    "workload",
                    "loop",
                    "conc",
                    "tool",
                    "per s",
                    "ceiling/s",
                    "x ceil",
                    "cpu us",
                    "ceil cpu",
                    "cpu x",
                    "p50 ms",
                    "p99 ms",
                    "ceil p99",
                    "p99 x ceil",
                    "ttfe p50",
                    "ceil ttfe",
                ],
                rows,
            ),
            "",
        ]
    if results.workers:
        parts += [
            "--workers (SO_REUSEPORT, the state shared in SQLite) and --state redis://, replay "
            "JSON at c=64",
            table(
                ["processes", "per s", "p50 ms", "p99 ms", "x one", "rss MB"],
                [
                    [
                        r["workers"],
                        r["rps"],
                        r["latency_ms"]["p50"],
                        r["latency_ms"]["p99"],
                        r.get("speedup"),
                        r["rss_mb"],
                    ]
                    for r in results.workers
                ],
            ),
            "",
        ]
    if results.startup:
        parts += [
            "Startup (spawn to listening, spawn to first replay; server not pinned) and resident memory (library MB: above the empty library)",
            table(
                [
                    "interactions",
                    "parse cache",
                    "listening s",
                    "first replay s",
                    "rss MB",
                    "library MB",
                ],
                [
                    [
                        r["interactions"],
                        r["parse_cache"],
                        r["listening_s"],
                        r["first_replay_s"],
                        r["rss_mb"],
                        r.get("library_mb"),
                    ]
                    for r in results.startup
                ],
            ),
            "",
        ]
    if results.matching:
        parts += [
            "Matching cost by library size (one lookup, in process)",
            table(
                ["interactions", "hit us", "miss us"],
                [[r["interactions"], r["hit_us"], r["miss_us"]] for r in results.matching],
            ),
            "",
        ]
    if results.instances:
        parts += [
            "Schema instances (a tool input or structured value, generated and validated, in process)",
            table(
                ["schema", "kind", "p50 us", "p90 us"],
                [[r["schema"], r["kind"], r["p50_us"], r["p90_us"]] for r in results.instances],
            ),
            "",
        ]
    if results.fixture:
        parts += _section(
            "pytest: the mockserver fixture's cost per test (200 one-request tests, each beside "
            "the same test on a server started once; median of the pairs' differences)",
            [
                "scope",
                "run",
                "tests x rounds",
                "per test ms",
                "mean ms",
                "test p50 ms, with / without",
            ],
            [
                [
                    r["scope"],
                    r["run"],
                    f"{r['tests']} x {r['rounds']}",
                    r["per_test_ms"],
                    r["mean_ms"],
                    f"{r['with_p50_ms']} / {r['without_p50_ms']}",
                ]
                for r in results.fixture
            ],
        )
    if results.json_libs:
        parts += _section(
            "JSON libraries (us per call, in process): a request's decode (small, Claude-Code "
            "sized), a reply's encode, a big request's sorted-keys encode (the match key)",
            ["library", "decode", "decode big", "encode reply", "sorted keys", "differs"],
            [_json_row(r) for r in results.json_libs],
        )
    if results.paced:
        parts += [
            "Paced streams (--timing recorded, 9 events over ~2.8 s, first at 0.9 s), server on one core; lateness = arrival - (request sent + recorded offset)",
            table(
                [
                    "clients",
                    "workers",
                    "streams/s",
                    "late p50 ms",
                    "late p99 ms",
                    "late max ms",
                    "ttfe p99",
                    "errors",
                    "server busy",
                    "client cpu",
                ],
                [
                    [
                        r["clients"],
                        r.get("workers", 1),
                        r["rps"],
                        r["lateness_ms"]["p50"],
                        r["lateness_ms"]["p99"],
                        r["lateness_ms"]["max"],
                        (r.get("ttfe_ms") or {}).get("p99"),
                        r["errors"],
                        r.get("server_busy"),
                        r["client_cpu"],
                    ]
                    for r in results.paced
                ],
            ),
            "",
        ]
    if checks:
        parts += [
            "Targets",
            table(
                ["target", "limit", "measured", "verdict"],
                [
                    [
                        c["target"],
                        c["limit"],
                        c["measured"],
                        {True: "PASS", False: "MISS", None: "-"}[c["pass"]],
                    ]
                    for c in checks
                ],
            ),
        ]
    for note in results.notes:
        parts.append(f"note: {note}")
    return "\n".join(parts)


def write(
    results: Results, facts: dict[str, Any], checks: list[dict[str, Any]], quick: bool
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = facts["date"].replace(":", "").replace("+0000", "Z")
    path = RESULTS_DIR / f"{stamp}-{'quick' if quick else 'full'}.json"
    doc = {"machine": facts, "quick": quick, "targets": checks, **asdict(results)}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path
