// The operator console: the live list of runs, one run drawn as a sequence diagram and
// on a time axis, and the time per step. Plain ES2020, no framework, no build step.
//
// Everything that comes from the gateway (IDs, keys, codes, status texts) reaches the
// page as text nodes or attribute values, never as markup.
"use strict";

(() => {
  const API = "/console/api";
  const POLL_MS = 1000;
  const RETRY_MS = 3000;
  const SUMMARY_MS = 5000;
  const FIRST_PAGE = 50;
  const POLL_PAGE = 200;
  const MAX_ROWS = 300;
  const SVGNS = "http://www.w3.org/2000/svg";
  const NAMES = {
    client: "Client",
    gateway: "Gateway",
    auth: "Auth",
    orders: "Orders",
    billing: "Billing",
    notifications: "Notifications",
    profiles: "Profiles",
  };

  const state = {
    last: 0, // the newest seq the list has asked about
    outcome: "",
    q: "",
    live: true,
    selected: null, // the open run's ID
    run: null, // the open run, to draw again when the window changes size
    generation: 0, // bumped when the filters change, so a late answer is dropped
    pollTimer: 0,
    shown: new Set(),
  };

  const $ = (id) => document.getElementById(id);

  // ----- small DOM helpers: text always through textContent or text nodes -----

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    if (text != null) node.textContent = text;
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (name === "class") node.setAttribute("class", value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function tooltip(node, text) {
    node.append(svg("title", {}, text));
    return node;
  }

  // ----- formats -----

  // Integer minor units to "123.45 RUB", by string, never through a float.
  function money(total, currency) {
    if (total == null) return null;
    const digits = String(Math.abs(total)).padStart(3, "0");
    const sign = total < 0 ? "-" : "";
    return `${sign}${digits.slice(0, -2)}.${digits.slice(-2)} ${currency || ""}`.trim();
  }

  function ms(value) {
    if (value == null || Number.isNaN(value)) return "–";
    if (value < 10) return value.toFixed(2);
    if (value < 1000) return value.toFixed(1);
    return Math.round(value).toString();
  }

  function clock(iso) {
    const found = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(iso || "");
    return found ? found[1] : iso || "";
  }

  function shortId(id) {
    return id ? id.slice(0, 8) : "";
  }

  function answerText(call) {
    if (call.status == null) return `no answer: ${call.status_text || call.reason || "unknown"}`;
    return `${call.status} ${call.status_text || ""}`.trim();
  }

  // ----- HTTP -----

  class HttpError extends Error {
    constructor(status, body) {
      super((body && (body.description || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function getJSON(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== "" && value != null) query.set(name, String(value));
    }
    const url = query.toString() ? `${path}?${query}` : path;
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) throw new HttpError(response.status, body);
    return body;
  }

  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => box.classList.remove("show"), 1800);
  }

  // ----- the list -----

  function idCell(value, cls) {
    if (!value) return el("td", { class: cls }, el("span", { class: "none", text: "—" }));
    // The whole ID is in the cell (CSS cuts it short), so selecting and copying gives it all.
    return el("td", { class: cls, title: value, text: value });
  }

  // "stopped at step 5 (unavailable)": the word in its colour, the rest beside it.
  function outcomeCell(run) {
    const word = run.outcome.replace(/_/g, " ");
    const text = run.outcome_text || word;
    let rest = text.startsWith(word) ? text.slice(word.length).trim() : text;
    if (/^\(.*\)$/.test(rest)) rest = rest.slice(1, -1);
    rest = rest.replace(/^at /, "");
    return el(
      "td",
      { class: "outcome", title: text },
      el("span", { class: `badge o-${run.outcome}`, text: word }),
      rest ? el("span", { class: "why", text: ` ${rest}` }) : null,
    );
  }

  function runRow(run, fresh) {
    const total = money(run.total, run.currency);
    const row = el(
      "tr",
      {
        "data-id": run.id,
        "data-seq": run.seq,
        "data-outcome": run.outcome,
        tabindex: "-1",
        "aria-selected": run.id === state.selected ? "true" : "false",
        class: fresh ? "fresh" : null,
      },
      el("td", { class: "time", title: run.started_at, text: clock(run.started_at) }),
      el("td", { class: "kind", text: run.kind === "registration" ? "reg." : "order" }),
      idCell(run.order_id, "id order"),
      idCell(run.user_id, "id user"),
      total ? el("td", { class: "total", text: total }) : el("td", { class: "total" }, el("span", { class: "none", text: "—" })),
      outcomeCell(run),
      el("td", { class: "ms", text: ms(run.duration_ms) }),
    );
    return row;
  }

  function rows() {
    return $("runs").rows;
  }

  function updateListState() {
    const count = rows().length;
    $("runs-empty").hidden = count > 0;
    if (count === 0) {
      $("runs-empty").textContent = state.q || state.outcome
        ? "No run matches. New runs that match appear here."
        : "No runs yet. They appear here as the gateway answers.";
    }
    $("runs-count").textContent = count ? `${count} shown · ${state.last} since start` : "";
    // One row takes the Tab key; the arrows move between rows.
    const current = $("runs").querySelector('tr[tabindex="0"]');
    if (!current && count) rows()[0].tabIndex = 0;
  }

  function addNewest(runs) {
    const fresh = runs.filter((run) => !state.shown.has(run.id));
    if (!fresh.length) return;
    const scroller = $("runs-scroll");
    const atTop = scroller.scrollTop < 4;
    const height = scroller.scrollHeight;
    const batch = document.createDocumentFragment();
    for (const run of fresh) {
      state.shown.add(run.id);
      batch.append(runRow(run, true));
    }
    $("runs").prepend(batch);
    // Keep what the operator is reading in place when they have scrolled down.
    if (!atTop) scroller.scrollTop += scroller.scrollHeight - height;
    const nearBottom = scroller.scrollTop + scroller.clientHeight > scroller.scrollHeight - 80;
    if (!nearBottom && rows().length > MAX_ROWS) {
      while (rows().length > MAX_ROWS) {
        const gone = rows()[rows().length - 1];
        state.shown.delete(gone.dataset.id);
        gone.remove();
      }
      $("older").hidden = false;
    }
    updateListState();
  }

  function addOlder(runs) {
    const batch = document.createDocumentFragment();
    for (const run of runs) {
      if (state.shown.has(run.id)) continue;
      state.shown.add(run.id);
      batch.append(runRow(run, false));
    }
    $("runs").append(batch);
    updateListState();
  }

  function oldestSeq() {
    const all = rows();
    return all.length ? Number(all[all.length - 1].dataset.seq) : null;
  }

  function filters() {
    return { outcome: state.outcome, q: state.q };
  }

  async function reload() {
    const generation = ++state.generation;
    clearTimeout(state.pollTimer);
    try {
      const data = await getJSON(`${API}/runs`, { ...filters(), limit: FIRST_PAGE });
      if (generation !== state.generation) return;
      $("runs").replaceChildren();
      state.shown.clear();
      state.last = data.last;
      addOlder(data.runs);
      $("older").hidden = data.runs.length < FIRST_PAGE;
      setLive("ok");
      // A search that finds one run opens it.
      if (state.q && data.runs.length === 1) show(data.runs[0].id);
    } catch (error) {
      if (generation !== state.generation) return;
      setLive("offline", error);
    }
    schedulePoll(POLL_MS);
  }

  function schedulePoll(delay) {
    clearTimeout(state.pollTimer);
    if (state.live) state.pollTimer = setTimeout(poll, delay);
  }

  async function poll() {
    const generation = state.generation;
    let delay = POLL_MS;
    try {
      const data = await getJSON(`${API}/runs`, { ...filters(), after: state.last, limit: POLL_PAGE });
      if (generation !== state.generation) return;
      if (data.last < state.last) {
        // The gateway started afresh, numbering from 1 again: start the list afresh too.
        reload();
        return;
      }
      if (data.runs.length === POLL_PAGE) {
        // More arrived than one poll brings: rather than a gap in the list, start it
        // again from the newest, the older ones a click away.
        reload();
        return;
      }
      state.last = data.last;
      addNewest(data.runs);
      updateListState();
      setLive("ok");
    } catch (error) {
      if (generation !== state.generation) return;
      setLive("offline", error);
      delay = RETRY_MS;
    }
    if (generation === state.generation) schedulePoll(delay);
  }

  async function loadOlder() {
    const before = oldestSeq();
    if (before == null) return;
    try {
      const data = await getJSON(`${API}/runs`, { ...filters(), before, limit: FIRST_PAGE });
      addOlder(data.runs);
      $("older").hidden = data.runs.length < FIRST_PAGE;
    } catch (error) {
      toast(`Could not load older runs: ${error.message}`);
    }
  }

  function setLive(status, error) {
    const button = $("live");
    button.classList.toggle("offline", status === "offline");
    if (!state.live) {
      $("live-text").textContent = "paused";
      return;
    }
    if (status === "offline") {
      const signedOut = error && error.status === 401;
      $("live-text").textContent = signedOut ? "signed out" : "offline";
      button.title = signedOut ? "Sign-in needed: reload the page" : `The gateway did not answer: ${error ? error.message : ""}`;
    } else {
      $("live-text").textContent = "live";
      button.title = "Pause the live list";
      button.classList.remove("polling");
      void button.offsetWidth; // restart the pulse
      button.classList.add("polling");
    }
  }

  function toggleLive() {
    state.live = !state.live;
    $("live").setAttribute("aria-pressed", String(state.live));
    if (state.live) {
      setLive("ok");
      schedulePoll(0);
    } else {
      clearTimeout(state.pollTimer);
      setLive("paused");
    }
  }

  // ----- the summary -----

  async function loadSummary() {
    try {
      const summary = await getJSON(`${API}/summary`, { last: $("last").value });
      drawSummary(summary);
    } catch (_) {
      // The list shows the connection state; the table keeps its last figures.
    }
    clearTimeout(loadSummary.timer);
    loadSummary.timer = setTimeout(loadSummary, SUMMARY_MS);
  }

  function spark(p50, p99, max) {
    const box = svg("svg", { class: "spark", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" });
    if (p99 != null && max > 0) {
      box.append(svg("rect", { class: "p99", x: 0, y: 1, height: 8, width: Math.max(0.8, (p99 / max) * 100) }));
      box.append(svg("rect", { class: "p50", x: 0, y: 1, height: 8, width: Math.max(0.8, (p50 / max) * 100) }));
    }
    return box;
  }

  function drawSummary(summary) {
    const body = $("summary");
    const max = Math.max(0, ...summary.steps.map((step) => step.p99_ms || 0));
    const lines = summary.steps.map((step) =>
      el(
        "tr",
        {},
        el("td", { class: "num", text: String(step.number) }),
        el("td", { class: "name", text: step.name }),
        el("td", { class: "num", text: String(step.count) }),
        el("td", { class: "num", text: ms(step.p50_ms) }),
        el("td", { class: "num", text: ms(step.p99_ms) }),
        el("td", {}, spark(step.p50_ms, step.p99_ms, max)),
      ),
    );
    if (!summary.runs) {
      lines.push(el("tr", { class: "empty-row" }, el("td", { colspan: "6", text: "No orders yet." })));
    } else {
      lines.push(
        el(
          "tr",
          { class: "total" },
          el("td", {}),
          el("td", { text: "whole answer" }),
          el("td", { class: "num", text: String(summary.total.count) }),
          el("td", { class: "num", text: ms(summary.total.p50_ms) }),
          el("td", { class: "num", text: ms(summary.total.p99_ms) }),
          el("td", {}),
        ),
      );
    }
    body.replaceChildren(...lines);
  }

  // ----- one run -----

  function selectRow(id) {
    for (const row of rows()) {
      const on = row.dataset.id === id;
      row.setAttribute("aria-selected", on ? "true" : "false");
      if (on) {
        for (const other of $("runs").querySelectorAll('tr[tabindex="0"]')) other.tabIndex = -1;
        row.tabIndex = 0;
      }
    }
  }

  // Opening a run is a change of the URL's fragment, so a run can be linked to.
  function show(id) {
    const wanted = `#run=${encodeURIComponent(id)}`;
    if (location.hash === wanted) openRun(id);
    else location.hash = wanted;
  }

  function runFromHash() {
    const found = /^#run=(.+)$/.exec(location.hash);
    if (!found) return null;
    try {
      return decodeURIComponent(found[1]);
    } catch (_) {
      return null;
    }
  }

  async function openRun(id) {
    state.selected = id;
    selectRow(id);
    const detail = $("detail");
    try {
      const run = await getJSON(`${API}/runs/${encodeURIComponent(id)}`);
      if (state.selected !== id) return;
      state.run = run;
      detail.replaceChildren(...drawRun(run));
      detail.scrollTop = 0;
    } catch (error) {
      if (state.selected !== id) return;
      const text = error.status === 404
        ? "This run is not held any more: the console keeps the most recent runs only."
        : `Could not load the run: ${error.message}`;
      detail.replaceChildren(el("div", { class: "placeholder" }, el("p", { text })));
    }
  }

  function closeRun() {
    state.selected = null;
    state.run = null;
    selectRow(null);
    history.replaceState(null, "", location.pathname + location.search);
    $("detail").replaceChildren(
      el("div", { class: "placeholder" }, el("p", { text: "Pick a run to see its calls as a sequence diagram and on a time axis." })),
    );
  }

  function copyButton(value, target, name) {
    const button = el("button", { type: "button", class: "copy", "aria-label": `Copy the ${name}`, title: `Copy the ${name}`, disabled: !value });
    button.addEventListener("click", () => copy(value, target, button));
    return button;
  }

  async function copy(text, node, button) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      button.classList.add("done");
      toast("Copied");
      setTimeout(() => button.classList.remove("done"), 1200);
    } catch (_) {
      // No clipboard (a plain-HTTP host, or permission refused): select the text instead.
      const range = document.createRange();
      range.selectNodeContents(node);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (_) {
        copied = false;
      }
      toast(copied ? "Copied" : "Selected: press Ctrl+C to copy");
    }
  }

  function idList(run) {
    const list = el("dl", { class: "ids" });
    // Row by row: the gateway's hex IDs on the left, the order's on the right.
    const entries = [
      ["request ID", run.request_id],
      ["order ID", run.order_id],
      ["trace ID", run.trace_id],
      ["customer ID", run.user_id],
      ["run ID", run.id],
      ["Idempotency-Key", run.idempotency_key],
    ];
    for (const [name, value] of entries) {
      const dd = value ? el("dd", { title: value, text: value, "data-field": name }) : el("dd", { class: "none", text: "none" });
      list.append(el("dt", { text: name }), dd, copyButton(value, dd, name));
    }
    return list;
  }

  function rootCall(run) {
    return run.calls.find((call) => call.parent == null) || null;
  }

  function drawRun(run) {
    const root = rootCall(run);
    const parts = [];
    const close = el("button", { type: "button", class: "close", "aria-label": "Close the run", title: "Close (Esc)", text: "✕" });
    close.addEventListener("click", closeRun);
    const head = el(
      "div",
      { class: "run-head" },
      el("span", { class: `badge o-${run.outcome}`, text: run.outcome_text }),
      el("h2", { text: root ? `${root.method} ${root.route} → ${run.status}` : `${run.kind} → ${run.status}` }),
      close,
    );
    const facts = el("p", { class: "facts" });
    const total = money(run.total, run.currency);
    if (total) facts.append(el("b", { text: total }), " · ");
    facts.append(el("b", { text: `${ms(run.duration_ms)} ms` }), ` · ${run.kind} · started ${run.started_at.replace("T", " ")}`);
    parts.push(head, facts);

    if (run.stopped) {
      const stop = run.stopped;
      const after = run.order_id
        ? "The order is kept: the same request with the same Idempotency-Key, or syncorders recover, finishes it."
        : "No order was made: the same request sent again starts afresh.";
      parts.push(
        el("p", { class: "notice stop" }, el("b", { text: `Stopped at step ${stop.step} (${stop.step_name}): ${stop.code}, ${stop.reason}. ` }), after),
      );
    }
    if (run.replayed) {
      const note = el("p", { class: "notice replay" }, "Replay: the same Idempotency-Key again, answered from the order it names. ");
      if (run.replay_of) {
        note.append("First run: ", el("a", { href: `#run=${encodeURIComponent(run.replay_of)}`, class: "replay-of", text: run.replay_of }));
      } else {
        note.append("The first run is no longer held.");
      }
      parts.push(note);
    }
    if (run.letter_pending) {
      parts.push(
        el("p", { class: "notice letter" }, el("b", { text: "Letter pending. " }), "The order is final but its letter was not made; syncorders recover sends it, and so does the same request again."),
      );
    }
    parts.push(idList(run));

    const width = Math.max(560, $("detail").clientWidth - 30);
    if (run.calls.length) {
      parts.push(
        el(
          "h3",
          {},
          "Sequence",
          el(
            "span",
            { class: "legend" },
          el("span", { text: "→ call" }),
          el("span", { text: "⇠ answer" }),
          el("span", {}, el("span", { class: "sw fail" }), "failed the step"),
          el("span", { text: "✕ no answer" }),
          el("span", {}, el("span", { class: "sw pending" }), "letter pending"),
            el("span", { text: "① step of the flow" }),
          ),
        ),
      );
      parts.push(el("div", { class: "figure" }, drawSequence(run, width)));
      parts.push(
        el(
          "h3",
          {},
          "Time axis",
          el(
            "span",
            { class: "legend" },
            el("span", {}, el("span", { class: "sw own" }), "callee's own time (its Server-Timing: app)"),
            el("span", {}, el("span", { class: "sw wire" }), "wire and queues, both ways (call − own)"),
            el("span", {}, el("span", { class: "sw fail" }), "failed"),
          ),
        ),
      );
      parts.push(el("div", { class: "figure" }, drawAxis(run, width)));
    }
    if (run.steps.length) {
      parts.push(el("h3", { text: "Step times (Server-Timing)" }));
      parts.push(stepList(run.steps));
    }
    return parts;
  }

  function stepList(steps) {
    const list = el("ol", { class: "steps" });
    for (const step of steps) {
      const failed = step.outcome !== "ok";
      list.append(
        el(
          "li",
          { class: failed ? "failed" : null, "data-step": step.number, title: failed ? `failed: ${step.outcome}` : null },
          el("span", { class: "n", text: String(step.number) }),
          step.name,
          el("span", { class: "v", text: `${ms(step.ms)} ms` }),
          failed ? ` ${step.outcome}` : null,
        ),
      );
    }
    return list;
  }

  // ----- layout of calls: each call, then the calls made during it, then its answer -----

  function callTree(calls) {
    const byId = new Map(calls.map((call) => [call.id, call]));
    const children = new Map();
    const roots = [];
    calls.forEach((call, index) => {
      const parent = call.parent != null && byId.has(call.parent) ? call.parent : null;
      const entry = { call, index };
      if (parent == null) roots.push(entry);
      else (children.get(parent) || children.set(parent, []).get(parent)).push(entry);
    });
    const order = (a, b) => a.call.start_ms - b.call.start_ms || a.index - b.index;
    roots.sort(order);
    for (const list of children.values()) list.sort(order);
    const walk = [];
    const visit = (entry, depth) => {
      walk.push({ call: entry.call, depth, open: true });
      for (const child of children.get(entry.call.id) || []) visit(child, depth + 1);
      walk.push({ call: entry.call, depth, open: false });
    };
    for (const entry of roots) visit(entry, 0);
    return walk;
  }

  function failureText(run, call) {
    const stop = run.stopped;
    const code = stop && call.step != null && stop.step === call.step ? stop.code : call.code;
    const where = call.step != null ? `step ${call.step} ${call.step_name || ""}`.trim() : `${call.method} ${call.route}`;
    const what = [code, call.reason].filter(Boolean).join(", ");
    return what ? `${where}: ${what}` : where;
  }

  let measurer = null;
  function textWidth(text, font) {
    if (!measurer) measurer = document.createElement("canvas").getContext("2d");
    const mono = getComputedStyle(document.documentElement).getPropertyValue("--mono");
    const sans = getComputedStyle(document.documentElement).getPropertyValue("--sans");
    measurer.font = font === "sans" ? `600 12px ${sans}` : font === "bold" ? `600 12px ${mono}` : `12px ${mono}`;
    return measurer.measureText(text).width;
  }

  // ----- the sequence diagram -----

  function drawSequence(run, available) {
    const names = [...run.participants];
    for (const call of run.calls) {
      for (const who of [call.source, call.target]) if (!names.includes(who)) names.push(who);
    }
    const index = new Map(names.map((name, i) => [name, i]));
    const walk = callTree(run.calls);

    // Rows, top to bottom: a call, the calls made during it, its answer, a note if it failed.
    const rowsOut = [];
    let pendingDrawn = false;
    for (const item of walk) {
      const call = item.call;
      if (item.open) {
        rowsOut.push({ kind: "call", call });
        continue;
      }
      if (call.parent == null && run.letter_pending && !pendingDrawn) {
        rowsOut.push({ kind: "pending", at: names.includes("notifications") ? "notifications" : "gateway" });
        pendingDrawn = true;
      }
      if (call.status != null) rowsOut.push({ kind: "answer", call });
      if (call.failed) rowsOut.push({ kind: "note", call, text: failureText(run, call) });
      if (call.failed && run.letter_pending && call.target === "notifications" && !pendingDrawn) {
        rowsOut.push({ kind: "pending", at: "notifications" });
        pendingDrawn = true;
      }
    }

    // Lifelines evenly spread over the width there is. Each message has a row of its
    // own, so a label longer than its arrow may run on past a lifeline without meeting
    // another label.
    const GUTTER = 30;
    const boxWidth = names.map((name) => Math.max(76, textWidth(NAMES[name] || name, "sans") + 22));
    const minGap = (i) => Math.max(100, boxWidth[i - 1] / 2 + boxWidth[i] / 2 + 16);
    const first = GUTTER + boxWidth[0] / 2 + 6;
    const room = available - first - boxWidth[boxWidth.length - 1] / 2 - 6;
    const even = names.length > 1 ? Math.min(260, room / (names.length - 1)) : 0;
    const x = [first];
    for (let i = 1; i < names.length; i++) x.push(x[i - 1] + Math.max(even, minGap(i)));
    const width = Math.max(available, x[x.length - 1] + boxWidth[boxWidth.length - 1] / 2 + 6);

    // Where a label goes: over the middle of its arrow when it fits, else from the end it
    // leaves, else up to the end it reaches.
    const place = (text, x1, x2, font) => {
      const w = textWidth(text, font);
      const lo = Math.min(x1, x2);
      const hi = Math.max(x1, x2);
      if (w + 16 <= hi - lo) return { x: (lo + hi) / 2, anchor: "middle" };
      if (x2 > x1) return x1 + 8 + w <= width - 4 ? { x: x1 + 8, anchor: "start" } : { x: x2 - 8, anchor: "end" };
      return x1 - 8 - w >= 4 ? { x: x1 - 8, anchor: "end" } : { x: x2 + 8, anchor: "start" };
    };

    const ROW = 26;
    const TOP = 58;
    const rowY = (i) => TOP + i * ROW;
    const height = rowY(rowsOut.length) + 4;
    const box = svg("svg", {
      class: "seq",
      width: Math.ceil(width),
      height,
      viewBox: `0 0 ${Math.ceil(width)} ${height}`,
      role: "img",
      "aria-label": `Sequence of ${run.calls.length} calls`,
    });

    // Participants and lifelines.
    names.forEach((name, i) => {
      const group = svg("g", { class: `box ${name}`, "data-participant": name });
      group.append(svg("rect", { x: x[i] - boxWidth[i] / 2, y: 6, width: boxWidth[i], height: 26, rx: 5 }));
      group.append(svg("text", { x: x[i], y: 23.5 }, NAMES[name] || name));
      box.append(svg("line", { class: "lifeline", x1: x[i], x2: x[i], y1: 32, y2: height - 2 }), group);
    });

    // Activations: a callee is busy from the call to its answer (or the end of the wait).
    const openAt = new Map();
    rowsOut.forEach((row, i) => {
      if (row.kind === "call") openAt.set(row.call.id, i);
      const closes = (row.kind === "answer" || (row.kind === "note" && row.call.status == null)) && openAt.has(row.call.id);
      if (!closes) return;
      const call = row.call;
      const start = openAt.get(call.id);
      openAt.delete(call.id);
      if (call.status == null) return;
      const cx = x[index.get(call.target)];
      box.append(svg("rect", { class: "act", x: cx - 4, y: rowY(start), width: 8, height: rowY(i) - rowY(start) }));
    });

    const edge = (who, toward) => {
      const at = x[index.get(who)];
      return at + (toward > at ? 4 : -4);
    };

    rowsOut.forEach((row, i) => {
      const y = rowY(i);
      if (row.kind === "call" || row.kind === "answer") {
        const call = row.call;
        const from = row.kind === "call" ? call.source : call.target;
        const to = row.kind === "call" ? call.target : call.source;
        const x1 = edge(from, x[index.get(to)]);
        const lost = row.kind === "call" && call.status == null;
        const x2 = edge(to, x[index.get(from)]);
        const back = row.kind === "answer";
        const refusal = back && call.status >= 400 && call.status < 500 && !call.failed;
        const error = back && call.status >= 500 && !call.failed;
        const group = svg("g", {
          class: ["msg", back ? "answer" : "call", call.failed && "failed", refusal && "refusal", error && "error"]
            .filter(Boolean)
            .join(" "),
          "data-call": call.id,
          "data-step": call.step != null ? call.step : null,
        });
        const dir = x2 > x1 ? 1 : -1;
        group.append(svg("line", { class: back ? "arrow back" : "arrow", x1, y1: y, x2: x2 - dir * (back ? 1 : 2), y2: y }));
        if (lost) {
          group.append(svg("path", { class: "lost", d: `M${x2 - 5} ${y - 5} l10 10 m0 -10 l-10 10` }));
        } else if (back) {
          group.append(svg("path", { class: "head back", d: `M${x2 - dir * 8} ${y - 4.5} L${x2} ${y} L${x2 - dir * 8} ${y + 4.5}` }));
        } else {
          group.append(svg("path", { class: "head", d: `M${x2} ${y} l${-dir * 9} -4.5 v9 z` }));
        }
        const text = back ? answerText(call) : `${call.method} ${call.route}`;
        const spot = place(text, x1, x2, back ? "mono" : "bold");
        const label = svg("text", { class: back ? "label back" : "label", x: spot.x, y: y - 7, "text-anchor": spot.anchor });
        if (back) {
          label.textContent = answerText(call);
        } else {
          label.append(svg("tspan", { class: "method" }, call.method), ` ${call.route}`);
        }
        group.append(label);
        const spent = call.server_ms != null ? `, ${NAMES[call.target] || call.target} own ${ms(call.server_ms)} ms` : "";
        const code = call.code ? ` (${call.code})` : "";
        tooltip(group, `${call.method} ${call.route}: ${answerText(call)}${code} after ${ms(call.duration_ms)} ms${spent}`);
        box.append(group);
        if (row.kind === "call" && call.step != null) {
          const mark = svg("g", { class: call.failed ? "step failed" : "step" });
          mark.append(svg("circle", { cx: 14, cy: y - 4, r: 9 }), svg("text", { x: 14, y: y - 0.5 }, String(call.step)));
          tooltip(mark, `step ${call.step}${call.step_name ? ` ${call.step_name}` : ""}`);
          box.append(mark);
        }
      } else if (row.kind === "note") {
        const call = row.call;
        const a = x[index.get(call.source)];
        const b = x[index.get(call.target)];
        const w = textWidth(row.text, "bold") + 20;
        // Beside the caller's activation, toward the callee; pulled back at the edge.
        const left = Math.max(GUTTER, Math.min(Math.min(a, b) + 10, width - w - 2));
        const group = svg("g", { class: "note failure", "data-call": call.id });
        group.append(svg("rect", { x: left, y: y - 18, width: w, height: 22, rx: 4 }));
        group.append(svg("text", { x: left + w / 2, y: y - 3 }, row.text));
        box.append(group);
      } else if (row.kind === "pending") {
        const text = "✉ letter pending: no letter made";
        const w = textWidth(text, "mono") + 20;
        const at = x[index.get(row.at)];
        const left = Math.min(Math.max(GUTTER, at - w / 2), width - w - 2);
        const group = svg("g", { class: "note pending" });
        group.append(svg("rect", { x: left, y: y - 18, width: w, height: 22, rx: 4 }));
        group.append(svg("text", { x: left + w / 2, y: y - 3 }, text));
        box.append(group);
      }
    });
    return box;
  }

  // ----- the time axis -----

  // A round tick step giving at most ``count`` intervals over ``span``.
  function niceStep(span, count) {
    const rough = span / Math.max(1, count);
    const power = 10 ** Math.floor(Math.log10(rough));
    for (const factor of [1, 2, 2.5, 5, 10]) if (factor * power >= rough) return factor * power;
    return 10 * power;
  }

  function drawAxis(run, available) {
    const walk = callTree(run.calls).filter((item) => item.open);
    const labels = walk.map((item) => `${item.call.source} → ${item.call.target}`);
    const LABEL = Math.min(240, Math.max(150, ...walk.map((item, i) => textWidth(labels[i], "mono") + item.depth * 12 + 34)));
    const FIG = 56;
    const width = Math.max(available, LABEL + 3 * FIG + 220);
    const barLeft = LABEL + 8;
    const barRight = width - 3 * FIG - 24;
    const end = Math.max(run.duration_ms, ...run.calls.map((call) => call.start_ms + call.duration_ms), 0.001);
    const step = niceStep(end, Math.max(2, Math.floor((barRight - barLeft) / 64)));
    const span = Math.ceil(end / step - 1e-9) * step;
    const scale = (value) => barLeft + (value / span) * (barRight - barLeft);
    const ROW = 20;
    const TOP = 22;
    const height = TOP + walk.length * ROW + 6;
    const box = svg("svg", {
      class: "axis",
      width: Math.ceil(width),
      height,
      viewBox: `0 0 ${Math.ceil(width)} ${height}`,
      role: "img",
      "aria-label": "Time axis of the calls",
    });

    const decimals = step < 1 ? (step < 0.1 ? 2 : 1) : 0;
    for (let t = 0; t <= span + 1e-9; t += step) {
      const tx = scale(t);
      const tick = svg("g", { class: "tick" });
      tick.append(svg("line", { x1: tx, x2: tx, y1: TOP - 4, y2: height - 4 }));
      // The unit once, on the last tick.
      const last = t + step > span + 1e-9;
      const label = `${t.toFixed(decimals)}${last ? " ms" : ""}`;
      tick.append(svg("text", { x: tx, y: 12, "text-anchor": last ? "end" : "middle" }, label));
      box.append(tick);
    }
    ["total", "own", "wire"].forEach((name, i) => {
      box.append(svg("text", { class: "colhead", x: barRight + 24 + (i + 1) * FIG - 4, y: 12 }, `${name} ms`));
    });

    walk.forEach((item, i) => {
      const call = item.call;
      const y = TOP + i * ROW;
      const row = svg("g", { class: call.failed ? "row failed" : "row", "data-call": call.id });
      row.append(svg("rect", { class: "band", x: 0, y, width, height: ROW }));
      if (call.step != null) row.append(svg("text", { class: "stepno", x: 16, y: y + 14 }, String(call.step)));
      row.append(svg("text", { class: "who", x: 24 + item.depth * 12, y: y + 14 }, labels[i]));
      const x0 = scale(call.start_ms);
      const full = Math.max(1.5, scale(call.start_ms + call.duration_ms) - x0);
      row.append(svg("rect", { class: "wire", x: x0, y: y + 4, width: full, height: 12, rx: 2 }));
      if (call.server_ms != null) {
        const own = Math.min(full, Math.max(1.5, (call.server_ms / span) * (barRight - barLeft)));
        // Which share of the wire time was each way is unknown: the callee's time sits in the middle.
        row.append(svg("rect", { class: "own", x: x0 + (full - own) / 2, y: y + 4, width: own, height: 12, rx: 2 }));
      }
      const wire = call.server_ms != null ? Math.max(0, call.duration_ms - call.server_ms) : null;
      const figures = [ms(call.duration_ms), call.server_ms != null ? ms(call.server_ms) : "–", wire != null ? ms(wire) : "–"];
      figures.forEach((text, f) => {
        row.append(svg("text", { class: f === 0 ? "fig total" : "fig", x: barRight + 24 + (f + 1) * FIG - 4, y: y + 14 }, text));
      });
      const answer = answerText(call);
      tooltip(row, `${call.method} ${call.route} → ${call.target}: ${answer}; from ${ms(call.start_ms)} ms, ${ms(call.duration_ms)} ms`);
      box.append(row);
    });
    return box;
  }

  // ----- wiring -----

  function moveSelection(delta) {
    const all = [...rows()];
    if (!all.length) return;
    const at = all.findIndex((row) => row === document.activeElement);
    const from = at >= 0 ? at : all.findIndex((row) => row.dataset.id === state.selected);
    const next = all[Math.min(all.length - 1, Math.max(0, (from < 0 ? -1 : from) + delta))];
    next.focus();
    show(next.dataset.id);
  }

  function start() {
    $("runs").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (row) show(row.dataset.id);
    });
    $("runs").addEventListener("keydown", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (!row) return;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        show(row.dataset.id);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        moveSelection(event.key === "ArrowDown" ? 1 : -1);
      }
    });
    let typing = 0;
    $("q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.q = $("q").value.trim();
        reload();
      }, 300);
    });
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(typing);
      state.q = $("q").value.trim();
      reload();
    });
    $("outcome").addEventListener("change", () => {
      state.outcome = $("outcome").value;
      reload();
    });
    $("live").addEventListener("click", toggleLive);
    $("older").addEventListener("click", loadOlder);
    $("last").addEventListener("change", loadSummary);
    let resizing = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        if (state.run) {
          const top = $("detail").scrollTop;
          $("detail").replaceChildren(...drawRun(state.run));
          $("detail").scrollTop = top;
        }
      }, 150);
    });
    window.addEventListener("hashchange", () => {
      const id = runFromHash();
      if (id) openRun(id);
    });
    document.addEventListener("keydown", (event) => {
      const inField = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (event.key === "/" && !inField) {
        event.preventDefault();
        $("q").focus();
        $("q").select();
      } else if (event.key === "Escape") {
        if (inField) document.activeElement.blur();
        else if (state.selected) closeRun();
      } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && !inField && document.activeElement === document.body) {
        event.preventDefault();
        moveSelection(event.key === "ArrowDown" ? 1 : -1);
      }
    });
    reload();
    loadSummary();
    const id = runFromHash();
    if (id) openRun(id);
  }

  start();
})();
