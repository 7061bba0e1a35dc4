// batcher report page: draws the charts from the data embedded in the page (no network).
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("batcher-data").textContent);
  var T = D.timeline;
  var charts = [];
  var COLORS = { ok: "#2e9e5b", fail: "#d64545", skip: "#9aa3b2", warn: "#e38b12",
                 info: "#3b6fd6", dark: "#1d2430", violet: "#8a55c9" };

  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
  function width(el) { return Math.max(320, el.clientWidth - 16); }
  function perSecond(values) {
    return values.map(function (v) { return v == null ? null : v / T.width; });
  }
  function fixed(digits) {
    return function (u, v) { return v == null ? "-" : v.toFixed(digits); };
  }

  function timeChart(id, title, yLabel, series, data, extra) {
    var el = document.getElementById(id);
    if (!el || !T.t.length) { return; }
    var opts = {
      title: title, width: width(el), height: 260, tzDate: utc,
      cursor: { sync: { key: "time" } },
      scales: { x: { time: true } },
      axes: [{ label: "time (UTC)", space: 90 }, { label: yLabel, size: 60 }],
      series: [{ label: "time (UTC)" }].concat(series)
    };
    if (extra) { extra(opts); }
    charts.push([el, new uPlot(opts, [T.t].concat(data), el)]);
  }

  // Outcomes over time: the entries sent, stacked (succeeded, then failed). Skipped lines
  // were never sent, and a halt writes hundreds at once: they get their own scale on the
  // right, so that their spike does not flatten the work.
  var ok = perSecond(T.succeeded), failed = perSecond(T.failed), skipped = perSecond(T.skipped);
  var stackFailed = ok.map(function (v, i) { return v + failed[i]; });
  var raw = [null, failed, ok, skipped];
  function rawValue(u, v, si, i) { return i == null ? "-" : raw[si][i].toFixed(2); }
  timeChart("chart-outcomes", "Outcomes over time (entries sent per second, stacked)",
    "entries sent / s",
    [
      { label: "failed", stroke: COLORS.fail, fill: COLORS.fail + "99", value: rawValue },
      { label: "succeeded", stroke: COLORS.ok, fill: COLORS.ok + "99", value: rawValue },
      { label: "skipped (not sent)", stroke: COLORS.skip, dash: [4, 3], width: 1,
        scale: "skipped", value: rawValue }
    ],
    [stackFailed, ok, skipped],
    function (opts) {
      opts.axes.push({ label: "skipped / s", scale: "skipped", side: 1, size: 60,
                       grid: { show: false } });
    });

  // Throughput, 429s and retries, with each run's rate limit and settled rate.
  var all = T.succeeded.map(function (v, i) { return (v + T.failed[i]) / T.width; });
  timeChart("chart-throughput", "Throughput, throttling and retries", "per second",
    [
      { label: "entries sent / s", stroke: COLORS.info, width: 1.5, value: fixed(2) },
      { label: "ended on 429 / s", stroke: COLORS.fail, width: 1.5, value: fixed(2) },
      { label: "retries / s", stroke: COLORS.warn, width: 1, value: fixed(2) },
      { label: "settled rate", stroke: COLORS.dark, dash: [6, 4], width: 1.5, value: fixed(2) },
      { label: "rate limit", stroke: COLORS.violet, dash: [2, 3], width: 1, value: fixed(2) }
    ],
    [all, perSecond(T.throttled), perSecond(T.retries), T.settled_rate, T.rate_limit]);

  timeChart("chart-latency-time", "Latency over time (mean per interval)", "ms",
    [
      { label: "API time (duration_ms)", stroke: COLORS.info, width: 1.5, value: fixed(1),
        spanGaps: false },
      { label: "rate-limiter wait (wait_ms)", stroke: COLORS.warn, width: 1, value: fixed(1),
        spanGaps: false }
    ],
    [T.api_ms, T.wait_ms]);

  // The latency distribution: entries per (log-spaced) duration bucket.
  var H = D.latency;
  var hist = document.getElementById("chart-latency");
  if (hist && H.ms.length) {
    var steps = uPlot.paths.stepped({ align: 1 });
    charts.push([hist, new uPlot({
      title: "Latency distribution (latest lines; log scale)", width: width(hist), height: 260,
      scales: { x: { time: false, distr: 3 } },
      axes: [{ label: "milliseconds (up to)", grid: { show: false } },
             { label: "entries", size: 60 }],
      series: [
        { label: "up to ms", value: fixed(1) },
        { label: "API time", stroke: COLORS.info, fill: COLORS.info + "55", paths: steps },
        { label: "rate-limiter wait", stroke: COLORS.warn, fill: COLORS.warn + "44",
          paths: steps }
      ]
    }, [H.ms, H.api, H.wait], hist)]);
  }

  // A run's "zoom" button shows its span in every time chart; "all" the whole report.
  function zoom(from, to) {
    charts.forEach(function (pair) {
      if (pair[1].scales.x.time) { pair[1].setScale("x", { min: from, max: to }); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.zoom"), function (button) {
    button.addEventListener("click", function () {
      var from = Number(button.getAttribute("data-from"));
      var to = Number(button.getAttribute("data-to"));
      zoom(from - T.width, to + T.width);
      document.getElementById("charts").scrollIntoView();
    });
  });
  // Runs days apart leave the whole-report view mostly empty: start on the latest run.
  var R = D.runs;
  if (R.length > 1 && T.t.length) {
    var busy = R.reduce(function (sum, r) { return sum + (r.to - r.from); }, 0);
    var last = R[R.length - 1];
    if (T.t[T.t.length - 1] - T.t[0] > 4 * busy && last.to > last.from) {
      zoom(last.from - T.width, last.to + T.width);
      var note = document.getElementById("zoom-note");
      if (note) { note.textContent = "Showing the latest run (" + last.id + "); "; }
    }
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (pair) {
      pair[1].setSize({ width: width(pair[0]), height: 260 });
    });
  });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
