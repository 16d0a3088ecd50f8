// mockserver inspector: a live list of the journal and one exchange in detail.
//
// Everything the server sends is data and is put in the page as text: elements are built
// with createElement and textContent, never by parsing markup (and the page's
// Content-Security-Policy forbids inline script besides).
"use strict";

(() => {
  const PREFIX = "/_mockserver";
  const POLL_MS = 1000;
  const token = new URLSearchParams(location.search).get("token") || "";
  const MODES = {
    replay: "replayed",
    synth: "synthesized",
    record: "recorded",
    rule: "scripted",
    unmatched: "unmatched",
    error: "error",
  };
  const ABSENT = "<absent>";

  // --- building the page: text only --------------------------------------------------------

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "title") el.title = String(value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    return append(el, children);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return append(el, children);
  }

  const $ = (id) => document.getElementById(id);
  const json = (value) => JSON.stringify(value, null, 2) ?? "undefined";
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function fmtTime(t, full) {
    const d = new Date(t * 1000);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    return full ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}` : clock;
  }

  function fmtMs(ms) {
    const n = Number(ms) || 0;
    return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 1 : 0)} ms`;
  }

  function fmtCost(cost) {
    return cost === null || cost === undefined ? "—" : `$${cost}`;
  }

  function fmtTokens(s) {
    if (s.input_tokens === null || s.input_tokens === undefined) return "—";
    return `${s.input_tokens} → ${s.output_tokens ?? "?"}`;
  }

  function statusClass(status) {
    if (!status) return "status pending";
    if (status < 300) return "status ok";
    if (status < 500) return "status warn";
    return "status bad";
  }

  const modeBadge = (source) => h("span", { class: `mode mode-${source}` }, MODES[source] || source);
  // status 0: still answering, or (disconnected) dropped before any byte of the reply
  const statusBadge = (status, dropped) =>
    h("span", { class: statusClass(status), title: dropped ? "the connection was dropped before any byte" : null }, status || (dropped ? "dropped" : "…"));

  // --- talking to the admin API ------------------------------------------------------------

  class AuthError extends Error {}

  async function api(method, path) {
    const headers = token ? { "x-mockserver-admin-token": token } : {};
    // a call that changes the server says it is JSON (the server refuses others: a page on
    // another site cannot send this without a preflight, which the server never grants)
    if (method !== "GET") headers["content-type"] = "application/json";
    const resp = await fetch(path, { method, headers, cache: "no-store" });
    if (resp.status === 401) throw new AuthError("admin token required");
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message || `${method} ${path}: HTTP ${resp.status}`);
    }
    return data;
  }

  function withToken(path) {
    return token ? `${path}?token=${encodeURIComponent(token)}` : path;
  }

  // --- banner, toast, live indicator -------------------------------------------------------

  let locked = false;

  function showLocked() {
    locked = true;
    const input = h("input", {
      type: "password",
      placeholder: "admin token",
      "aria-label": "admin token",
      autocomplete: "off",
    });
    const form = h(
      "form",
      {
        class: "token-form",
        onsubmit: (event) => {
          event.preventDefault();
          if (input.value) location.search = `?token=${encodeURIComponent(input.value)}`;
        },
      },
      input,
      h("button", { type: "submit" }, "Open"),
    );
    const banner = $("banner");
    banner.replaceChildren(
      h("strong", null, token ? "The admin token was rejected." : "This server needs an admin token."),
      " Open this page as ",
      h("code", null, "/_mockserver/ui?token=YOUR_TOKEN"),
      " (the token the server was started with), or enter it here: ",
      form,
    );
    banner.hidden = false;
    for (const id of ["pause", "reset-cache", "clear-journal"]) $(id).disabled = true;
    setLive("locked", "The admin API refused this page: no valid admin token");
    $("empty").textContent = "Nothing to show without the admin token.";
    $("loading").hidden = true;
    $("empty").hidden = false;
  }

  function setLive(state, why) {
    const live = $("live");
    live.className = `live ${state}`;
    live.textContent = { ok: "live", paused: "paused", down: "offline", locked: "locked" }[state];
    live.title = why || "The list updates every second";
  }

  let toastTimer = null;
  function toast(text, bad) {
    const el = $("toast");
    el.textContent = text;
    el.className = bad ? "toast bad" : "toast";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      el.hidden = true;
    }, 4000);
  }

  // --- the list ------------------------------------------------------------------------------

  const rows = new Map(); // id -> {summary, tr, text}
  let selected = null;
  let paused = false;

  function sinceId() {
    // re-ask for exchanges still in progress, so that they get their final state
    let newest = 0;
    let pending = Infinity;
    for (const [id, r] of rows) {
      newest = Math.max(newest, id);
      if (r.summary.pending) pending = Math.min(pending, id);
    }
    return pending < Infinity ? pending - 1 : newest;
  }

  function rowFor(x) {
    const tr = h(
      "tr",
      {
        class: x.id === selected ? "selected" : null,
        dataset: { id: x.id, source: x.source, time: x.time },
        tabindex: "0",
        onclick: () => select(x.id),
        onkeydown: (event) => {
          if (event.key === "Enter") select(x.id);
        },
      },
      h("td", { class: "num muted" }, x.id),
      h(
        "td",
        { class: "time", title: fmtTime(x.time, true) },
        h("div", null, fmtTime(x.time).slice(0, 8)),
        h("div", { class: "muted" }, x.pending ? "…" : fmtMs(x.duration_ms)),
      ),
      h(
        "td",
        { class: "request", title: x.reply ? `reply: ${x.reply}` : null },
        h("div", { class: "route" }, `${x.method} ${x.path}`),
        x.prompt ? h("div", { class: "prompt" }, x.prompt) : null,
      ),
      h("td", { class: "model", title: x.model || null }, x.model || "—"),
      h(
        "td",
        { title: x.rule ? `rule ${x.rule}` : null },
        h("div", null, modeBadge(x.source)),
        x.stream ? h("div", { class: "tag" }, "stream") : null,
      ),
      h("td", null, statusBadge(x.status, x.disconnected)),
      h(
        "td",
        { class: "fault-cell" },
        x.fault ? h("div", { class: "fault", title: x.fault }, x.fault) : h("span", { class: "muted" }, "—"),
        x.violations ? h("div", { class: "warn-tag" }, plural(x.violations, "violation")) : null,
      ),
      h(
        "td",
        { class: "num usage" },
        h("div", { class: "tokens" }, fmtTokens(x)),
        h("div", { class: "cost muted" }, fmtCost(x.cost_usd)),
      ),
    );
    return tr;
  }

  function haystack(x) {
    return [x.id, x.method, x.path, x.model, x.source, MODES[x.source], x.status, x.fault, x.prompt, x.reply]
      .join(" ")
      .toLowerCase();
  }

  function upsert(x) {
    const old = rows.get(x.id);
    if (old && JSON.stringify(old.summary) === JSON.stringify(x)) return;
    const tr = rowFor(x);
    const entry = { summary: x, tr, text: haystack(x) };
    rows.set(x.id, entry);
    const body = $("rows");
    if (old) {
      old.tr.replaceWith(tr);
      if (x.id === selected && old.summary.pending && !x.pending) select(x.id, true);
    } else {
      // newest first, by arrival (processes sharing a journal number entries as they end):
      // place before the first row that arrived earlier
      let before = null;
      for (const other of body.children) {
        const time = Number(other.dataset.time);
        if (time < x.time || (time === x.time && Number(other.dataset.id) < x.id)) {
          before = other;
          break;
        }
      }
      body.insertBefore(tr, before);
    }
    applyFilter(entry);
  }

  function prune(oldestId, count) {
    for (const [id, r] of rows) {
      if (count === 0 || (oldestId !== null && id < oldestId)) {
        r.tr.remove();
        rows.delete(id);
        if (id === selected) clearDetail();
      }
    }
  }

  function applyFilter(entry) {
    const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    const targets = entry ? [entry] : rows.values();
    for (const r of targets) r.tr.hidden = !words.every((w) => r.text.includes(w));
  }

  function updateEmpty() {
    $("loading").hidden = true; // the journal has answered once
    if (!locked) $("empty").hidden = rows.size > 0;
  }

  async function poll() {
    if (!paused && !locked) {
      try {
        const data = await api("GET", `${PREFIX}/ui/api/exchanges?since_id=${sinceId()}`);
        prune(data.oldest_id, data.count);
        for (const x of data.exchanges) upsert(x);
        updateEmpty();
        setLive("ok");
      } catch (err) {
        if (err instanceof AuthError) showLocked();
        else setLive("down", `Cannot reach the server: ${err.message}`);
      }
    }
    setTimeout(poll, POLL_MS);
  }

  async function loadServerInfo() {
    try {
      const health = await api("GET", `${PREFIX}/health`);
      $("server-info").textContent = `${health.mode} mode · profile ${health.profile}`;
    } catch (err) {
      if (err instanceof AuthError) showLocked();
    }
  }

  // --- one exchange --------------------------------------------------------------------------

  let generation = 0;

  function clearDetail() {
    selected = null;
    $("detail").hidden = true;
    $("detail").replaceChildren();
    $("detail-empty").hidden = false;
    for (const r of rows.values()) r.tr.classList.remove("selected");
  }

  async function select(id, keepScroll) {
    selected = id;
    for (const [rid, r] of rows) r.tr.classList.toggle("selected", rid === id);
    history.replaceState(null, "", `${location.pathname}${location.search}#${id}`);
    const mine = ++generation;
    let ex;
    try {
      ex = await api("GET", `${PREFIX}/journal/${id}`);
    } catch (err) {
      if (err instanceof AuthError) return showLocked();
      if (mine === generation) toast(err.message, true);
      return;
    }
    if (mine !== generation) return; // another exchange was opened meanwhile
    const pane = $("detail-pane");
    const top = pane.scrollTop;
    $("detail").replaceChildren(...renderExchange(ex));
    $("detail").hidden = false;
    $("detail-empty").hidden = true;
    pane.scrollTop = keepScroll ? top : 0;
  }

  function section(title, cls, ...children) {
    return h("section", { class: `part ${cls}` }, h("h3", null, title), ...children);
  }

  function renderExchange(ex) {
    const usage = ex.usage || {};
    const facts = [
      ["Time", fmtTime(ex.time, true)],
      ["Request id", ex.request_id],
      ["Duration", fmtMs(ex.duration_ms)],
      ["Model", ex.model || "—"],
      ["API key", ex.api_key],
      [
        "Tokens",
        usage.input_tokens === undefined
          ? "—"
          : `${usage.input_tokens} in → ${usage.output_tokens ?? "?"} out` +
            (usage.cache_read_input_tokens ? ` · ${usage.cache_read_input_tokens} cache read` : "") +
            (usage.cache_creation_input_tokens ? ` · ${usage.cache_creation_input_tokens} cache write` : ""),
      ],
      ["Cost", fmtCost(ex.cost_usd)],
      ["Fault", ex.fault || "none"],
      ...(ex.rule ? [["Rule", ex.rule]] : []),
      ...(ex.disconnected ? [["Connection", ex.status ? "dropped before the reply ended" : "dropped before any byte"]] : []),
    ];
    const download = h(
      "a",
      {
        class: "button",
        id: "download",
        href: withToken(`${PREFIX}/journal/${ex.id}/interaction`),
        download: `exchange-${ex.id}.yaml`,
        title: "This exchange as a one-interaction cassette (YAML): replay it as a fixture",
      },
      "Download as cassette interaction",
    );
    const out = [
      h(
        "div",
        { class: "detail-head" },
        h(
          "h2",
          null,
          h("span", { class: "muted" }, `#${ex.id} `),
          `${ex.method} ${ex.path}${ex.query ? "?" + ex.query : ""}`,
        ),
        h(
          "div",
          { class: "badges" },
          modeBadge(ex.source),
          statusBadge(ex.status, ex.disconnected),
          ex.stream ? h("span", { class: "tag" }, "stream") : null,
          ex.fault ? h("span", { class: "fault" }, ex.fault) : null,
          h("span", { class: "spacer" }),
          download,
        ),
        h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))),
      ),
    ];
    if (ex.violations && ex.violations.length) {
      out.push(section(`Contract violations (${ex.violations.length})`, "violations", violationsTable(ex.violations)));
    }
    out.push(section("Request", "request", requestView(ex.body)));
    if (ex.source === "unmatched" || (ex.near_misses && ex.near_misses.length)) {
      out.push(
        section("Why it did not match: the closest recorded interactions", "near-misses", nearMisses(ex.near_misses || [])),
      );
    }
    out.push(section(ex.status && ex.status >= 400 ? "Reply (error)" : "Reply", "reply", replyView(ex.response)));
    if (ex.events && ex.events.length) {
      out.push(section(`Stream (${plural(ex.events.length, "event")})`, "stream", streamView(ex.events)));
    }
    out.push(
      section(
        "Raw",
        "raw",
        h("details", null, h("summary", null, "Request headers (secrets masked)"), h("pre", { class: "json" }, json(ex.headers))),
        h("details", null, h("summary", null, "Request body"), h("pre", { class: "json" }, json(ex.body))),
        h("details", null, h("summary", null, "Reply body"), h("pre", { class: "json" }, json(ex.response))),
      ),
    );
    return out;
  }

  // --- the request as a conversation -------------------------------------------------------

  const PARAMS = ["model", "max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "tool_choice", "thinking", "metadata"];

  function requestView(body) {
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      return h("p", { class: "muted" }, body === null || body === undefined ? "(no body)" : json(body));
    }
    const parts = [];
    const chips = PARAMS.filter((k) => k in body).map((k) =>
      h("span", { class: "chip" }, h("span", { class: "muted" }, `${k} `), typeof body[k] === "object" ? JSON.stringify(body[k]) : String(body[k])),
    );
    if (chips.length) parts.push(h("div", { class: "chips" }, chips));
    if (Array.isArray(body.tools) && body.tools.length) {
      parts.push(
        h(
          "details",
          { class: "tools" },
          h("summary", null, `Tools offered (${body.tools.length}): `, body.tools.map((t) => (t && t.name) || "?").join(", ")),
          body.tools.map((t) =>
            h(
              "div",
              { class: "tool" },
              h("b", null, (t && t.name) || "?"),
              t && t.description ? h("span", { class: "muted" }, ` — ${t.description}`) : null,
              h("pre", { class: "json" }, json(t && t.input_schema)),
            ),
          ),
        ),
      );
    }
    const turns = [];
    if (body.system !== undefined && body.system !== null && body.system !== "") {
      turns.push(turn("system", body.system));
    }
    for (const m of Array.isArray(body.messages) ? body.messages : []) {
      turns.push(turn(m && m.role, m && m.content));
    }
    parts.push(turns.length ? h("ol", { class: "conversation" }, turns) : h("p", { class: "muted" }, "(no messages)"));
    return parts;
  }

  function turn(role, content) {
    const name = typeof role === "string" ? role : "?";
    const cls = ["user", "assistant", "system"].includes(name) ? name : "other";
    return h("li", { class: `msg role-${cls}` }, h("div", { class: "role" }, name), contentView(content));
  }

  function contentView(content) {
    if (typeof content === "string") return h("div", { class: "block text" }, content);
    if (!Array.isArray(content)) return h("pre", { class: "block json" }, json(content));
    return content.map(blockView);
  }

  function blockHead(kind, ...rest) {
    return h("div", { class: "block-head" }, h("span", { class: "kind" }, kind), ...rest);
  }

  function blockView(b) {
    if (!b || typeof b !== "object") return h("pre", { class: "block json" }, json(b));
    switch (b.type) {
      case "text":
        return h("div", { class: "block text" }, String(b.text ?? ""));
      case "tool_use":
      case "server_tool_use":
        return h(
          "div",
          { class: "block tool-use" },
          blockHead("tool call", h("b", null, String(b.name ?? "?")), h("code", { class: "muted" }, String(b.id ?? ""))),
          h("pre", { class: "json" }, json(b.input)),
        );
      case "tool_result":
        return h(
          "div",
          { class: `block tool-result${b.is_error ? " is-error" : ""}` },
          blockHead(
            b.is_error ? "tool error" : "tool result",
            h("span", { class: "muted" }, "for "),
            h("code", null, String(b.tool_use_id ?? "?")),
          ),
          b.content === undefined ? h("div", { class: "muted" }, "(empty)") : contentView(b.content),
        );
      case "thinking":
        return h("div", { class: "block thinking" }, blockHead("thinking"), h("div", { class: "text" }, String(b.thinking ?? "")));
      case "redacted_thinking":
        return h("div", { class: "block thinking" }, blockHead("redacted thinking"));
      case "image":
      case "document": {
        const src = b.source || {};
        return h("div", { class: "block media" }, blockHead(b.type), h("span", { class: "muted" }, `${src.type || "?"} ${src.media_type || ""} (not shown)`));
      }
      default:
        return h("div", { class: "block other" }, blockHead(String(b.type ?? "block")), h("pre", { class: "json" }, json(b)));
    }
  }

  // --- the reply -----------------------------------------------------------------------------

  function replyView(resp) {
    if (resp === null || resp === undefined) return h("p", { class: "muted" }, "(no reply body: the connection was dropped, or the reply is still being written)");
    if (typeof resp === "string") return h("pre", { class: "json" }, resp);
    if (resp.error && typeof resp.error === "object") {
      return h(
        "div",
        { class: "error-box" },
        h("b", null, String(resp.error.type ?? "error")),
        h("div", { class: "error-message" }, String(resp.error.message ?? "")),
      );
    }
    if (resp.type === "message") {
      return [
        h("ol", { class: "conversation" }, h("li", { class: "msg role-assistant" }, h("div", { class: "role" }, resp.role || "assistant"), contentView(resp.content))),
        h(
          "div",
          { class: "chips" },
          h("span", { class: "chip" }, h("span", { class: "muted" }, "stop_reason "), String(resp.stop_reason)),
          resp.stop_sequence ? h("span", { class: "chip" }, h("span", { class: "muted" }, "stop_sequence "), resp.stop_sequence) : null,
          h("span", { class: "chip" }, h("span", { class: "muted" }, "id "), String(resp.id)),
        ),
      ];
    }
    return h("pre", { class: "json" }, json(resp));
  }

  // --- the stream: timeline and event list ---------------------------------------------------

  const LANES = ["message", "block", "delta", "ping", "error"];

  function lane(name) {
    if (name === "content_block_delta") return "delta";
    if (name === "content_block_start" || name === "content_block_stop") return "block";
    if (name === "ping") return "ping";
    if (name === "error") return "error";
    return "message";
  }

  function eventDetail(e) {
    const d = e.data && typeof e.data === "object" ? e.data : null;
    if (!d) return String(e.data ?? "");
    switch (e.event) {
      case "message_start":
        return `${d.message?.id ?? ""} · ${d.message?.model ?? ""} · input_tokens ${d.message?.usage?.input_tokens ?? "?"}`;
      case "content_block_start": {
        const b = d.content_block || {};
        return `[${d.index}] ${b.type}${b.name ? " " + b.name : ""}`;
      }
      case "content_block_delta": {
        const delta = d.delta || {};
        const text = delta.text ?? delta.partial_json ?? delta.thinking ?? delta.signature ?? "";
        return `[${d.index}] ${delta.type}: ${JSON.stringify(text)}`;
      }
      case "content_block_stop":
        return `[${d.index}]`;
      case "message_delta":
        return `stop_reason ${d.delta?.stop_reason ?? "?"} · output_tokens ${d.usage?.output_tokens ?? "?"}`;
      case "error":
        return `${d.error?.type ?? "error"}: ${d.error?.message ?? ""}`;
      default:
        return "";
    }
  }

  function span(times) {
    return times.length ? Math.max(0, ...times) : 0;
  }

  function streamView(events) {
    // sent_ms: when each event was written (ms after the response headers); at_ms: the offset
    // recorded in the cassette (replays and recordings only)
    const sent = events.map((e) => (e.sent_ms === null || e.sent_ms === undefined ? null : Number(e.sent_ms)));
    const rec = events.map((e) => (e.at_ms === null || e.at_ms === undefined ? null : Number(e.at_ms)));
    const hasSent = sent.some((v) => v !== null);
    const hasRec = rec.some((v) => v !== null);
    const at = (hasSent ? sent : rec).map((v) => v ?? 0);
    const total = span(at);
    const recSpan = span(rec.map((v) => v ?? 0));
    // paced: spread out as recorded (--timing recorded or SPEEDx), or by stalls; a stream
    // written at once still spans a few ms on a busy machine: that is drawn in order
    const timed = hasSent && hasRec ? total >= 0.5 * recSpan && total >= 1 : total >= 20;
    const W = Math.max(360, Math.round($("detail-pane").clientWidth - 48)); // 1:1 pixels
    const left = 64;
    const right = 14;
    const laneH = 16;
    const top = 4;
    const axisY = top + LANES.length * laneH + 4;
    const H = axisY + 18;
    const x = (i) => left + (W - left - right) * (timed ? at[i] / total : events.length > 1 ? i / (events.length - 1) : 0);
    const svg = s("svg", {
      class: "timeline",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": timed ? `Stream timeline: ${events.length} events over ${fmtMs(total)}` : `Stream: ${events.length} events in order`,
    });
    LANES.forEach((name, k) => {
      const y = top + k * laneH;
      svg.append(
        s("text", { x: 0, y: y + laneH - 5, class: "lane-label" }, name),
        s("line", { x1: left, x2: W - right, y1: y + laneH / 2, y2: y + laneH / 2, class: "lane-line" }),
      );
    });
    events.forEach((e, i) => {
      const k = LANES.indexOf(lane(e.event));
      const when = hasSent ? `sent at ${at[i]} ms` : `at ${at[i]} ms`;
      const recorded = hasSent && rec[i] !== null ? `, recorded at ${rec[i]} ms` : "";
      svg.append(
        s(
          "rect",
          { class: `ev lane-${LANES[k]}`, x: (x(i) - 1.5).toFixed(2), y: top + k * laneH + 2, width: 3, height: laneH - 4, rx: 1 },
          s("title", null, `#${i} ${e.event} ${when}${recorded}`),
        ),
      );
    });
    svg.append(s("line", { x1: left, x2: W - right, y1: axisY, y2: axisY, class: "axis" }));
    const ticks = timed ? [0, 0.25, 0.5, 0.75, 1] : [0, 1];
    for (const f of ticks) {
      const tx = left + (W - left - right) * f;
      const label = timed ? fmtMs(total * f) : f === 0 ? "first event" : "last event";
      svg.append(
        s("line", { x1: tx, x2: tx, y1: axisY, y2: axisY + 4, class: "axis" }),
        s("text", { x: tx, y: axisY + 15, class: "tick", "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }, label),
      );
    }
    const n = plural(events.length, "event");
    let note;
    if (!hasSent) note = timed ? `${n} over ${fmtMs(total)} (at_ms: the offset of each event from the start of the reply, as recorded)` : `${n} (no timing known)`;
    else if (timed) note = `${n} over ${fmtMs(total)} as written (sent: ms after the response headers)` + (hasRec ? `; recorded over ${fmtMs(recSpan)} (at_ms)` : "");
    else if (hasRec) note = `${n} written at once (timing instant), recorded over ${fmtMs(recSpan)}: the recorded offsets are in the at_ms column`;
    else note = `${n} written at once (synthesized: no recorded timing, so they are drawn in order)`;
    const heads = [h("th", { class: "num" }, "#")];
    if (hasSent) heads.push(h("th", { class: "num", title: "when the event was written, ms after the response headers" }, "sent ms"));
    if (hasRec) heads.push(h("th", { class: "num", title: "the offset recorded in the cassette" }, "at_ms"));
    heads.push(h("th", null, "event"), h("th", null, "data"));
    const table = h(
      "table",
      { class: "events" },
      h("thead", null, h("tr", null, ...heads)),
      h(
        "tbody",
        null,
        events.map((e, i) =>
          h(
            "tr",
            { class: `lane-${lane(e.event)}` },
            h("td", { class: "num muted" }, i),
            hasSent ? h("td", { class: "num sent" }, sent[i] === null ? "—" : sent[i].toFixed(1)) : null,
            hasRec ? h("td", { class: "num recorded-at" }, rec[i] === null ? "—" : rec[i].toFixed(1)) : null,
            h("td", null, h("span", { class: "ev-name" }, String(e.event ?? "(unnamed)"))),
            h("td", { class: "ev-data", title: typeof e.data === "string" ? e.data : JSON.stringify(e.data) }, eventDetail(e)),
          ),
        ),
      ),
    );
    return [svg, h("p", { class: "note muted" }, note), h("div", { class: "events-wrap" }, table)];
  }

  // --- contract violations and near misses -------------------------------------------------------

  function violationsTable(list) {
    return h(
      "table",
      { class: "grid" },
      h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", null, "Where"), h("th", null, "Message"))),
      h(
        "tbody",
        null,
        list.map((v) =>
          h(
            "tr",
            null,
            h("td", null, h("code", null, String(v.rule))),
            h("td", null, h("code", null, String(v.path)), v.event !== null && v.event !== undefined ? ` (event ${v.event})` : ""),
            h("td", null, String(v.message)),
          ),
        ),
      ),
    );
  }

  function diffValue(value) {
    if (value === ABSENT) return h("em", { class: "muted" }, "(absent)");
    return h("pre", { class: "value" }, typeof value === "string" ? value : json(value));
  }

  function nearMisses(list) {
    if (!list.length) {
      return h("p", { class: "muted" }, "Nothing recorded on this route to compare with (see the reply for what the server looked at).");
    }
    return list.map((nm) =>
      h(
        "div",
        { class: "near" },
        h(
          "div",
          { class: "near-head" },
          h("b", null, `${nm.cassette} #${nm.interaction}`),
          h("span", { class: "muted" }, ` — ${plural(nm.differences, "difference")}`),
        ),
        h(
          "table",
          { class: "grid diff" },
          h("thead", null, h("tr", null, h("th", null, "JSON path"), h("th", null, "Recorded"), h("th", null, "Requested"))),
          h(
            "tbody",
            null,
            (nm.diff || []).map((d) =>
              h("tr", null, h("td", null, h("code", null, String(d.path))), h("td", { class: "recorded" }, diffValue(d.recorded)), h("td", { class: "requested" }, diffValue(d.requested))),
            ),
          ),
        ),
        nm.differences > (nm.diff || []).length ? h("p", { class: "muted" }, `and ${nm.differences - nm.diff.length} more`) : null,
      ),
    );
  }

  // --- buttons and keys -------------------------------------------------------------------------

  async function clearJournal() {
    try {
      const data = await api("DELETE", `${PREFIX}/journal`);
      for (const r of rows.values()) r.tr.remove();
      rows.clear();
      clearDetail();
      updateEmpty();
      toast(`Journal cleared: ${plural(data.deleted, "exchange")} removed`);
    } catch (err) {
      if (err instanceof AuthError) showLocked();
      else toast(err.message, true);
    }
  }

  async function resetCache() {
    try {
      const data = await api("DELETE", `${PREFIX}/cache`);
      toast(`Prompt cache reset: ${data.deleted} ${data.deleted === 1 ? "entry" : "entries"} dropped`);
    } catch (err) {
      if (err instanceof AuthError) showLocked();
      else toast(err.message, true);
    }
  }

  function togglePause() {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    setLive(paused ? "paused" : "ok", paused ? "Updates paused" : null);
  }

  function move(step) {
    const visible = [...$("rows").children].filter((tr) => !tr.hidden);
    if (!visible.length) return;
    const at = visible.findIndex((tr) => Number(tr.dataset.id) === selected);
    const next = visible[Math.min(visible.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
    select(Number(next.dataset.id));
    next.scrollIntoView({ block: "nearest" });
  }

  function start() {
    $("clear-journal").addEventListener("click", clearJournal);
    $("reset-cache").addEventListener("click", resetCache);
    $("pause").addEventListener("click", togglePause);
    $("filter").addEventListener("input", () => applyFilter(null));
    document.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement) return;
      if (event.key === "ArrowDown" || event.key === "j") move(1);
      else if (event.key === "ArrowUp" || event.key === "k") move(-1);
      else return;
      event.preventDefault();
    });
    loadServerInfo();
    poll();
    // an exchange named in the address (#ID) opens at once, without waiting for the list
    const wanted = Number(location.hash.slice(1));
    if (Number.isInteger(wanted) && wanted > 0) select(wanted);
  }

  start();
})();
