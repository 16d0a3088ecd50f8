"""Soak benchmark (not a test): ``python -m bench.soak [--minutes 10] [--rate 25]``.

Starts ``mockserver serve --mode auto`` as a child process and sends it mixed traffic at a
steady rate for the whole run: synthesized JSON replies and streams (a different prompt every
time), replays of the shipped example cassettes (JSON and stream), and ``count_tokens`` calls.
Requests are launched on an open-loop schedule (request k at ``k / rate`` seconds, whatever
the earlier ones are doing), so a slow server shows as latency, not as a lower rate.

Reported per interval (a minute by default): requests, errors, p50/p99/max latency (time to
the complete reply) and the server's resident memory (``VmRSS``); overall: the error count,
p99, and resident memory at the start (after a warm-up) and at the end.  The journal keeps
the last 10,000 exchanges, so memory grows until it is full (at 25 requests/s: after ~7
minutes); the growth over the last third of the run is reported separately as the leak signal.

Every reply is checked: status 200, a complete JSON message or a stream ending in
``message_stop``; every 10th also passes the full contract checks.  The results go to
``bench/results/soak-<UTC time>.json``.  Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from mockserver.cassettes import cassette as cas
from mockserver.config import default_cassettes_dir
from mockserver.contract import conformance

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "deepseek-v3-anthropic"
HEADERS = {"x-api-key": "sk-soak-0001", "anthropic-version": "2023-06-01"}
#: share of each kind of request (weights)
MIX = {"synth_json": 35, "synth_stream": 35, "replay": 20, "count_tokens": 10}
MAX_IN_FLIGHT = 512


@dataclass
class Sample:
    at: float  # seconds since the start of the run (when it was scheduled)
    kind: str
    latency: float
    ok: bool
    error: str = ""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str

    def rss_kb(self, field_name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(mode: str) -> Server:
    cmd = [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--mode", mode]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found:
            return Server(proc, found.group(0))
    proc.kill()
    raise SystemExit("mockserver did not start")


def replay_bodies() -> list[dict[str, Any]]:
    """Requests the shipped example cassettes answer with a 200."""
    out: list[dict[str, Any]] = []
    for path in cas.discover(default_cassettes_dir()):
        interactions = cas.load(path).interactions
        if any(i.response.status != 200 for i in interactions):
            continue  # (a cassette that answers an error first: not a steady request)
        out += [i.request.body for i in interactions if i.request.path == "/v1/messages"]
    return out


@dataclass
class Traffic:
    replays: list[dict[str, Any]]
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for kind, weight in MIX.items():
            self.kinds += [kind] * weight

    def request(self, k: int) -> tuple[str, str, dict[str, Any]]:
        """(kind, path, body) of request number ``k`` (a fixed, spread-out order)."""
        kind = self.kinds[(k * 37) % len(self.kinds)]
        prompt = f"soak request {k}: tell me something about the number {k % 997}"
        messages = [{"role": "user", "content": prompt}]
        if kind == "count_tokens":
            return kind, "/v1/messages/count_tokens", {"model": MODEL, "messages": messages}
        if kind == "replay" and self.replays:
            return kind, "/v1/messages", self.replays[k % len(self.replays)]
        body = {"model": MODEL, "max_tokens": 64 + k % 256, "messages": messages}
        if kind == "synth_stream":
            body["stream"] = True
        return kind, "/v1/messages", body


def check(kind: str, status: int, ctype: str, data: bytes, full: bool) -> str:
    """ "" when the reply is good, else what is wrong with it."""
    if status != 200:
        return f"status {status}: {data[:200]!r}"
    if ctype.startswith("text/event-stream"):
        if b"event: message_stop" not in data:
            return "stream without message_stop"
        if full and (found := conformance.check_sse_bytes(data)):
            return f"stream violates the contract: {found[0]}"
        return ""
    body = json.loads(data)
    if kind == "count_tokens":
        return "" if isinstance(body.get("input_tokens"), int) else f"bad count: {body}"
    if body.get("type") != "message":
        return f"not a message: {str(body)[:200]}"
    if full and (found := conformance.check_message(body)):
        return f"message violates the contract: {found[0]}"
    return ""


async def one(
    session: aiohttp.ClientSession, url: str, traffic: Traffic, k: int, at: float
) -> Sample:
    kind, path, body = traffic.request(k)
    t0 = time.monotonic()
    try:
        async with session.post(url + path, json=body, headers=HEADERS) as resp:
            data = await resp.read()
            error = check(kind, resp.status, resp.content_type, data, full=k % 10 == 0)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Sample(at, kind, time.monotonic() - t0, not error, error)


async def drive(server: Server, seconds: float, rate: float, interval: float) -> dict[str, Any]:
    traffic = Traffic(replay_bodies())
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    samples: list[Sample] = []
    memory: list[dict[str, float]] = []
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for k in range(20):  # warm-up: tokenizer, cassettes, first allocations
            await one(session, server.url, traffic, k, 0.0)
        rss_start = server.rss_kb()
        pending: set[asyncio.Task[Sample]] = set()
        start = time.monotonic()
        next_report = interval
        k = 0
        while (now := time.monotonic() - start) < seconds:
            due = k / rate
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            task = asyncio.ensure_future(one(session, server.url, traffic, k + 20, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(lambda t: samples.append(t.result()))
            k += 1
            if now >= next_report:
                memory.append({"at": round(now, 1), "rss_mb": server.rss_kb() / 1024})
                report_interval(samples, next_report - interval, next_report, memory[-1])
                next_report += interval
        if pending:
            await asyncio.wait(pending, timeout=60)
        memory.append({"at": round(time.monotonic() - start, 1), "rss_mb": server.rss_kb() / 1024})
        report_interval(samples, next_report - interval, seconds, memory[-1])
    return summarize(samples, memory, rss_start / 1024, server.rss_kb("VmHWM") / 1024, interval)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def window(samples: list[Sample], lo: float, hi: float) -> dict[str, Any]:
    inside = [s for s in samples if lo <= s.at < hi]
    lat = [s.latency * 1000 for s in inside]
    return {
        "from_s": round(lo, 1),
        "to_s": round(hi, 1),
        "requests": len(inside),
        "errors": sum(not s.ok for s in inside),
        "p50_ms": round(pct(lat, 0.50), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "max_ms": round(max(lat, default=0.0), 2),
    }


def report_interval(samples: list[Sample], lo: float, hi: float, mem: dict[str, float]) -> None:
    w = window(samples, lo, hi)
    print(
        f"{w['from_s']:7.0f}-{w['to_s']:<6.0f}s  {w['requests']:6d} req  {w['errors']:4d} err  "
        f"p50 {w['p50_ms']:7.1f} ms  p99 {w['p99_ms']:7.1f} ms  max {w['max_ms']:7.1f} ms  "
        f"rss {mem['rss_mb']:7.1f} MB",
        flush=True,
    )


def summarize(
    samples: list[Sample],
    memory: list[dict[str, float]],
    rss_start: float,
    rss_peak: float,
    interval: float,
) -> dict[str, Any]:
    end = max((s.at for s in samples), default=0.0)
    windows = []
    lo = 0.0
    while lo <= end:
        windows.append(window(samples, lo, lo + interval))
        lo += interval
    errors = [s for s in samples if not s.ok]
    kinds = sorted({s.kind for s in samples})
    last_third = [m for m in memory if m["at"] >= end * 2 / 3]
    return {
        "requests": len(samples),
        "errors": len(errors),
        "error_examples": sorted({s.error for s in errors})[:10],
        "p50_ms": round(pct([s.latency * 1000 for s in samples], 0.50), 2),
        "p99_ms": round(pct([s.latency * 1000 for s in samples], 0.99), 2),
        "by_kind": {
            k: {
                "requests": sum(s.kind == k for s in samples),
                "p99_ms": round(pct([s.latency * 1000 for s in samples if s.kind == k], 0.99), 2),
            }
            for k in kinds
        },
        "intervals": windows,
        "rss_mb": {
            "start": round(rss_start, 1),
            "end": round(memory[-1]["rss_mb"], 1) if memory else None,
            "peak": round(rss_peak, 1),
            "growth_last_third": round(last_third[-1]["rss_mb"] - last_third[0]["rss_mb"], 1)
            if len(last_third) >= 2
            else None,
            "samples": memory,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second (default 25)")
    parser.add_argument(
        "--interval", type=float, default=60.0, help="seconds per reported interval (default 60)"
    )
    parser.add_argument("--mode", default="auto", help="server mode (default auto)")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    print(f"soak: {args.minutes:g} min at {args.rate:g} req/s, mode {args.mode}, mix {MIX}")
    server = start_server(args.mode)
    try:
        result = asyncio.run(drive(server, seconds, args.rate, min(args.interval, seconds)))
    finally:
        server.stop()
    result["config"] = {"minutes": args.minutes, "rate": args.rate, "mode": args.mode, "mix": MIX}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    rss = result["rss_mb"]
    print(
        f"\n{result['requests']} requests, {result['errors']} errors, p99 {result['p99_ms']} ms; "
        f"RSS start {rss['start']} MB, end {rss['end']} MB, peak {rss['peak']} MB, "
        f"last-third growth {rss['growth_last_third']} MB\nresults written to {out}"
    )
    for example in result["error_examples"]:
        print(f"  error: {example}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
