// The handoff inspector page: the list of calls, or one call (diagram, timeline, Context).
// Everything a call said or did is untrusted text: it only ever reaches the page through
// textContent and attributes, never as markup. The diagram is SVG that handoff drew; it is
// parsed as XML and stripped of anything active before it joins the page.
"use strict";

const $ = (id) => document.getElementById(id);
const view = { call: null, events: [], step: -1, follow: true, svg: null, timer: null, source: null };
window.inspector = { changes: [], view };  // for tests: when the lit state changed, and to what

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.json();
}

function setStatus(status, extra) {
  const badge = $("status");
  badge.className = `status ${status}`;
  badge.textContent = extra ? `${status} — ${extra}` : status;
}

function shortValue(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// -- the list of calls ------------------------------------------------------------------
async function showCalls() {
  $("calls-view").hidden = false;
  document.title = "calls — handoff inspector";
  const refresh = async () => {
    try {
      const data = await getJSON("/api/calls");
      const body = $("calls").tBodies[0];
      body.replaceChildren();
      for (const call of data.calls) {
        const row = el("tr", `call ${call.status}`);
        const link = el("a", null, call.call_id);
        link.href = `/calls/${encodeURIComponent(call.call_id)}`;
        const first = el("td");
        first.append(link);
        const status = el("td");
        status.append(el("span", `status ${call.status}`, call.status));
        row.append(first, el("td", null, `${call.flow} v${call.flow_version}`),
          el("td", null, call.state), status,
          el("td", null, new Date(call.started_at * 1000).toLocaleString()),
          el("td", null, call.events));
        body.append(row);
      }
      $("no-calls").hidden = data.calls.length > 0;
    } catch (error) {
      showError(`could not read the calls: ${error.message}`);
    }
  };
  await refresh();
  setInterval(refresh, 2000);
}

// -- one call -----------------------------------------------------------------------------
function sanitizeSvg(svg) {
  for (const bad of svg.querySelectorAll("script, foreignObject, iframe, a")) {
    bad.replaceWith(...bad.childNodes);
  }
  for (const node of [svg, ...svg.querySelectorAll("*")]) {
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name === "href" || name === "xlink:href" || name === "style") {
        node.removeAttribute(attr.name);
      }
    }
  }
  return svg;
}

async function loadDiagram(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) { $("diagram").textContent = "no diagram of this flow version in the store"; return; }
  const doc = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
  const svg = doc.documentElement;
  if (svg.nodeName !== "svg") { $("diagram").textContent = "the diagram could not be read"; return; }
  view.svg = document.importNode(sanitizeSvg(svg), true);
  view.svg.removeAttribute("width");
  view.svg.removeAttribute("height");
  $("diagram").replaceChildren(view.svg);
  zoom.box = view.svg.viewBox.baseVal;
  const sizes = [...view.svg.querySelectorAll("g.node text, g.edge text")]
    .map((t) => parseFloat(t.getAttribute("font-size"))).filter((n) => n > 0);
  zoom.smallest = sizes.length ? Math.min(...sizes) : 14;
  zoom.largest = sizes.length ? Math.max(...sizes) : 14;
  zoom.manual = false;
  zoomTo(readableScale());
}

// -- zoom and pan: the diagram is drawn in points; a scale turns them into CSS pixels --------
const READABLE_PX = 10;  // the smallest text of the diagram at least this big by default
const LARGEST_PX = 24;   // ... unless its largest text (a state's name) would pass this
const zoom = { box: null, smallest: 14, largest: 14, scale: 1, manual: false };
window.inspector.zoom = zoom;

function fitScale() {
  const pane = $("diagram");
  const style = getComputedStyle(pane);
  const room = pane.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return room / zoom.box.width;
}

function readableScale() {  // the whole width, but never text too small to read
  return Math.min(Math.max(fitScale(), READABLE_PX / zoom.smallest), LARGEST_PX / zoom.largest);
}

