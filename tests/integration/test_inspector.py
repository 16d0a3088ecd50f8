"""The inspector page in a real headless Chromium (distribution package, driven by Playwright
for Python, no browser download): exchanges sent with the anthropic SDK show up live, open into a readable
conversation, a stream timeline, contract violations and near-miss diffs; the buttons work;
a script-bearing prompt is shown as text and never runs; the admin token is honoured.

Screenshots of the main views go to tests/_artifacts/inspector/ (git-ignored); with
MOCKSERVER_UPDATE_DOCS=1 the stream view is also copied to docs/inspector.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp import web
from browser import Session, chromium, ensure_chromium
from playwright.async_api import Page

from mockserver.cassettes import cassette as cas
from mockserver.cassettes.checks import lint_file
from mockserver.config import Settings
from mockserver.server.journal import Exchange
from mockserver.server.running import ServerThread
from mockserver.server.state import State
from mockserver.wire import protocol as p

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "_artifacts" / "inspector"
DOCS_SHOT = ROOT / "docs" / "inspector.png"
MODEL = "deepseek-v3-anthropic"
KEY = "sk-inspector-test"
PWN = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
TOKEN = "s3cret-admin-token"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="session")
def chromium_binary() -> Path:
    try:
        return ensure_chromium()
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"cannot run the browser tests: {exc}", pytrace=False)


@pytest.fixture
def servers() -> Iterator[list[ServerThread]]:
    started: list[ServerThread] = []
    yield started
    for thread in started:
        thread.stop()


def start(servers: list[ServerThread], **overrides: Any) -> ServerThread:
    thread = ServerThread(Settings(port=0, **overrides)).start()
    servers.append(thread)
    return thread


def state_of(thread: ServerThread) -> State:
    assert thread.state is not None
    return thread.state


def exchange(thread: ServerThread, prompt: str, *, last: bool = False) -> Exchange:
    """The journal entry whose last user turn is ``prompt`` (the first, or the last, one)."""

    def last_user(ex: Exchange) -> Any:
        users = [m for m in (ex.body or {}).get("messages", []) if m.get("role") == "user"]
        return users[-1]["content"] if users else None

    found = [ex for ex in state_of(thread).journal.all() if last_user(ex) == prompt]
    assert found, f"no exchange for {prompt!r}"
    return found[-1] if last else found[0]


def sdk(thread: ServerThread) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=thread.base_url, api_key=KEY, max_retries=0)


def js(value: Any) -> str:
    return json.dumps(value)


async def wait_for(page: Page, expression: str, timeout: float = 10.0) -> Any:
    """Wait until the JavaScript ``expression`` is truthy; its value.  (Polled with
    ``evaluate``: ``wait_for_function`` evaluates strings in the page, which the inspector's
    Content-Security-Policy forbids, as it should.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {expression!r} (last: {value!r})")
        await asyncio.sleep(0.05)


def detail_of(ex_id: int) -> str:
    return (
        f"document.querySelector('#detail h2') && "
        f"document.querySelector('#detail h2').textContent.startsWith('#{ex_id} ')"
    )


async def open_exchange(page: Page, ex_id: int) -> None:
    await page.click(f'#rows tr[data-id="{ex_id}"]')
    await wait_for(page, detail_of(ex_id))


async def shot(page: Page, name: str) -> Path:
    await asyncio.sleep(0.1)  # let the last layout settle
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path))
    return path


# --- the main flow: live list, conversation, stream, escaping, buttons ----------------------------


