"""The live suite passes against mockserver and reports each deviation of a deviant server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mockserver.cli import main as cli_main
from mockserver.contract.suite import run_suite
from mockserver.sources.compose import compose_message
from mockserver.wire import sse


def test_every_case_passes_against_mockserver(make_server: Any, tmp_path: Path) -> None:
    server = make_server(api_keys=("sk-conformance",))
    outcomes = run_suite(server.base_url, timeout=20)
    failed = [(o.case, o.why) for o in outcomes if not o.passed]
    assert not failed
    assert len(outcomes) >= 25
    dialects = {o.dialect for o in outcomes if o.case.startswith("error_")}
    assert dialects == {"anthropic"}
    report = tmp_path / "r.json"
    code = cli_main(["conformance", "--base-url", server.base_url, "--report", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["failed"] == 0 and data["passed"] == len(outcomes)


def test_a_mock_without_api_key_fails_only_the_bad_key_case_and_says_why(
    make_server: Any,
) -> None:
    server = make_server()  # as `make serve` starts it: every key is accepted
    outcomes = run_suite(server.base_url, timeout=20)
    failed = {o.case: o.why for o in outcomes if not o.passed}
    assert list(failed) == ["error_bad_key"], failed
    why = failed["error_bad_key"]
    assert "accepts every key" in why and "--api-key" in why, why


def test_deepseek_dialect_is_reported(make_server: Any, tmp_path: Path) -> None:
    from importlib import resources

    import yaml

    from mockserver.profile import load_profile

    data = yaml.safe_load(
        (resources.files("mockserver.profiles") / "deepseek-v3-anthropic.yaml").read_text()
    )
    data["dialect"] = "deepseek"
    prof = tmp_path / "ds.yaml"
    prof.write_text(yaml.safe_dump(data))
    srv = make_server(profile=load_profile(str(prof)), api_keys=("sk-conformance",))
    outcomes = {o.case: o for o in run_suite(srv.base_url, dialect="any", timeout=20)}
    assert outcomes["error_bad_role"].passed and outcomes["error_bad_role"].dialect == "deepseek"
    strict = {o.case: o for o in run_suite(srv.base_url, only=["error_bad_role"], timeout=20)}
    assert not strict["error_bad_role"].passed
    assert "deepseek-dialect" in strict["error_bad_role"].why


# --- a deliberately deviant server ---------------------------------------------------------


def _deviant_app() -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if "max_tokens" not in body or body.get("messages", [{}])[0].get("role") == "robot":
            return web.json_response(
                {
                    "error": {
                        "message": "bad",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=400,
            )
        msg = compose_message(
            body,
            model=body["model"],
            max_tokens=body["max_tokens"],
            seed=0,
            count_output=lambda c: 5,
        )
        msg["usage"] = {"input_tokens": 5, "output_tokens": 5}
        if not body.get("stream"):
            return web.json_response(msg)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        from mockserver.wire.streaming import UnfoldPlan, unfold

        events = unfold(msg, UnfoldPlan(ping=False))
        events[0], events[1] = events[1], events[0]  # wrong order: block before message_start
        for name, data in events:
            await resp.write(sse.encode(name, data))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


@pytest.fixture
def deviant() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(_deviant_app())
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{holder['port']}"
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)


def test_deviations_are_reported(deviant: str) -> None:
    out = {o.case: o for o in run_suite(deviant, timeout=10)}
    assert not out["text_stream"].passed and "message_start" in out["text_stream"].why
    assert not out["stream_has_ping"].passed
    assert not out["error_bad_role"].passed and "deepseek-dialect" in out["error_bad_role"].why
    assert not out["error_missing_max_tokens"].passed
    assert not out["models_list"].passed  # no such route at all: a 404 with a non-JSON body
    assert out["text_json"].passed  # what it does right is reported right