function zoomTo(scale, manual = false) {
  if (!view.svg || !zoom.box) return;
  zoom.scale = Math.min(Math.max(scale, 0.1), 6);
  zoom.manual = manual;
  view.svg.style.width = `${zoom.box.width * zoom.scale}px`;
  view.svg.style.height = `${zoom.box.height * zoom.scale}px`;
  $("zoom-level").textContent = `${Math.round(zoom.scale * 100)}%`;
}

function zoomAround(factor, x, y) {  // keep the point under (x, y) of the pane where it is
  const pane = $("diagram");
  const before = zoom.scale;
  const atX = (pane.scrollLeft + x) / before;
  const atY = (pane.scrollTop + y) / before;
  zoomTo(before * factor, true);
  pane.scrollLeft = atX * zoom.scale - x;
  pane.scrollTop = atY * zoom.scale - y;
}

function setUpZoom() {
  const pane = $("diagram");
  $("zoom-in").addEventListener("click", () => zoomAround(1.25, pane.clientWidth / 2, pane.clientHeight / 2));
  $("zoom-out").addEventListener("click", () => zoomAround(0.8, pane.clientWidth / 2, pane.clientHeight / 2));
  $("zoom-fit").addEventListener("click", () => zoomTo(fitScale(), true));
  $("zoom-read").addEventListener("click", () => { zoomTo(readableScale()); showActive(); });
  pane.addEventListener("wheel", (e) => {
    if (!e.ctrlKey) return;  // a plain wheel scrolls, as everywhere
    e.preventDefault();
    const at = pane.getBoundingClientRect();
    zoomAround(e.deltaY < 0 ? 1.1 : 1 / 1.1, e.clientX - at.left, e.clientY - at.top);
  }, { passive: false });
  let drag = null;
  pane.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, left: pane.scrollLeft, top: pane.scrollTop };
    pane.classList.add("panning");
  });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    pane.scrollLeft = drag.left - (e.clientX - drag.x);
    pane.scrollTop = drag.top - (e.clientY - drag.y);
  });
  window.addEventListener("pointerup", () => { drag = null; pane.classList.remove("panning"); });
  window.addEventListener("resize", () => { if (!zoom.manual) zoomTo(readableScale()); });
}

function showActive() {  // the lit state inside the pane (it may be wider than the window)
  const node = view.svg && view.svg.querySelector("g.node.active");
  const pane = $("diagram");
  if (!node) return;
  const box = node.getBoundingClientRect();
  const at = pane.getBoundingClientRect();
  if (box.left < at.left || box.right > at.right) {
    pane.scrollLeft += box.left + box.width / 2 - (at.left + at.width / 2);
  }
  if (box.top < at.top || box.bottom > at.bottom) {
    pane.scrollTop += box.top + box.height / 2 - (at.top + at.height / 2);
  }
}

function svgParts(kind) {  // node or edge groups, keyed by their Graphviz title
  const parts = new Map();
  if (!view.svg) return parts;
  for (const group of view.svg.querySelectorAll(`g.${kind}`)) {
    const title = group.querySelector("title");
    if (title) parts.set(title.textContent, group);
  }
  return parts;
}

function edgeFor(edges, move) {
  return edges.get(`${move.source}->${move.target}`) || edges.get(`__any__->${move.target}`)
    || edges.get(`${move.source}->__return__`);
}

function stateAt(step) {
  return step >= 0 && view.events[step] ? view.events[step].state : null;
}

function contextAt(step) {
  let context = {};
  let changed = {};
  for (let i = 0; i <= step && i < view.events.length; i++) {
    const event = view.events[i];
    if (event.kind === "call_started") context = { ...event.data.context };
    if (event.kind === "context") {
      for (const [name, [, after]] of Object.entries(event.data.changed)) context[name] = after;
    }
  }
  const current = view.events[step];
  if (current && current.kind === "context") changed = current.data.changed;
  return { context, changed };
}

