"""The benchmark workloads, run one after another against fresh server processes.

Every throughput figure is measured in the same run as its ceiling (the bare aiohttp app of
:mod:`bench.ceiling`) with the same load generator and concurrency, and reported as a ratio.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mockserver.wire import protocol as p

from . import fixtures, procs, wrk
from .fixtures import HEADERS, PACED_AT_MS
from .throughput import Throughput

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    quick: bool
    duration: float
    warmup: float
    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    #: (concurrent paced streams, server processes)
    paced: tuple[tuple[int, int], ...] = ((1_000, 1), (5_000, 1))
    paced_duration: float = 5.0
    use_wrk: bool = True
    only: frozenset[str] = frozenset()

    @classmethod
    def make(cls, quick: bool, use_wrk: bool, only: frozenset[str]) -> Plan:
        if quick:
            return cls(True, 3.0, 1.0, paced_duration=3.0, use_wrk=use_wrk, only=only)
        return cls(
            False,
            10.0,
            2.0,
            sizes=(100, 1_000, 10_000, 100_000),
            paced=((1_000, 1), (5_000, 1), (10_000, 2)),
            paced_duration=15.0,
            use_wrk=use_wrk,
            only=only,
        )


@dataclass
class Results:
    throughput: list[dict[str, Any]] = field(default_factory=list)
    startup: list[dict[str, Any]] = field(default_factory=list)
    matching: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)
    paced: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    fixture: list[dict[str, Any]] = field(default_factory=list)
    json_libs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.server_cpu, self.client_cpu = procs.placement()
        self.results = Results()
        self.cache_dir = work / "parse-cache"
        self.env = {"MOCKSERVER_CACHE_DIR": str(self.cache_dir)}
        os.environ["MOCKSERVER_CACHE_DIR"] = str(self.cache_dir)  # the in-process matcher too
        self.tool = "wrk" if plan.use_wrk and wrk.available() else "python"
        self.log = log

    def wants(self, name: str) -> bool:
        return not self.plan.only or name in self.plan.only

    # -- load --------------------------------------------------------------------------------
    def load(
        self,
        url: str,
        path: str,
        *,
        concurrency: int,
        bodies: Path | None = None,
        fresh: Any | None = None,
        tool: str | None = None,
        duration: float | None = None,
        events: int = 0,
        extra: dict[str, Any] | None = None,
        stagger: float = 0.0,
        warmup: float | None = None,
    ) -> dict[str, Any]:
        tool = tool or self.tool
        duration = duration or self.plan.duration
        warmup = self.plan.warmup if warmup is None else warmup
        host, port = url.removeprefix("http://").split(":")
        if tool == "wrk":
            return wrk.run(
                url=url,
                path=path,
                headers=HEADERS,
                concurrency=concurrency,
                duration=duration,
                bodies=bodies,
                fresh=fresh,
                cpu=self.client_cpu,
                warmup=warmup,
            )
        cfg: dict[str, Any] = {
            "host": host,
            "port": int(port),
            "path": path,
            "headers": HEADERS,
            "concurrency": concurrency,
            "duration": duration,
            "warmup": warmup,
            "stagger": stagger,
            "cpu": self.client_cpu,
            "events": events,
            **(extra or {}),
        }
        if fresh is not None:
            cfg["fresh"] = fresh
        else:
            cfg["bodies"] = str(bodies)
        cmd = [sys.executable, "-m", "bench.loadgen", json.dumps(cfg)]
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    # -- fixtures ----------------------------------------------------------------------------
    def prepare(self) -> None:
        t = time.perf_counter()
        self.lib = fixtures.write_library(self.work / "lib", json_n=1000, stream_n=1000)
        self.paced_lib = fixtures.write_library(self.work / "paced", paced_n=1000)
        self.json_bodies = fixtures.write_requests(
            self.work / "json.jsonl", "json", 1000, stream=False
        )
        self.stream_bodies = fixtures.write_requests(
            self.work / "stream.jsonl", "stream", 1000, stream=True
        )
        self.paced_bodies = fixtures.write_requests(
            self.work / "paced.jsonl", "paced", 1000, stream=True
        )
        self.one_body = self.work / "one.jsonl"
        self.one_body.write_text(json.dumps(fixtures.request_body("json", 0)) + "\n")
        log(f"fixtures written in {time.perf_counter() - t:.1f} s")

    # -- workers -------------------------------------------------------------------------------
    def run_workers(self) -> None:
        """Replay JSON at c=64 on one process (state in memory), ``--workers 2`` (the state in
        the embedded SQLite store) and one process with ``--state redis://`` (a local
        redis-server), side by side in interleaved rounds."""
        log(
            "--workers 1 and 2, and one process on --state redis:// (servers not pinned; the "
            "load generator keeps its core)"
        )
        from .throughput import merge

        with contextlib.ExitStack() as stack:
            redis = stack.enter_context(procs.redis_server())
            setups: dict[str, list[str]] = {"1": ["--workers", "1"], "2": ["--workers", "2"]}
            if redis is not None:
                setups["1 + redis"] = ["--state", redis, "--state-prefix", "bench:"]
            else:
                log("  redis-server is not installed: no --state row")
            servers = {}
            for name, extra in setups.items():
                srv = stack.enter_context(
                    procs.mockserver(
                        cassettes=self.lib, mode="replay", cpu=None, extra=extra, env=self.env
                    )
                )
                for _ in range(16):  # new connections, so that every worker loads its library
                    procs.first_reply(srv, fixtures.request_body("json", 0))
                servers[name] = srv
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            rounds, seconds = (3, 1.0) if self.plan.quick else (10, 2.0)
            for name in servers:  # warm-up
                self.load(
                    servers[name].url, p.PATH_MESSAGES, concurrency=64, bodies=self.json_bodies
                )
            names = list(servers)
            for r in range(rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    runs[name].append(
                        self.load(
                            servers[name].url,
                            p.PATH_MESSAGES,
                            concurrency=64,
                            bodies=self.json_bodies,
                            duration=seconds,
                            warmup=0.0,
                        )
                    )
            for name in names:
                row = {"workers": name, "rss_mb": servers[name].rss_mb(), **merge(runs[name])}
                self.results.workers.append(row)
                log(f"  {name}: {row['rps']}/s p99 {row['latency_ms']['p99']} ms")
        # each round's ratio to the one-process run beside it, then their median: a machine
        # whose speed drifts during the step (a shared host) moves both sides of a ratio alike
        for row in self.results.workers[1:]:
            name = str(row["workers"])
            ratios = [
                mine["rps"] / base["rps"]
                for mine, base in zip(runs[name], runs["1"], strict=True)
                if base["rps"]
            ]
            if ratios:
                row["speedup"] = round(statistics.median(ratios), 2)

    # -- startup and memory ----------------------------------------------------------------
    def run_startup(self) -> None:
        """Spawn to listening and spawn to the first replayed reply (the library loaded and
        indexed, the tokenizer loaded for the request checks), and resident memory then.
        The server is not pinned here: nothing else runs, and the tokenizer loads in a thread
        beside the library.  ``cold``: no parse cache; ``warm``: the second start."""
        log("startup and memory by library size")
        base = self._startup_row(self.work / "empty", 0, "-", None)
        self.results.startup.append(base)
        for n in self.plan.sizes:
            lib = self.sized_library(n)
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            for state in ("cold", "warm"):
                row = self._startup_row(lib, n, state, fixtures.request_body("json", n // 2 - 1))
                row["library_mb"] = round(row["rss_mb"] - base["rss_mb"], 1)
                self.results.startup.append(row)

    def _startup_row(self, lib: Path, n: int, state: str, body: Any) -> dict[str, Any]:
        with procs.mockserver(cassettes=lib, mode="replay", cpu=None, env=self.env) as srv:
            if body is None:  # empty library: a miss (404) after the checks, tokenizer loaded
                status, _ = procs.http(
                    srv.url + p.PATH_MESSAGES, fixtures.request_body("x", 0), HEADERS
                )
                assert status == 404, status
                first = None
            else:
                # a cold start of 100,000 interactions parses ~130 MB of YAML: minutes
                first = round(procs.first_reply(srv, body, timeout=max(120, n / 100)), 3)
            row = {
                "interactions": n,
                "parse_cache": state,
                "listening_s": round(srv.listening_s, 3),
                "first_replay_s": first,
                "rss_mb": srv.rss_mb(),
            }
        log(
            f"  {n:>6} {state}: listening {row['listening_s']} s, first replay "
            f"{row['first_replay_s']} s, rss {row['rss_mb']} MB"
        )
        return row

    def sized_library(self, n: int) -> Path:
        path = self.work / f"lib-{n}"
        if not path.exists():
            t = time.perf_counter()
            fixtures.write_library(path, json_n=n // 2, stream_n=n - n // 2)
            log(f"  library of {n} written in {time.perf_counter() - t:.1f} s")
        return path

    # -- matching -----------------------------------------------------------------------------
    def run_matching(self) -> None:
        log("matching cost by library size (in process)")
        from mockserver.cassettes.library import Library

        for n in self.plan.sizes:
            lib = Library(self.sized_library(n))
            lib.load()
            bodies = [fixtures.request_body("json", i) for i in range(n // 2)]
            misses = [fixtures.request_body("nomatch", i) for i in range(min(200, n // 2))]
            find = functools.partial(lib.find, "POST", p.PATH_MESSAGES)
            per_hit = _time_each(find, bodies, 20_000)
            per_miss = _time_each(find, misses, 5_000)
            row = {
                "interactions": n,
                "hit_us": round(per_hit * 1e6, 2),
                "miss_us": round(per_miss * 1e6, 2),
            }
            self.results.matching.append(row)
            log(f"  {n:>6}: hit {row['hit_us']} us, miss (no near-miss search) {row['miss_us']} us")
        first, last = self.results.matching[0], self.results.matching[-1]
        last["growth_vs_smallest"] = round(last["hit_us"] / first["hit_us"], 2)

    # -- schema instances (synth's tool inputs and structured replies) ----------------------------
    def run_instances(self) -> None:
        log("schema instances: one tool input or structured value, validated (in process)")
        import random
        import statistics

        from mockserver.sources.instances import instance

        from .schemas import RICH, TYPICAL

        for kind, group in (("typical", TYPICAL), ("rich", RICH)):
            for name, schema in group.items():
                instance(schema, random.Random(0))  # the validator is built once per schema
                times = []
                for seed in range(300 if self.plan.quick else 2000):
                    t = time.perf_counter()
                    instance(schema, random.Random(seed), "edit /tmp/x.txt")
                    times.append((time.perf_counter() - t) * 1e6)
                times.sort()
                row = {
                    "schema": name,
                    "kind": kind,
                    "p50_us": round(statistics.median(times), 1),
                    "p90_us": round(times[int(len(times) * 0.9)], 1),
                }
                self.results.instances.append(row)
                log(f"  {name}: p50 {row['p50_us']} us, p90 {row['p90_us']} us")

    # -- paced streams --------------------------------------------------------------------------
    def run_paced(self) -> None:
        """Paced streams: one process pinned to its core, or ``--workers N`` (not pinned:
        the processes and the load generator share the machine's cores)."""
        for clients, workers in self.plan.paced:
            log(
                f"paced streams (--timing recorded), {clients} concurrent clients, "
                f"{workers} server process(es)"
            )
            with procs.mockserver(
                cassettes=self.paced_lib,
                mode="replay",
                cpu=self.server_cpu if workers == 1 else None,
                extra=["--timing", "recorded", "--workers", str(workers)],
                env=self.env,
            ) as srv:
                for _ in range(4 * workers):  # new connections: every process loads
                    procs.first_reply(srv, fixtures.request_body("paced", 0))
                span = PACED_AT_MS[-1] / 1000
                cpu0, wall0 = srv.cpu_s(), time.perf_counter()
                r = self.load(
                    srv.url,
                    p.PATH_MESSAGES,
                    concurrency=clients,
                    bodies=self.paced_bodies,
                    tool="python",
                    duration=self.plan.paced_duration,
                    warmup=(1 if self.plan.quick else 2) * span + 1,
                    stagger=span + 0.5,
                    events=len(PACED_AT_MS),
                    extra={"at_ms": list(PACED_AT_MS), "random_start": True},
                )
                busy = (srv.cpu_s() - cpu0) / (time.perf_counter() - wall0)
                # CPU seconds per second over the whole run (ramp-up included), all the
                # server's processes: near their count, the server was saturated
                row = {
                    "clients": clients,
                    "workers": workers,
                    "server_rss_mb": srv.rss_mb(),
                    "server_busy": round(busy, 3),
                    **r,
                }
                self.results.paced.append(row)
                late = r.get("lateness_ms", {})
                log(
                    f"  {clients} x{workers}: {r['rps']} streams/s, lateness p50 "
                    f"{late.get('p50')} p99 {late.get('p99')} ms, client cpu "
                    f"{r['client_cpu']}, errors {r['errors']}"
                )

    # -- the pytest fixture, JSON libraries ----------------------------------------------------
    def run_fixture(self) -> None:
        from . import fixture_cost

        log(f"pytest: the mockserver fixture's cost over {fixture_cost.TESTS} one-request tests")
        rows = fixture_cost.measure(self.work / "fixture", rounds=3 if self.plan.quick else 7)
        for row in rows:
            self.results.fixture.append(row)
            log(f"  {row['scope']}, {row['run']}: {row['per_test_ms']} ms per test")

    def run_json(self) -> None:
        from . import json_libs

        log("JSON libraries: one request's JSON work (in process)")
        for row in json_libs.measure(self.plan.quick):
            self.results.json_libs.append(row)
            log(f"  {row}")

    def run(self) -> Results:
        self.prepare()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("throughput", lambda: Throughput(self).run(False, True)),
            ("validation", lambda: Throughput(self).run(True, False)),  # full run or --only
            ("workers", self.run_workers),
            ("startup", self.run_startup),
            ("matching", self.run_matching),
            ("instances", self.run_instances),
            ("paced", self.run_paced),
            ("fixture", self.run_fixture),
            ("json", self.run_json),
        ]
        for name, step in steps:
            if name == "validation" and self.plan.quick and "validation" not in self.plan.only:
                continue  # the quick run leaves it out (same code path in replay and synth)
            if self.wants(name):
                step()
        return self.results


def _time_each(fn: Callable[[Any], object], items: list[Any], total: int) -> float:
    n = 0
    t = time.perf_counter()
    while n < total:
        for item in items:
            fn(item)
            n += 1
            if n >= total:
                break
    return (time.perf_counter() - t) / n


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mockserver-bench-"))
