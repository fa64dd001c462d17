// cleave-loadgen report: draws the charts of the inlined results as SVG.
// No network: everything it needs is in #loadgen-data.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"];
  var results = JSON.parse(document.getElementById("loadgen-data").textContent);

  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function h(tag, attrs, text, parent) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, d) {
    if (v === undefined || v === null || isNaN(v)) return "-";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    return v.toFixed(d === undefined ? 2 : d);
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  // lineChart draws series [{id, name, color, points: [[x, y]...]}] into a
  // new <svg id=id>. opts: xmin, xmax, xticks [[x, label]], xlabel, ylabel.
  function lineChart(parent, id, series, opts) {
    var W = 560, H = 260, L = 56, R = 26, T = 12, B = 40;
    var svg = el("svg", { id: id, viewBox: "0 0 " + W + " " + H, role: "img" }, parent);
    el("title", {}, svg).textContent = opts.title || id;
    var ymax = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > ymax) ymax = p[1]; }); });
    ymax = niceMax(ymax * 1.05);
    var xmin = opts.xmin, xmax = opts.xmax > opts.xmin ? opts.xmax : opts.xmin + 1;
    function X(x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); }
    function Y(y) { return H - B - y / ymax * (H - T - B); }
    for (var i = 0; i <= 4; i++) {
      var yv = ymax * i / 4;
      el("line", { x1: L, x2: W - R, y1: Y(yv), y2: Y(yv), "class": "grid" }, svg);
      el("text", { x: L - 6, y: Y(yv) + 4, "text-anchor": "end" }, svg).textContent = fmt(yv, ymax < 10 ? 2 : 0);
    }
    (opts.xticks || []).forEach(function (t) {
      el("line", { x1: X(t[0]), x2: X(t[0]), y1: H - B, y2: H - B + 4, "class": "axis" }, svg);
      el("text", { x: X(t[0]), y: H - B + 16, "text-anchor": "middle" }, svg).textContent = t[1];
    });
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }, svg);
    el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }, svg);
    el("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, svg).textContent = opts.xlabel || "";
    el("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (T + H - B) / 2 + ")" }, svg).textContent = opts.ylabel || "";
    series.forEach(function (s) {
      if (s.points.length === 0) return;
      var d = s.points.map(function (p, j) { return (j ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1); }).join(" ");
      var path = el("path", { id: s.id, d: d, fill: "none", stroke: s.color, "stroke-width": 2, "data-points": s.points.length }, svg);
      el("title", {}, path).textContent = s.name;
      s.points.forEach(function (p) {
        var c = el("circle", { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: s.points.length > 60 ? 1.2 : 2.5, fill: s.color }, svg);
        el("title", {}, c).textContent = s.name + ": " + fmt(p[1]) + (opts.unit || "") + " at " + (opts.xfmt ? opts.xfmt(p[0]) : p[0]);
      });
    });
    return svg;
  }

  function legend(parent, series) {
    var lg = h("div", { "class": "legend" }, null, parent);
    series.forEach(function (s) { h("span", { style: "--c:" + s.color }, s.name, lg); });
  }

  function figure(parent, caption) {
    var f = h("figure", {}, null, parent);
    h("figcaption", {}, caption, f);
    return f;
  }

  // Percentile axis: x = log10(100 / (100 - p)), so 90, 99, 99.9 are evenly spaced.
  function px(p) { return Math.log10(100 / (100 - p)); }
  var PTICKS = [[0, "0%"], [1, "90%"], [2, "99%"], [3, "99.9%"], [4, "99.99%"], [5, "99.999%"]];

  var root = document.getElementById("runs");
  results.forEach(function (r, i) {
    var sec = h("section", { "class": "run", id: "run-" + i }, null, root);
    h("h2", {}, r.workload + " " + r.size + ", " + r.clients + " clients, " +
      (r.mode === "open" ? "open loop at " + fmt(r.rate, 0) + "/s" : "closed loop") +
      " (" + (r.label || r.target || "cleave") + (r.baseline ? ", baseline" : "") + ", " + fmt(r.duration_s, 1) + " s" +
      (r.router ? ", " + r.router : "") + ")", sec);

    var tiles = h("div", { "class": "tiles" }, null, sec);
    [["ops/s", fmt(r.ops_per_sec, 0)], ["p50 ms", fmt(r.latency_ms.p50, 3)], ["p99 ms", fmt(r.latency_ms.p99, 3)],
     ["p99.9 ms", fmt(r.latency_ms.p999, 3)], ["max ms", fmt(r.latency_ms.max, 3)], ["ops", fmt(r.ops, 0)],
     ["errors", fmt(r.errors, 0)]].concat(r.server_cpu ? [["server CPU µs/op", fmt(r.server_cpu.us_per_op, 0)]] : []).forEach(function (t) {
      var d = h("div", { "class": "tile" + (t[0] === "errors" && r.errors > 0 ? " bad" : "") }, null, tiles);
      h("div", { "class": "v" }, t[1], d);
      h("div", { "class": "k" }, t[0], d);
    });

    var charts = h("div", { "class": "charts" }, null, sec);
    var ps = r.per_second || [];
    var n = Math.max(ps.length, 1);

    var f1 = figure(charts, "Throughput over time");
    var tp = [{ id: "throughput-line-" + i, name: "ok ops/s", color: COLORS[0], points: ps.map(function (s) { return [s.t, s.ops]; }) }];
    if (r.errors > 0) tp.push({ id: "errors-line-" + i, name: "errors/s", color: COLORS[1], points: ps.map(function (s) { return [s.t, s.errors]; }) });
    lineChart(f1, "chart-throughput-" + i, tp, { xmin: 0, xmax: n, xlabel: "second", ylabel: "ops/s", title: "throughput per second", unit: " ops/s",
      xticks: ticks(n) });
    legend(f1, tp);

    var f2 = figure(charts, "Latency over time");
    var lt = [
      { id: "latency-time-" + i + "-p50", name: "p50", color: COLORS[2], points: ps.filter(function (s) { return s.ops > 0; }).map(function (s) { return [s.t, s.p50_ms]; }) },
      { id: "latency-time-" + i + "-p99", name: "p99", color: COLORS[3], points: ps.filter(function (s) { return s.ops > 0; }).map(function (s) { return [s.t, s.p99_ms]; }) }];
    lineChart(f2, "chart-latency-time-" + i, lt, { xmin: 0, xmax: n, xlabel: "second", ylabel: "ms", title: "latency per second", unit: " ms", xticks: ticks(n) });
    legend(f2, lt);

    var f3 = figure(charts, "Latency by percentile");
    var ops = Object.keys(r.per_op || {}).sort();
    var ls = ops.map(function (op, k) {
      return { id: "latency-line-" + i + "-" + op, name: op, color: COLORS[(k + 4) % COLORS.length],
        points: (r.per_op[op].percentiles || []).filter(function (p) { return p.p < 100; }).map(function (p) { return [px(p.p), p.ms]; }) };
    });
    lineChart(f3, "chart-latency-" + i, ls, { xmin: 0, xmax: 5, xlabel: "percentile", ylabel: "ms", title: "latency by percentile", unit: " ms",
      xticks: PTICKS, xfmt: function (x) { return (100 - 100 / Math.pow(10, x)).toPrecision(6) + "%"; } });
    legend(f3, ls);

    var tbl = h("table", { id: "summary-" + i }, null, sec);
    var hr = h("tr", {}, null, tbl);
    ["op", "ops", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"].forEach(function (c) { h("th", {}, c, hr); });
    function row(name, o) {
      var tr = h("tr", {}, null, tbl);
      [name, fmt(o.ops, 0), fmt(o.errors, 0), fmt(o.ops_per_sec, 0), fmt(o.latency_ms.p50, 3), fmt(o.latency_ms.p90, 3),
       fmt(o.latency_ms.p99, 3), fmt(o.latency_ms.p999, 3), fmt(o.latency_ms.max, 3)].forEach(function (c) { h("td", {}, c, tr); });
    }
    ops.forEach(function (op) { row(op, r.per_op[op]); });
    if (ops.length !== 1) row("all", r);
    if (r.server_cpu) {
      var c = r.server_cpu;
      h("p", { "class": "meta" }, "Server CPU (user + system, /proc) over the measured window: " + fmt(c.cpu_s, 2) + " s, " +
        fmt(c.us_per_op, 0) + " µs per operation; the load generator itself " + fmt(c.loadgen_us_per_op, 0) + " µs per operation.", sec);
      var ct = h("table", { id: "cpu-" + i }, null, sec);
      var ch = h("tr", {}, null, ct);
      ["process", "pid", "user s", "sys s", "µs/op", "share"].forEach(function (x) { h("th", {}, x, ch); });
      (c.procs || []).forEach(function (p) {
        var tr = h("tr", {}, null, ct);
        [p.label + (p.error ? " (" + p.error + ")" : ""), String(p.pid), fmt(p.user_s, 2), fmt(p.sys_s, 2), fmt(p.us_per_op, 0),
         fmt(100 * p.share, 0) + "%"].forEach(function (x) { h("td", {}, x, tr); });
      });
    }
    var codes = Object.keys(r.errors_by_code || {}).sort();
    if (codes.length) {
      h("p", { "class": "meta" }, "errors by code: " + codes.map(function (c) { return c + " " + r.errors_by_code[c]; }).join(", "), sec);
    }
  });

  function ticks(n) {
    var step = Math.max(1, Math.ceil(n / 10));
    var t = [];
    for (var x = 0; x <= n; x += step) t.push([x, String(x)]);
    return t;
  }

  document.body.setAttribute("data-rendered", "true");
})();