function drawDiagram(step) {
  const nodes = svgParts("node");
  const edges = svgParts("edge");
  for (const group of [...nodes.values(), ...edges.values()]) {
    group.classList.remove("active", "visited", "walked", "last");
  }
  let lastEdge = null;
  for (let i = 0; i <= step && i < view.events.length; i++) {
    const event = view.events[i];
    if (event.kind === "call_started") nodes.get(event.state)?.classList.add("visited");
    if (event.kind === "transition") {
      nodes.get(event.data.source)?.classList.add("visited");
      nodes.get(event.data.target)?.classList.add("visited");
      lastEdge = edgeFor(edges, event.data);
      lastEdge?.classList.add("walked");
    }
  }
  lastEdge?.classList.add("last");
  const state = stateAt(step);
  if (state) nodes.get(state)?.classList.add("active");
  const shown = $("active-state");
  if (shown.textContent !== (state || "…")) {
    shown.textContent = state || "…";
    window.inspector.changes.push({ state, at: Date.now(), step, following: view.follow });
    showActive();
  }
}

function drawContext(step) {
  const { context, changed } = contextAt(step);
  const body = $("context").tBodies[0];
  body.replaceChildren();
  for (const [name, value] of Object.entries(context)) {
    const row = el("tr", name in changed ? "changed" : "");
    row.dataset.field = name;
    const cell = el("td");
    if (name in changed) cell.append(el("span", "was", shortValue(changed[name][0])));
    cell.append(el("span", "now", shortValue(value)));
    row.append(el("td", null, name), cell);
    body.append(row);
  }
  const total = view.events.length;
  $("step-label").textContent = total ? `step ${step + 1} of ${total}` : "the start";
}

function describe(event) {
  const d = event.data;
  switch (event.kind) {
    case "call_started": return `call ${d.resumed ? "resumed" : "started"} in ${event.state} (writer ${d.writer})`;
    case "transition_requested": return `${d.by} asked for ${d.trigger}`;
    case "transition": {
      const args = d.arguments && Object.keys(d.arguments).length ? ` ${JSON.stringify(d.arguments)}` : "";
      const took = d.duration_ms === null ? "" : `, ${d.duration_ms.toFixed(1)} ms`;
      return `${d.source} → ${d.target} by ${d.trigger}${args} (${d.by}${took})`;
    }
    case "message": return d.text + (d.interrupted ? " [interrupted]" : "");
    case "tool_call": return `${d.name}(${JSON.stringify(d.arguments)}) ${d.is_error ? "✗" : "→"} ${d.output}`;
    case "context": return Object.entries(d.changed).map(([k, [a, b]]) => `${k}: ${shortValue(a)} → ${shortValue(b)}`).join("\n");
    case "error": return `${d.source}: ${d.message}`;
    case "latency": return Object.entries(d).filter(([k]) => k !== "role").map(([k, v]) => `${k} ${(v * 1000).toFixed(1)} ms`).join(", ");
    case "call_ended": return `call ended (${d.reason})${d.final ? " in a final state" : ""}`;
    case "approval": return d.outcome === "asked" ? `asked before ${d.action}: ${d.question}`
      : `${d.action} ${d.outcome} by the caller${d.reason ? `: ${d.reason}` : ""}`;
    default: return JSON.stringify(d);
  }
}

function timelineRow(event, index) {
  const t0 = view.events.length ? view.events[0].at : event.at;
  const row = el("li", `${event.kind}${event.data.role ? ` ${event.data.role}` : ""}`);
  row.dataset.index = index;
  row.dataset.kind = event.kind;
  const text = el("span", "text");
  if (event.kind === "refusal") {
    text.append(`refused ${event.data.trigger} (${event.data.kind}): `);
    text.append(el("span", "reason", event.data.reason));
  } else {
    text.textContent = describe(event);
  }
  row.append(el("span", "at", `+${(event.at - t0).toFixed(2)}s`),
    el("span", "kind", `${event.kind.replace("_", " ")} · ${event.state}`), text);
  row.addEventListener("click", () => { setFollow(false); select(index); });
  return row;
}