async def main_flow(browser: Session, thread: ServerThread, downloads: Path) -> None:
    page = await browser.new_page()
    ui = thread.base_url + "/_mockserver/ui"
    await page.goto(ui)
    await wait_for(page, "document.querySelector('#live').textContent === 'live'")
    assert await page.evaluate("document.querySelector('#empty').hidden") is False
    # (the server line comes from its own request, which may answer after the first poll)
    await wait_for(page, "document.querySelector('#server-info').textContent.includes('auto mode')")

    async with sdk(thread) as client:
        # replayed from the shipped cassettes: a JSON reply and a stream with recorded at_ms
        await client.messages.create(
            model=MODEL,
            max_tokens=256,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        )
        async with client.messages.stream(
            model=MODEL,
            max_tokens=256,
            messages=[{"role": "user", "content": "Write a haiku about the sea."}],
        ) as stream:
            await stream.get_final_message()
        # synthesized: a tool-use turn and the turn answering it
        ask = "What's the weather in Lisbon? Use get_weather."
        first = await client.messages.create(
            model=MODEL,
            max_tokens=256,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[{"role": "user", "content": ask}],
        )
        call = next(b for b in first.content if b.type == "tool_use")
        result_turn = [
            {"type": "tool_result", "tool_use_id": call.id, "content": "19°C, sunny"},
        ]
        await client.messages.create(
            model=MODEL,
            max_tokens=256,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": ask},
                {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                {"role": "user", "content": result_turn},  # type: ignore[typeddict-item]
            ],
        )
        # a prompt that would run script if the page rendered it as markup
        await client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": PWN}]
        )
        # a synthesized stream (no recorded timing) and a token count
        async with client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "Stream me a short synthesized answer."}],
        ) as stream:
            await stream.get_final_message()
        await client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "How many tokens is this?"}]
        )
        # a fault
        with pytest.raises(anthropic.APIStatusError) as failed:
            await client.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[{"role": "user", "content": "This one is overloaded."}],
                extra_headers={p.H_FAULT: "overloaded"},
            )
        assert failed.value.status_code == 529

    # they show up by themselves (polling), newest first
    await wait_for(page, "document.querySelectorAll('#rows tr').length === 8")
    assert await page.evaluate("document.querySelector('#empty').hidden") is True
    text_ex = exchange(thread, "Say hello in one short sentence.")
    stream_ex = exchange(thread, "Write a haiku about the sea.")
    tool_ex = exchange(thread, ask)
    pwn_ex = exchange(thread, PWN)
    fault_ex = exchange(thread, "This one is overloaded.")
    rows = await page.evaluate(
        "[...document.querySelectorAll('#rows tr')].map(tr => ({id: Number(tr.dataset.id), "
        "cells: [...tr.cells].map(td => td.textContent), "
        "tokens: tr.querySelector('.tokens').textContent, "
        "cost: tr.querySelector('.cost').textContent, "
        "stream: tr.querySelector('td .tag') !== null}))"
    )
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    by_id = {r["id"]: r["cells"] for r in rows}
    _num, _time, request, model, mode, status, fault, _usage = by_id[text_ex.id]
    assert request.startswith("POST /v1/messages") and "Say hello in one short sentence." in request
    assert (model, mode, status, fault) == (MODEL, "replayed", "200", "—")
    usage = text_ex.usage or {}
    (text_row,) = [r for r in rows if r["id"] == text_ex.id]
    assert text_row["tokens"] == f"{usage['input_tokens']} → {usage['output_tokens']}"
    assert text_row["cost"] == f"${text_ex.cost_usd}" and text_ex.cost_usd not in (None, "0")
    assert by_id[stream_ex.id][4] == "replayedstream"  # the mode, and a stream tag below it
    assert [r["id"] for r in rows if r["stream"]] == sorted(
        (ex.id for ex in state_of(thread).journal.all() if ex.stream), reverse=True
    )
    assert by_id[tool_ex.id][4] == "synthesized"
    assert by_id[fault_ex.id][5] == "529" and by_id[fault_ex.id][6] == "overloaded"
    (fault_row,) = [r for r in rows if r["id"] == fault_ex.id]
    assert fault_row["cost"] == "—"  # an error costs nothing
    # the script-bearing prompt is a line of text in the list, and nothing ran
    assert PWN in by_id[pwn_ex.id][2]
    assert await page.evaluate("window.__pwned === undefined") is True
    assert await page.evaluate("document.querySelectorAll('img').length") == 0
    assert await page.evaluate("document.scripts.length") == 1  # app.js only
    await shot(page, "list")

    # opening it shows it as text too
    await open_exchange(page, pwn_ex.id)
    bubble = await page.evaluate(
        "document.querySelector('#detail .request .msg.role-user .block.text').textContent"
    )
    assert bubble == PWN
    assert await page.evaluate("window.__pwned === undefined") is True
    assert await page.evaluate("document.querySelectorAll('img, #detail script').length") == 0

    # the tool loop as a conversation: user text, the assistant's tool call, the tool result
    answer_ex = exchange(thread, result_turn)
    await open_exchange(page, answer_ex.id)
    turns = await page.evaluate(
        "[...document.querySelectorAll('#detail .request .msg')].map(m => "
        "[m.querySelector('.role').textContent, m.textContent])"
    )
    assert [role for role, _ in turns] == ["user", "assistant", "user"]
    assert ask in turns[0][1]
    tool_call = await page.evaluate(
        "(() => { const b = document.querySelector('#detail .request .block.tool-use'); "
        "return [b.querySelector('b').textContent, JSON.parse(b.querySelector('pre').textContent)]; })()"
    )
    assert tool_call == ["get_weather", call.input]
    result = await page.evaluate(
        "document.querySelector('#detail .request .block.tool-result').textContent"
    )
    assert call.id in result and "19°C, sunny" in result
    reply_text = await page.evaluate("document.querySelector('#detail .reply .msg').textContent")
    answer = answer_ex.response["content"][0]["text"]
    assert answer in reply_text
    assert await page.evaluate("document.querySelector('#detail .stream')") is None
    await shot(page, "conversation")

    # the stream, replayed with --timing instant: written at once, its recorded at_ms beside
    await open_exchange(page, stream_ex.id)
    assert stream_ex.written is not None and stream_ex.written.at_ms is not None
    assert stream_ex.written.sent_ms is not None
    n = len(stream_ex.written.events)
    await wait_for(
        page, f"document.querySelectorAll('#detail svg.timeline rect.ev').length === {n}"
    )
    heads = await page.evaluate(
        "[...document.querySelectorAll('#detail table.events thead th')].map(th => th.textContent)"
    )
    assert heads == ["#", "sent ms", "at_ms", "event", "data"]
    table = await page.evaluate(
        "[...document.querySelectorAll('#detail table.events tbody tr')].map(tr => "
        "[tr.cells[1].textContent, tr.cells[2].textContent, tr.cells[3].textContent])"
    )
    expected = [
        (f"{sent:.1f}", f"{at:.1f}", e.name)
        for sent, at, e in zip(
            stream_ex.written.sent_ms,
            stream_ex.written.at_ms,
            stream_ex.written.events,
            strict=True,
        )
    ]
    assert [tuple(r) for r in table] == expected
    assert max(stream_ex.written.sent_ms) < 0.5 * max(stream_ex.written.at_ms)  # not paced
    note = await page.evaluate("document.querySelector('#detail .stream .note').textContent")
    assert note.startswith(f"{n} events written at once (timing instant), recorded over")
    reply_text = await page.evaluate("document.querySelector('#detail .reply .msg').textContent")
    assert "Grey waves fold and break" in reply_text
    stream_shot = await shot(page, "stream")

    # a synthesized stream has no recorded timing: its events are drawn in order
    synth_stream = exchange(thread, "Stream me a short synthesized answer.")
    await open_exchange(page, synth_stream.id)
    assert synth_stream.written is not None and synth_stream.written.at_ms is None
    n = len(synth_stream.written.events)
    await wait_for(
        page, f"document.querySelectorAll('#detail svg.timeline rect.ev').length === {n}"
    )
    note = await page.evaluate("document.querySelector('#detail .stream .note').textContent")
    assert note.startswith(f"{n} events written at once")
    if os.environ.get("MOCKSERVER_UPDATE_DOCS"):
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(stream_shot, DOCS_SHOT)

    # download the synthesized tool-use exchange as a cassette interaction
    await open_exchange(page, tool_ex.id)
    async with page.expect_download() as info:
        await page.click("#download")
    download = await info.value
    assert download.suggested_filename == f"exchange-{tool_ex.id}.yaml"
    target = downloads / download.suggested_filename
    await download.save_as(target)
    frozen = cas.loads(target.read_text(), str(target))
    assert lint_file(target) == []
    (inter,) = frozen.interactions
    assert inter.request.body == tool_ex.body
    assert inter.response.json_body() == tool_ex.response
    assert all(k not in inter.request.headers for k in p.SECRET_HEADERS)

    # reset cache: the prompt-cache simulation forgets its entries
    entries = len(state_of(thread).prompt_cache)
    await page.click("#reset-cache")
    toast = await wait_for(
        page,
        "!document.querySelector('#toast').hidden && document.querySelector('#toast').textContent",
    )
    assert toast.startswith(f"Prompt cache reset: {entries} ")
    assert len(state_of(thread).prompt_cache) == 0

    # clear journal: the list empties, and new exchanges still arrive
    await page.click("#clear-journal")
    await wait_for(page, "document.querySelectorAll('#rows tr').length === 0")
    assert len(state_of(thread).journal) == 0
    assert await page.evaluate("document.querySelector('#detail').hidden") is True
    async with sdk(thread) as client:
        await client.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "After the clear"}]
        )
    await wait_for(page, "document.querySelectorAll('#rows tr').length === 1")
    return_frozen = inter
    await replay_frozen(return_frozen, target, tool_ex)


