// The cleave status page: polls status.json (the document `cleave status
// -o json` prints) every second, four times a second while a split is in
// progress, and redraws the ring, the splits, the
// clusters and nodes, the hottest roots and the routers. No library, no
// network access beyond this router's side port.
"use strict";

const PHASES = ["planned", "learners-added", "caught-up", "split-committed", "table-updated", "cleaned"];
const PALETTE = ["#1570ef", "#e04f16", "#079455", "#9e77ed", "#dd2590", "#ca8504", "#0e9384", "#475467"];
const RING = 2 ** 64;
const colours = new Map(); // cluster id -> colour, stable while the page is open
let splitting = false; // a split is in progress: poll faster to show each phase
let last = null; // {at, ops: Map(node key -> ops), roots: Map(root -> ops)}

function colour(id) {
  if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
  return colours.get(id);
}

function el(tag, attrs, ...children) {
  const ns = tag === "path" || tag === "text" || tag === "circle" ? "http://www.w3.org/2000/svg" : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
}

function hex(n) { return n >= RING ? "2^64" : "0x" + Math.floor(n / 2 ** 32).toString(16).padStart(8, "0") + "…"; }

// arc returns the SVG path of the ring segment [a, b) (fractions of the ring).
function arc(a, b) {
  const R = 100, r = 62, pt = (f, rad) => {
    const t = 2 * Math.PI * f - Math.PI / 2;
    return (rad * Math.cos(t)).toFixed(2) + " " + (rad * Math.sin(t)).toFixed(2);
  };
  if (b - a >= 0.9999) b = a + 0.9999;
  const large = b - a > 0.5 ? 1 : 0;
  return `M${pt(a, R)} A${R} ${R} 0 ${large} 1 ${pt(b, R)} L${pt(b, r)} A${r} ${r} 0 ${large} 0 ${pt(a, r)} Z`;
}

function drawRing(st) {
  const svg = document.getElementById("ring"), legend = document.getElementById("legend");
  svg.replaceChildren();
  legend.replaceChildren();
  for (const c of st.clusters) {
    const a = c.range.start / RING, b = c.range.end / RING;
    const seg = el("path", { class: "seg", d: arc(a, b), fill: colour(c.id), "data-cluster": c.id,
      "data-start": String(c.range.start), "data-end": String(c.range.end) });
    seg.append(el("title", {}, `${c.id}: [${hex(c.range.start)}, ${hex(c.range.end)})`));
    svg.append(seg);
    const mid = 2 * Math.PI * (a + b) / 2 - Math.PI / 2;
    svg.append(el("text", { x: (112 * Math.cos(mid)).toFixed(1), y: (112 * Math.sin(mid) + 3).toFixed(1) }, c.id));
    legend.append(el("li", {}, el("i", { style: "background:" + colour(c.id) }), `${c.id} — leader ${c.leader || "none"}`));
  }
  svg.append(el("text", { x: 0, y: 4 }, `table v${st.version}`));
}

function drawSplits(st) {
  const splits = st.splits || [], table = document.getElementById("splits");
  document.getElementById("no-splits").hidden = splits.length > 0;
  table.hidden = splits.length === 0;
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const s of splits.slice().reverse()) {
    const now = PHASES.indexOf(s.phase), phases = el("div", { class: "phases" });
    for (const [i, p] of PHASES.entries()) {
      const cls = s.phase === "abandoned" ? "abandoned" : i < now || s.phase === "cleaned" ? "done" : i === now ? "now" : "";
      phases.append(el("span", { class: cls, "data-phase": p }, p));
    }
    body.append(el("tr", { "data-split": String(s.id), "data-phase": s.phase },
      el("td", {}, String(s.id)), el("td", {}, s.cluster), el("td", {}, s.new_cluster), el("td", {}, hex(s.at)),
      el("td", { class: "phase" }, s.phase), el("td", {}, phases), el("td", { class: "err" }, s.error || "")));
  }
}

