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


def _row(results: Results, name: str, c: int, tool: str | None = None) -> dict[str, Any] | None:
    for row in results.throughput:
        if (
            row["name"] == name
            and row["concurrency"] == c
            and (tool is None or row["tool"] == tool)
        ):
            return row
    return None


def verdicts(results: Results) -> list[dict[str, Any]]:
    """Each target of issue 10 with the measured value and pass/fail (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(target: str, value: Any, ok: bool | None, limit: str) -> None:
        out.append({"target": target, "limit": limit, "measured": value, "pass": ok})

    for name, limit in (("replay-json", 0.7), ("replay-stream", 0.6), ("synth-json-fresh", 0.4)):
        row = _row(results, name, 64)
        r = row.get("ratio_rps") if row else None
        add(f"{name} rps / ceiling at c=64", r, None if r is None else r >= limit, f">= {limit}")
    for name in ("replay-json", "replay-stream"):
        row = _row(results, name, 64)
        r = row.get("ratio_p99") if row else None
        add(f"{name} p99 / ceiling p99 at c=64", r, None if r is None else r <= 1.5, "<= 1.5")
    paced = next((r for r in results.paced if r["clients"] == 5000), None)
    late = paced["lateness_ms"]["p99"] if paced and paced.get("lateness_ms") else None
    add(
        "5,000 paced streams: p99 event lateness (ms)",
        late,
        None if late is None else late < 20,
        "< 20",
    )
    big = [r for r in results.startup if r["interactions"] == 10_000]
    if big:
        warm = next((r for r in big if r["parse_cache"] == "warm"), big[-1])
        s, mem = warm["first_replay_s"], warm["rss_mb"]
        add("startup, 10,000 interactions, to first replay (s)", s, s < 1.0, "< 1")
        add("resident memory, 10,000 interactions (MB)", mem, mem < 200, "< 200")
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
                r["name"], r["concurrency"], r["tool"], r["rps"], r.get("ceiling_rps"),
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
    if results.paced:
        parts += [
            "Paced streams (--timing recorded, 9 events over ~2.8 s, first at 0.9 s), server on one core; lateness = arrival - (request sent + recorded offset)",
            table(
                [
                    "clients",
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
