"""Driving ``wrk`` (Debian package ``wrk``), when installed: a C load generator that a
Python server cannot outrun, so the ceiling's figures are the server's, not the client's.

The Lua script cycles through a file of request bodies (or makes a fresh prompt per
request) and prints one JSON line in ``done``.  ``wrk`` measures whole replies (for a
stream: until its last event); time to first event comes from the Python generator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_LUA = r"""
local reqs = {}
local fresh = nil
local n = 0
local tag = tostring(math.random(1, 1000000000))
local headers = HEADERS

init = function(args)
  if FRESH ~= nil then
    fresh = FRESH
  else
    for line in io.lines(BODIES) do
      reqs[#reqs + 1] = wrk.format("POST", PATH, headers, line)
    end
  end
end

request = function()
  n = n + 1
  if fresh ~= nil then
    local body = string.gsub(fresh, "{N}", tag .. "-" .. n)
    return wrk.format("POST", PATH, headers, body)
  end
  return reqs[(n - 1) % #reqs + 1]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None and os.environ.get("BENCH_NO_WRK") != "1"


def _lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for our text


def script(path: str, headers: dict[str, str], bodies: Path | None, fresh: Any | None) -> str:
    hdr = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    head = [f"PATH = {_lua_string(path)}", f"HEADERS = {{{hdr}}}"]
    if fresh is not None:
        head.append(f"FRESH = {_lua_string(json.dumps(fresh, separators=(',', ':')))}")
    else:
        assert bodies is not None
        head.append(f"BODIES = {_lua_string(str(bodies))}")
    return "\n".join(head) + "\n" + _LUA


def run(
    *,
    url: str,
    path: str,
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    bodies: Path | None = None,
    fresh: Any | None = None,
    cpu: int | None = None,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """One ``wrk`` run (after a short unmeasured warm-up run); the result in the same shape
    as the Python generator's."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script(path, headers, bodies, fresh))
        lua = f.name
    try:
        prefix = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
        threads = "1"
        conns = str(max(1, concurrency))

        def once(seconds: float) -> str:
            cmd = [
                *prefix, "wrk", "-t", threads, "-c", conns, "-d", f"{max(1, round(seconds))}s",
                "--latency", "--timeout", "10s", "-s", lua, url,
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"wrk failed: {proc.stderr.strip() or proc.stdout.strip()}")
            return proc.stdout

        if warmup > 0:
            once(warmup)
        out = once(duration)
    finally:
        os.unlink(lua)
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out}")
    raw = json.loads(line[len("WRKJSON ") :])
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    ms = {k: round(raw[k] / 1000, 3) for k in ("p50", "p90", "p99", "max")}
    return {
        "tool": "wrk",
        "concurrency": concurrency,
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "errors": errors,
        "latency_ms": ms,
        "bytes_per_reply": round(raw["bytes"] / max(1, raw["requests"]), 1),
    }
