// The live page: one EventSource on api/events; "tree" frames redraw the table in place,
// "throughput" and "sample" feed the chart. No libraries: this page must work offline.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const key of ["token", "interval"]) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  const suffix = query.toString() ? "?" + query.toString() : "";
  if (params.get("token")) $("tree-link").href = "api/tree?token=" + encodeURIComponent(params.get("token"));

  const rows = new Map(); // node + path -> {tr, cells, last}
  let points = []; // [t, tokens_per_s], server time
  let windowS = 300;
  let serverNow = 0; // the server's clock, from the last frame or sample
  let lastFrameAt = 0; // the browser's clock when the last tree frame came
  let interval = Number(params.get("interval")) || 1;
  let source = null;

  const int = (n) => Number(n).toLocaleString("en-US");
  const rate = (n) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : Number(n).toFixed(1));

  function setStatus(state, text) {
    const el = $("status");
    el.dataset.state = state;
    el.textContent = text || state;
  }

  function uptime(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const pad = (x) => String(x).padStart(2, "0");
    return h ? `${h}h ${pad(m)}m ${pad(r)}s` : m ? `${m}m ${pad(r)}s` : `${r}s`;
  }

  // -- the tree ------------------------------------------------------------------------------

  // a row is an actor ("type": "ActorInfo") or a group of actors not listed ("ActorGroup")
  const isGroup = (row) => row.type === "ActorGroup";

  function makeRow(actor) {
    const tr = document.createElement("tr");
    tr.dataset.path = actor.path;
    if (actor.node) tr.dataset.node = actor.node;
    const cells = {};
    for (const name of ["path", "node", "kind", "state", "restarts", "mailbox", "processed"]) {
      const td = document.createElement("td");
      td.className = name + (["restarts", "mailbox", "processed"].includes(name) ? " num" : "");
      tr.appendChild(td);
      cells[name] = td;
    }
    const depth = actor.path.split("/").length - 2;
    cells.path.style.paddingLeft = 8 + depth * 18 + "px";
    const cut = actor.path.lastIndexOf("/") + 1;
    if (isGroup(actor)) {
      tr.classList.add("group");
      cells.path.textContent = actor.name;
    } else {
      cells.node.textContent = actor.node || "";
      const parent = document.createElement("span");
      parent.className = "parent";
      parent.textContent = actor.path.slice(0, cut);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = actor.path.slice(cut);
      cells.path.append(parent, name);
      cells.path.title = actor.path;
      const badge = document.createElement("span");
      badge.className = "badge";
      cells.state.appendChild(badge);
    }
    return { tr, cells, last: null };
  }

  function updateRow(row, actor) {
    const { tr, cells, last } = row;
    if (isGroup(actor)) {
      if (!last || last.name !== actor.name) cells.path.textContent = actor.name;
    } else {
      if (!last || last.kind !== actor.kind) cells.kind.textContent = actor.kind;
      if (!last || last.state !== actor.state) {
        tr.dataset.state = actor.state;
        cells.state.firstChild.textContent = actor.state; // the badge
      }
    }
    if (!last || last.restarts !== actor.restarts) {
      cells.restarts.textContent = int(actor.restarts);
      cells.restarts.classList.toggle("nonzero", actor.restarts > 0);
      tr.dataset.restarts = actor.restarts;
      if (last && actor.restarts > last.restarts) {
        tr.classList.remove("bumped");
        void tr.offsetWidth; // restart the highlight animation
        tr.classList.add("bumped");
      }
    }
    if (!last || last.mailbox !== actor.mailbox) {
      cells.mailbox.textContent = int(actor.mailbox);
      cells.mailbox.classList.toggle("nonzero", actor.mailbox > 0);
    }
    if (!last || last.processed !== actor.processed) cells.processed.textContent = int(actor.processed);
    row.last = actor;
  }

  function renderTree(frame) {
    document.title = `${frame.system} · actoros live`;
    $("system").textContent = frame.system;
    $("uptime").textContent = uptime(frame.uptime_s);
    $("total-actors").textContent = int(frame.totals.actors);
    $("total-restarts").textContent = int(frame.totals.restarts);
    $("total-mailbox").textContent = int(frame.totals.mailbox);
    $("total-processed").textContent = int(frame.totals.processed);
    $("total-dead-letters").textContent = int(frame.totals.dead_letters);
    $("hidden-note").textContent = frame.hidden
      ? `(${int(frame.actors.length)} rows shown; ${int(frame.hidden)} actors grouped)`
      : "";
    // the node column shows only for a cluster: a single process's rows carry no "node"
    $("tree").classList.toggle("with-nodes", frame.actors.some((actor) => actor.node));
    const body = $("tree-body");
    const seen = new Set();
    let previous = null;
    for (const actor of frame.actors) {
      const key = (actor.node || "") + "\u0000" + actor.path; // nodes may share a path
      seen.add(key);
      let row = rows.get(key);
      if (!row) {
        row = makeRow(actor);
        rows.set(key, row);
      }
      updateRow(row, actor);
      const wanted = previous ? previous.nextSibling : body.firstChild;
      if (wanted !== row.tr) body.insertBefore(row.tr, wanted);
      previous = row.tr;
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) {
        row.tr.remove();
        rows.delete(key);
      }
    }
    renderInference(frame.inference);
    serverNow = Math.max(serverNow, frame.time);
    renderChart();
  }

  function renderInference(inf) {
    const el = $("inference-numbers");
    if (!inf) {
      el.textContent = "no inference actor answering";
      return;
    }
    const ms = inf.ttft_p50_s == null ? null : inf.ttft_p50_s * 1000;
    const ttft = ms == null ? "–" : ms < 1 ? "<1 ms" : `${Math.round(ms)} ms`;
    el.textContent = [
      inf.engine_ready ? "engine ready" : "engine starting",
      `${int(inf.in_flight)} in flight`,
      `${int(inf.waiting)} waiting`,
      `${int(inf.completed)} completed`,
      `${int(inf.failed)} failed`,
      `${int(inf.output_tokens)} tokens out`,
      `${rate(inf.tokens_per_s)} tokens/s over the last minute`,
      `TTFT p50 ${ttft}`,
    ].join(" · ");
  }

  // -- the chart ----------------------------------------------------------------------------

  const H = 170, LEFT = 52, BOTTOM = 18, TOP = 10;
  const svg = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  };

  function niceMax(value) {
    if (value <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
    return 10 * p;
  }

  function renderChart() {
    const chart = $("chart");
    const W = Math.max(200, Math.round(chart.getBoundingClientRect().width) || 640);
    chart.setAttribute("viewBox", `0 0 ${W} ${H}`); // drawn at its real size: text unstretched
    chart.replaceChildren();
    const now = serverNow || Date.now() / 1000;
    points = points.filter((p) => p[0] >= now - windowS);
    // the x axis spans what there is to show: a minute at least, the whole history at most
    const first = points.length ? points[0][0] : now;
    const span = Math.min(windowS, Math.max(60, Math.ceil((now - first) / 60) * 60));
    const start = now - span;
    const last = points.length ? points[points.length - 1][1] : null;
    $("tokens-now").textContent = last === null ? "–" : rate(last);
    const top = niceMax(Math.max(0, ...points.map((p) => p[1])));
    const x = (t) => LEFT + ((t - start) / span) * (W - LEFT - 4);
    const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      chart.appendChild(svg("line", { class: "grid", x1: LEFT, x2: W - 4, y1: y(v), y2: y(v) }));
      const label = top >= 10 ? int(Math.round(v)) : String(Number(v.toFixed(2)));
      chart.appendChild(svg("text", { class: "axis", x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, label));
    }
    const step = span > 120 ? 60 : 15;
    for (let ago = span; ago >= 0; ago -= step) {
      const label = ago === 0 ? "now" : step === 60 ? `−${ago / 60} min` : `−${ago} s`;
      const anchor = ago === span ? "start" : ago === 0 ? "end" : "middle";
      chart.appendChild(svg("text", { class: "axis", x: x(now - ago), y: H - 4, "text-anchor": anchor }, label));
    }
    if (!points.length) {
      chart.appendChild(svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" },
        "no throughput samples yet"));
      return;
    }
    // a gap (nobody watched, or the inference actor did not answer) breaks the line
    const segments = [];
    let current = [];
    for (let i = 0; i < points.length; i++) {
      if (i && points[i][0] - points[i - 1][0] > 3) {
        segments.push(current);
        current = [];
      }
      current.push(points[i]);
    }
    segments.push(current);
    for (const seg of segments) {
      const line = seg.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      const base = y(0).toFixed(1);
      const area = `${line}L${x(seg[seg.length - 1][0]).toFixed(1)},${base}L${x(seg[0][0]).toFixed(1)},${base}Z`;
      chart.appendChild(svg("path", { class: "area", d: area }));
      chart.appendChild(svg("path", { class: "line", d: line }));
    }
  }

  // -- the feed -----------------------------------------------------------------------------

  function connect() {
    setStatus("connecting", "connecting…");
    source = new EventSource("api/events" + suffix);
    source.onopen = () => setStatus("live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // the server refused (401 without the right ?token=, or an error): say why, retry
        fetch("api/tree" + suffix).then((r) => {
          setStatus("disconnected", r.status === 401
            ? "needs a token: open this page as /?token=<token>"
            : `disconnected (HTTP ${r.status}); retrying`);
        }, () => setStatus("disconnected", "disconnected; retrying"));
        setTimeout(connect, 5000);
      } else {
        setStatus("reconnecting", "reconnecting…");
      }
    };
    source.addEventListener("tree", (e) => {
      lastFrameAt = Date.now();
      renderTree(JSON.parse(e.data));
      setStatus("live");
    });
    source.addEventListener("closing", () => setStatus("reconnecting", "the gateway stopped; reconnecting…"));
    source.addEventListener("throughput", (e) => {
      const history = JSON.parse(e.data);
      windowS = history.window_s;
      points = history.points;
      renderChart();
    });
    source.addEventListener("sample", (e) => {
      const p = JSON.parse(e.data);
      points.push(p);
      serverNow = Math.max(serverNow, p[0]);
      renderChart();
    });
  }

  // frames stop without an error when the server stalls: call that out
  setInterval(() => {
    if (lastFrameAt && source && source.readyState === EventSource.OPEN &&
        Date.now() - lastFrameAt > Math.max(5000, 3000 * interval)) {
      setStatus("stale", `no update for ${Math.round((Date.now() - lastFrameAt) / 1000)} s`);
    }
  }, 1000);

  window.addEventListener("resize", renderChart);
  connect();
})();