async def replay_frozen(inter: cas.Interaction, path: Path, original: Exchange) -> None:
    """The downloaded file is a working fixture: a replay-only server answers the same request
    from it with the same message."""
    thread = ServerThread(Settings(port=0, mode="replay", cassettes=path)).start()
    try:
        async with sdk(thread) as client:
            again = await client.messages.create(**inter.request.body)
        assert again.model_dump(exclude_none=True)["content"] == original.response["content"]
        assert state_of(thread).journal.all()[-1].source == "replay"
    finally:
        thread.stop()


def test_inspector_live_list_conversation_stream_and_buttons(
    chromium_binary: Path, servers: list[ServerThread], tmp_path: Path
) -> None:
    thread = start(servers, mode="auto")

    async def run() -> None:
        async with chromium(chromium_binary) as browser:
            await main_flow(browser, thread, tmp_path)
            assert browser.errors == []

    asyncio.run(run())


# --- the stream as written, and an exchange opened by its address ---------------------------


async def timing_flow(browser: Session, servers: list[ServerThread]) -> None:
    """With --timing recorded the timeline is drawn at the moments the events were written,
    which follow the recorded offsets; an address with #ID opens that exchange at once, even
    while the list has not arrived."""
    thread = start(servers, mode="replay", timing="recorded")
    async with sdk(thread) as client:
        async with client.messages.stream(
            model=MODEL,
            max_tokens=256,
            messages=[{"role": "user", "content": "Write a haiku about the sea."}],
        ) as stream:
            await stream.get_final_message()
        await client.messages.create(
            model=MODEL,
            max_tokens=256,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        )
    stream_ex = exchange(thread, "Write a haiku about the sea.")
    written = stream_ex.written
    assert written is not None and written.at_ms is not None and written.sent_ms is not None
    for sent, at in zip(written.sent_ms, written.at_ms, strict=True):
        assert at - 5 <= sent <= at + 250, (sent, at)  # paced: never early, never far behind

    page = await browser.new_page()
    held: list[Any] = []
    released = False

    async def hold_the_list(route: Any) -> None:  # the list answers late (a slow journal)
        if released:
            await route.continue_()
        else:
            held.append(route)

    await page.route("**/_mockserver/ui/api/exchanges*", hold_the_list)
    await page.goto(thread.base_url + f"/_mockserver/ui#{stream_ex.id}")
    # at load: never the false "No exchanges yet"; the exchange itself without the list
    assert await page.evaluate("document.querySelector('#empty').hidden") is True
    await wait_for(page, detail_of(stream_ex.id), timeout=5)
    assert held and await page.evaluate("document.querySelectorAll('#rows tr').length") == 0
    assert await page.evaluate("document.querySelector('#loading').hidden") is False
    n = len(written.events)
    await wait_for(
        page, f"document.querySelectorAll('#detail svg.timeline rect.ev').length === {n}"
    )
    table = await page.evaluate(
        "[...document.querySelectorAll('#detail table.events tbody tr')].map(tr => "
        "[Number(tr.cells[1].textContent), Number(tr.cells[2].textContent)])"
    )
    # shown to 0.1 ms (the page's rounding of a half may differ from Python's round())
    assert [row[1] for row in table] == pytest.approx(written.at_ms, abs=0.051)
    assert [row[0] for row in table] == pytest.approx(written.sent_ms, abs=0.051)
    xs = await page.evaluate(
        "[...document.querySelectorAll('#detail svg.timeline rect.ev')].map(r => Number(r.getAttribute('x')))"
    )
    assert xs == sorted(xs) and xs[0] < xs[-1]  # drawn at the moments written
    note = await page.evaluate("document.querySelector('#detail .stream .note').textContent")
    assert note.startswith(f"{n} events over") and "as written" in note and "recorded over" in note
    await shot(page, "stream-timed")
    # the list arrives: the opened exchange's row is the selected one
    released = True
    for route in held:
        await route.continue_()
    await wait_for(page, f"document.querySelector('#rows tr.selected[data-id=\"{stream_ex.id}\"]')")
    assert await page.evaluate("document.querySelector('#loading').hidden") is True