function drawNodes(st, rates) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const c of st.clusters) {
    for (const n of c.nodes) {
      const notes = [n.error, n.alarm, ...(n.conditions || [])].filter(Boolean).join("; ");
      body.append(el("tr", { "data-node": n.addr },
        el("td", {}, c.id), el("td", {}, `[${hex(c.range.start)}, ${hex(c.range.end)})`), el("td", {}, String(n.id)),
        el("td", {}, n.addr), el("td", { class: "role-" + n.role }, n.role), el("td", {}, String(n.applied)),
        el("td", {}, String(n.lag)), el("td", { class: "live-" + (n.liveness || "unknown") }, n.liveness || "?"),
        el("td", {}, String(n.files)), el("td", {}, bytes(n.bytes)), el("td", {}, rates.nodes.get(n.addr) ?? "…"),
        el("td", { class: "err" }, notes)));
    }
  }
}

// roots merges the roots the leaders (else any node) of each cluster report.
function roots(st) {
  const out = new Map();
  for (const c of st.clusters) {
    const n = c.nodes.find((n) => n.addr === c.leader) || c.nodes.find((n) => n.roots);
    for (const r of (n && n.roots) || []) out.set(r.name, { ...r, cluster: c.id });
  }
  return out;
}

function drawRoots(rs, rates) {
  const body = document.querySelector("#roots tbody");
  body.replaceChildren();
  const sorted = [...rs.values()].sort((a, b) => (rates.roots.get(b.name) || 0) - (rates.roots.get(a.name) || 0) || b.ops - a.ops);
  for (const r of sorted.slice(0, 10)) {
    body.append(el("tr", {}, el("td", {}, r.name), el("td", {}, r.cluster), el("td", {}, String(rates.roots.get(r.name) ?? "…")),
      el("td", {}, String(r.ops)), el("td", {}, String(r.files)), el("td", {}, bytes(r.bytes))));
  }
}

function drawRouters(st) {
  const body = document.querySelector("#routers tbody");
  body.replaceChildren();
  for (const r of st.routers || [{ id: st.router, addr: "", version: st.version }]) {
    body.append(el("tr", {}, el("td", {}, r.id || String(r.raft_id || "")), el("td", {}, r.addr || ""),
      el("td", {}, r.leader ? "yes" : ""), el("td", {}, String(r.applied ?? "")), el("td", {}, String(r.version ?? "")),
      el("td", { class: "err" }, r.error || "")));
  }
}

// rates turns the counters of two successive polls into per-second rates.
function rates(st, rs) {
  const now = { at: performance.now(), ops: new Map(), roots: new Map() };
  for (const c of st.clusters) for (const n of c.nodes) now.ops.set(n.addr, n.ops);
  for (const r of rs.values()) now.roots.set(r.name, r.ops);
  const out = { nodes: new Map(), roots: new Map() };
  if (last) {
    const dt = (now.at - last.at) / 1000;
    const rate = (a, b) => (a === undefined || b < a ? undefined : ((b - a) / dt).toFixed(1));
    for (const [k, v] of now.ops) out.nodes.set(k, rate(last.ops.get(k), v));
    for (const [k, v] of now.roots) out.roots.set(k, rate(last.roots.get(k), v));
  }
  last = now;
  return out;
}

async function poll() {
  const err = document.getElementById("error");
  try {
    const resp = await fetch("status.json", { cache: "no-store" });
    if (!resp.ok) throw new Error(`status.json: HTTP ${resp.status}`);
    const st = await resp.json();
    const rs = roots(st), rt = rates(st, rs);
    drawRing(st);
    drawSplits(st);
    drawNodes(st, rt);
    drawRoots(rs, rt);
    drawRouters(st);
    const nodes = st.clusters.reduce((n, c) => n + c.nodes.length, 0);
    document.getElementById("summary").textContent =
      `router ${st.router}, routing table v${st.version}, ${st.clusters.length} clusters, ${nodes} nodes — updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.version = String(st.version);
    document.body.dataset.updated = String(Date.now());
    err.hidden = true;
    splitting = (st.splits || []).some((s) => s.phase !== "cleaned" && s.phase !== "abandoned");
  } catch (e) {
    err.textContent = "cannot reach the router: " + e.message;
    err.hidden = false;
  }
  setTimeout(poll, splitting ? 250 : 1000);
}

poll();
