"""Throughput and latency against the ceilings, measured side by side.

The ceiling and every mock configuration run at the same time (each its own process, all
pinned to the server core; an idle server costs nothing), and each comparison alternates
short rounds of ceiling and mock (ABBA order), so that a change in background load hits both
alike and the ratio stays meaningful even on a busy machine.  Per-round figures are merged:
requests/s from the totals, percentiles as the median over rounds.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mockserver.config import LOOPS, ConfigError, resolve_loop
from mockserver.wire import protocol as p

from . import fixtures, procs

if TYPE_CHECKING:
    from .suite import Bench


def _can(loop: str) -> bool:
    try:
        resolve_loop(loop)
    except ConfigError:
        return False
    return True


#: the loop ``mockserver serve`` picks here (uvloop when installed); the other is measured too
DEFAULT_LOOP = resolve_loop(None)
OTHER_LOOPS = tuple(loop for loop in LOOPS if loop != DEFAULT_LOOP and _can(loop))

FRESH_BODY = {
    "model": fixtures.MODEL,
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Fresh benchmark question {N}: what is the answer?"}],
}


@dataclass(frozen=True)
class Workload:
    name: str
    server: str  # key of the mock server process
    stream: bool
    levels: tuple[int, ...]
    bodies: Path | None = None
    fresh: Any | None = None
    ttfe: tuple[int, ...] = ()
    loop: str = DEFAULT_LOOP  # the mock's and its ceiling's event loop


def _on(key: str, loop: str) -> str:
    """The key of server ``key`` running on ``loop`` (the default loop's keeps its name)."""
    return key if loop == DEFAULT_LOOP else f"{key}@{loop}"


def timed(server: procs.Server, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result with the server's CPU seconds spent meanwhile (``server_cpu_s``)."""
    before = server.cpu_s()
    out = run()
    out["server_cpu_s"] = round(server.cpu_s() - before, 3)
    return out


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from several rounds: totals for counts, medians for percentiles."""
    out = dict(runs[0])
    total = sum(r["requests"] for r in runs)
    seconds = sum(r["duration_s"] for r in runs)
    out.update(
        requests=total,
        duration_s=round(seconds, 2),
        rps=round(total / seconds, 1) if seconds else 0.0,
        errors=sum(r["errors"] for r in runs),
        rounds=len(runs),
    )
    if all("server_cpu_s" in r for r in runs):
        cpu = sum(r["server_cpu_s"] for r in runs)
        out["server_cpu_s"] = round(cpu, 3)
        # CPU per reply (the whole server process, aiohttp included): unlike requests/s it
        # does not depend on how much of its core the server got from a busy machine
        out["cpu_us_per_reply"] = round(cpu / total * 1e6, 1) if total and cpu else None
    for key in ("latency_ms", "ttfe_ms"):
        if all(key in r for r in runs):
            out[key] = {q: _median([r[key][q] for r in runs]) for q in ("p50", "p90", "p99", "max")}
    if "client_cpu" in out:
        out["client_cpu"] = max(r["client_cpu"] for r in runs)
    for drop in ("statuses", "error_kinds"):
        out.pop(drop, None)
    kinds: dict[str, int] = {}
    for r in runs:
        for k, n in (r.get("error_kinds") or {}).items():
            kinds[k] = kinds.get(k, 0) + n
    if kinds:
        out["error_kinds"] = kinds
    return out


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def ratios(row: dict[str, Any], base: dict[str, Any]) -> None:
    row["ceiling_rps"] = base["rps"]
    row["ceiling_p99_ms"] = base["latency_ms"]["p99"]
    row["ratio_rps"] = round(row["rps"] / base["rps"], 3) if base["rps"] else None
    mine, theirs = row.get("cpu_us_per_reply"), base.get("cpu_us_per_reply")
    row["ceiling_cpu_us"] = theirs
    row["ratio_cpu"] = round(theirs / mine, 3) if mine and theirs else None
    p99, bp99 = row["latency_ms"]["p99"], base["latency_ms"]["p99"]
    row["ratio_p99"] = round(p99 / bp99, 3) if p99 and bp99 else None
    if "ttfe_ms" in row and "ttfe_ms" in base:
        row["ceiling_ttfe_p50_ms"] = base["ttfe_ms"]["p50"]
        t, bt = row["ttfe_ms"]["p50"], base["ttfe_ms"]["p50"]
        row["ratio_ttfe_p50"] = round(t / bt, 3) if t and bt else None


class Throughput:
    def __init__(self, bench: Bench) -> None:
        self.b = bench
        self.rounds = 2 if bench.plan.quick else 6  # ABBA: an even number
        self.round_s = 1.0 if bench.plan.quick else 2.0

    @contextlib.contextmanager
    def servers(self, validation: bool, main: bool) -> Iterator[dict[str, procs.Server]]:
        b = self.b
        cpu = b.server_cpu
        with contextlib.ExitStack() as stack:
            out: dict[str, procs.Server] = {}
            configs: list[tuple[str, str, Path | None, list[str]]] = []
            for loop in (DEFAULT_LOOP, *OTHER_LOOPS):
                out[_on("ceiling", loop)] = stack.enter_context(procs.ceiling(cpu, loop))
                if main and (loop == DEFAULT_LOOP or not b.plan.quick):
                    configs += [
                        (_on("replay", loop), "replay", b.lib, ["--loop", loop]),
                        (_on("synth", loop), "synth", None, ["--loop", loop]),
                    ]
            if validation:
                configs += [
                    ("replay/no-validate", "replay", b.lib, ["--no-validate"]),
                    ("synth/no-validate", "synth", None, ["--no-validate"]),
                ]
            for key, mode, lib, extra in configs:
                srv = stack.enter_context(
                    procs.mockserver(cassettes=lib, mode=mode, cpu=cpu, extra=extra, env=b.env)
                )
                procs.first_reply(srv, fixtures.request_body("json", 0))  # loads everything
                out[key] = srv
            yield out

    def workloads(self, validation: bool, main: bool) -> list[Workload]:
        b = self.b
        quick = b.plan.quick
        ttfe = (64,) if quick else (1, 64)
        both = (64,) if quick else (1, 64)  # the targets are at 64
        fresh_stream = {**FRESH_BODY, "stream": True}
        out: list[Workload] = []
        if main:
            out += [
                Workload("replay-json", "replay", False, (1, 64), b.json_bodies),
                Workload("replay-stream", "replay", True, both, b.stream_bodies, ttfe=ttfe),
                Workload("synth-json-fresh", "synth", False, both, fresh=FRESH_BODY),
            ]
            if not quick:
                out.append(Workload("synth-stream-fresh", "synth", True, (64,), fresh=fresh_stream))
                for loop in OTHER_LOOPS:  # the same targets on the other loop, at c=64
                    out += [
                        Workload(
                            "replay-json", _on("replay", loop), False, (64,), b.json_bodies,
                            loop=loop,
                        ),
                        Workload(
                            "replay-stream", _on("replay", loop), True, (64,), b.stream_bodies,
                            loop=loop,
                        ),
                        Workload(
                            "synth-json-fresh", _on("synth", loop), False, (64,),
                            fresh=FRESH_BODY, loop=loop,
                        ),
                    ]  # fmt: skip
        if validation:
            out += [
                Workload(
                    "replay-json/no-validate", "replay/no-validate", False, (64,), b.json_bodies
                ),
                Workload(
                    "replay-stream/no-validate", "replay/no-validate", True, (64,), b.stream_bodies
                ),
                Workload(
                    "synth-json-fresh/no-validate",
                    "synth/no-validate",
                    False,
                    (64,),
                    fresh=FRESH_BODY,
                ),
            ]
        return out

    def compare(
        self, w: Workload, target: procs.Server, ceiling: procs.Server, c: int, tool: str
    ) -> dict[str, Any]:
        b = self.b
        ceil_path = "/stream" if w.stream else "/json"
        ceil_bodies = b.stream_bodies if w.stream else b.json_bodies

        def ceil(warmup: float = 0.0) -> dict[str, Any]:
            return timed(ceiling, lambda: b.load(
                ceiling.url, ceil_path, concurrency=c, bodies=ceil_bodies, tool=tool,
                duration=self.round_s, warmup=warmup, events=9,
            ))  # fmt: skip

        def mock(warmup: float = 0.0) -> dict[str, Any]:
            return timed(target, lambda: b.load(
                target.url, p.PATH_MESSAGES, concurrency=c, bodies=w.bodies, fresh=w.fresh,
                tool=tool, duration=self.round_s, warmup=warmup, events=9,
            ))  # fmt: skip

        ceil(warmup=1.0)
        mock(warmup=1.0)  # warm-up rounds: connections, caches, the tokenizer's LRU
        c_runs: list[dict[str, Any]] = []
        m_runs: list[dict[str, Any]] = []
        for r in range(self.rounds):
            if r % 2 == 0:
                c_runs.append(ceil())
                m_runs.append(mock())
            else:
                m_runs.append(mock())
                c_runs.append(ceil())
        base, row = merge(c_runs), merge(m_runs)
        row = {"name": w.name, "stream": w.stream, "loop": w.loop, **row}
        ratios(row, base)
        row["ceiling"] = base
        return row

    def run(self, validation: bool, main: bool) -> None:
        b = self.b
        with self.servers(validation, main) as servers:
            for w in self.workloads(validation, main):
                ceiling = servers[_on("ceiling", w.loop)]
                for c in w.levels:
                    self._record(self.compare(w, servers[w.server], ceiling, c, b.tool))
                for c in w.ttfe:
                    if b.tool == "python" and c in w.levels:
                        continue  # the rows above came from the Python generator: ttfe is there
                    self._record(self.compare(w, servers[w.server], ceiling, c, "python"))

    def _record(self, row: dict[str, Any]) -> None:
        self.b.results.throughput.append(row)
        if row["errors"]:
            self.b.results.notes.append(
                f"{row['name']} c={row['concurrency']} {row['tool']}: {row['errors']} errors"
                f" {row.get('error_kinds', '')}"
            )
        ttfe = f" ttfe p50 {row['ttfe_ms']['p50']} ms" if "ttfe_ms" in row else ""
        self.b.log(
            f"  {row['name']:<28} {row['loop']:<7} c={row['concurrency']:<3} {row['tool']:<6} "
            f"{row['rps']:>9.1f}/s (ceiling {row['ceiling_rps']:>9.1f}/s, x{row['ratio_rps']}) "
            f"p99 {row['latency_ms']['p99']} ms (x{row['ratio_p99']}){ttfe} "
            f"cpu/reply {row.get('cpu_us_per_reply')} us (ceiling {row.get('ceiling_cpu_us')}, "
            f"x{row.get('ratio_cpu')})"
        )