def test_inspector_stream_as_written_and_exchange_by_address(
    chromium_binary: Path, servers: list[ServerThread]
) -> None:
    async def run() -> None:
        async with chromium(chromium_binary) as browser:
            await timing_flow(browser, servers)
            assert browser.errors == []

    asyncio.run(run())


# --- admin token, near misses, contract violations ----------------------------------------------


async def drifting_upstream() -> tuple[web.AppRunner, str]:
    """An upstream whose reply breaks the contract (unknown stop_reason, no usage)."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        message = {
            "id": "msg_drift",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": "drifted"}],
            "stop_reason": "weird_reason",
            "stop_sequence": None,
        }
        return web.json_response(message)

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def token_flow(browser: Session, servers: list[ServerThread], tmp_path: Path) -> None:
    thread = start(servers, mode="replay", admin_token=TOKEN)
    ui = thread.base_url + "/_mockserver/ui"
    page = await browser.new_page()

    # without the token: a clear message, nothing listed
    await page.goto(ui)
    banner = await wait_for(
        page,
        "!document.querySelector('#banner').hidden && document.querySelector('#banner').textContent",
    )
    assert "This server needs an admin token" in banner and "?token=" in banner
    assert await page.evaluate("document.querySelector('#live').textContent") == "locked"
    await shot(page, "locked")
    await page.goto(ui + "?token=wrong")
    banner = await wait_for(
        page,
        "!document.querySelector('#banner').hidden && document.querySelector('#banner').textContent",
    )
    assert "The admin token was rejected" in banner

    # with it: the unmatched request and its near-miss diff
    await page.goto(ui + f"?token={TOKEN}")
    await wait_for(page, "document.querySelector('#live').textContent === 'live'")
    assert await page.evaluate("document.querySelector('#banner').hidden") is True
    asked = "Say hello in one short sentence."  # as in text.yaml, but with another max_tokens
    async with sdk(thread) as client:
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.create(
                model=MODEL, max_tokens=100, messages=[{"role": "user", "content": asked}]
            )
    await wait_for(page, "document.querySelectorAll('#rows tr').length === 1")
    miss = exchange(thread, asked)
    cells = await page.evaluate(
        "[...document.querySelector('#rows tr').cells].map(td => td.textContent)"
    )
    assert cells[4:6] == ["unmatched", "404"]
    await open_exchange(page, miss.id)
    diff = await page.evaluate(
        "[...document.querySelectorAll('#detail .near-misses table.diff tbody tr')].map(tr => "
        "[...tr.cells].map(td => td.textContent))"
    )
    assert diff[0] == ["$.max_tokens", "256", "100"]
    heads = await page.evaluate(
        "[...document.querySelectorAll('#detail .near-head')].map(e => e.textContent)"
    )
    assert heads[0] == f"{miss.near_misses[0]['cassette']} #0 — 1 difference"
    assert len(heads) == len(miss.near_misses)
    await shot(page, "near-miss")
    # the download link carries the token
    href = await page.evaluate("document.querySelector('#download').href")
    async with aiohttp.ClientSession() as http, http.get(href) as resp:
        assert resp.status == 200
        assert resp.headers["content-disposition"] == (
            f'attachment; filename="exchange-{miss.id}.yaml"'
        )
        assert cas.loads(await resp.text()).interactions[0].response.status == 404

    # a recorded exchange whose reply breaks the contract lists its violations
    runner, upstream = await drifting_upstream()
    try:
        rec = start(servers, mode="record", upstream=upstream, cassettes=tmp_path / "rec")
        async with sdk(rec) as client:
            await client.messages.with_raw_response.create(
                model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Drift"}]
            )
    finally:
        await runner.cleanup()
    drifted = exchange(rec, "Drift")
    assert drifted.violations
    await page.goto(rec.base_url + "/_mockserver/ui")
    await wait_for(page, "document.querySelectorAll('#rows tr').length === 1")
    cells = await page.evaluate(
        "[...document.querySelector('#rows tr').cells].map(td => td.textContent)"
    )
    assert cells[4] == "recorded" and f"{len(drifted.violations)} violation" in cells[6]
    await open_exchange(page, drifted.id)
    shown = await page.evaluate(
        "[...document.querySelectorAll('#detail .violations tbody tr')].map(tr => "
        "[tr.cells[0].textContent, tr.cells[1].textContent])"
    )
    assert [r[0] for r in shown] == [v["rule"] for v in drifted.violations]
    assert any("stop_reason" in where for _, where in shown)
    await shot(page, "violations")


def test_inspector_admin_token_near_misses_and_violations(
    chromium_binary: Path, servers: list[ServerThread], tmp_path: Path
) -> None:
    async def run() -> None:
        async with chromium(chromium_binary) as browser:
            await token_flow(browser, servers, tmp_path)
            assert browser.errors == []

    asyncio.run(run())


def test_docs_screenshot_is_small() -> None:
    assert DOCS_SHOT.is_file(), "docs/inspector.png: run with MOCKSERVER_UPDATE_DOCS=1"
    assert DOCS_SHOT.stat().st_size < 300 * 1024