function markTimeline(step) {
  for (const row of $("timeline").children) {
    const index = Number(row.dataset.index);
    row.classList.toggle("current", index === step);
    row.classList.toggle("future", index > step);
  }
  const list = $("timeline");
  const current = list.children[step];
  if (!current) return;  // scroll the list only, never the page (the header stays in view)
  const top = current.offsetTop;  // #timeline is positioned: offsets are within it
  if (top < list.scrollTop) list.scrollTop = top;
  else if (top + current.offsetHeight > list.scrollTop + list.clientHeight) {
    list.scrollTop = top + current.offsetHeight - list.clientHeight;
  }
}

function select(step) {
  view.step = Math.max(0, Math.min(step, view.events.length - 1));
  drawDiagram(view.step);
  drawContext(view.step);
  markTimeline(view.step);
}

function setFollow(on) {
  view.follow = on;
  $("follow").checked = on;
  if (!on && view.timer) { clearInterval(view.timer); view.timer = null; }
}

function addEvents(events) {
  const list = $("timeline");
  for (const event of events) {
    if (view.events.length && event.seq <= view.events[view.events.length - 1].seq) continue;
    view.events.push(event);
    list.append(timelineRow(event, view.events.length - 1));
  }
  if (view.follow) select(view.events.length - 1);
}

function showLogEnd(call) {
  setStatus(call.status, call.status === "ended" ? call.end_reason : "");
  const note = $("log-end");
  if (call.status === "stopped") {
    const last = new Date(call.updated_at * 1000).toLocaleString();
    const into = view.events.length ? ` (+${(call.updated_at - view.events[0].at).toFixed(2)}s)` : "";
    note.textContent = `The log ends at event ${call.events}, written ${last}${into}: its writer ` +
      "stopped before the call ended, so what happened after that was not recorded.";
    note.hidden = false;
  }
}

function listen(call) {
  const after = view.events.length ? view.events[view.events.length - 1].seq : 0;
  const source = new EventSource(`/api/calls/${encodeURIComponent(call.call_id)}/stream?after=${after}`);
  view.source = source;
  source.addEventListener("step", (message) => addEvents([JSON.parse(message.data)]));
  source.addEventListener("end", (message) => {
    source.close();
    view.call = JSON.parse(message.data);
    showLogEnd(view.call);
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) setStatus("disconnected"); };
}

function replay() {
  setFollow(false);
  select(0);
  view.timer = setInterval(() => {
    if (view.step >= view.events.length - 1) { clearInterval(view.timer); view.timer = null; return; }
    select(view.step + 1);
  }, 600);
}

async function showCall(callId) {
  $("title").textContent = callId;
  document.title = `${callId} — handoff inspector`;
  let data;
  try {
    data = await getJSON(`/api/calls/${encodeURIComponent(callId)}`);
  } catch (error) {
    showError(`could not read call ${callId}: ${error.message}`);
    return;
  }
  $("call-view").hidden = false;  // only now: no empty panels under an error
  view.call = data.call;
  setStatus(data.call.status);
  setUpZoom();
  await loadDiagram(data.call.diagram);
  addEvents(data.events);
  select(view.events.length - 1);
  $("first").addEventListener("click", () => { setFollow(false); select(0); });
  $("prev").addEventListener("click", () => { setFollow(false); select(view.step - 1); });
  $("next").addEventListener("click", () => { setFollow(false); select(view.step + 1); });
  $("last").addEventListener("click", () => { setFollow(false); select(view.events.length - 1); });
  $("play").addEventListener("click", replay);
  $("follow").addEventListener("change", (e) => { setFollow(e.target.checked); if (view.follow) select(view.events.length - 1); });
  if (data.call.status === "live") listen(data.call); else showLogEnd(data.call);
}

document.addEventListener("DOMContentLoaded", () => {
  const path = window.location.pathname;
  if (path.startsWith("/calls/")) showCall(decodeURIComponent(path.slice("/calls/".length)));
  else showCalls();
});
