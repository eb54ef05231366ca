// Draws the owner's running balance with uPlot (served by the console from node_modules). The points
// come from the page itself (the #chart-data JSON block): no request of its own.
/* global uPlot, document, window */
(function () {
  "use strict";
  var holder = document.getElementById("chart");
  var data = document.getElementById("chart-data");
  if (!holder || !data || typeof uPlot === "undefined") return;
  var points = JSON.parse(data.textContent || "[]");
  if (points.length === 0) return;
  var xs = [];
  var balance = [];
  var expiries = [];
  var reversals = [];
  for (var i = 0; i < points.length; i++) {
    var p = points[i];
    xs.push(p.t);
    balance.push(p.balance);
    expiries.push(p.kind === "expiry" ? p.balance : null);
    reversals.push(p.kind === "reversal" ? p.balance : null);
  }
  function width() {
    return Math.max(260, holder.clientWidth);
  }
  function height() {
    return window.innerWidth < 640 ? 220 : 300;
  }
  var marker = function (stroke, fill) {
    return {
      stroke: stroke,
      fill: fill,
      width: 0,
      points: { show: true, size: 9, stroke: stroke, fill: fill },
    };
  };
  var opts = {
    width: width(),
    height: height(),
    scales: { x: { time: true } },
    // Times in UTC, like every table of the console (uPlot would otherwise use the browser's zone).
    tzDate: function (ts) {
      return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
    },
    series: [
      { label: "Time (UTC)" },
      // A balance holds until the next entry changes it: a step line.
      {
        label: "Balance",
        stroke: "#0b5cad",
        width: 2,
        paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: false },
      },
      // EXPIRY entries only (credits that expired); a HOLD_EXPIRY moves no credit and is a plain point.
      Object.assign({ label: "Credits expired" }, marker("#b42318", "#f8c4bd")),
      Object.assign({ label: "Reversal" }, marker("#6a3fb5", "#d9c9f5")),
    ],
    axes: [{ label: "Time (UTC)" }, { label: "Credits" }],
  };
  var plot = new uPlot(opts, [xs, balance, expiries, reversals], holder);
  holder.setAttribute("data-ready", String(points.length));
  window.addEventListener("resize", function () {
    plot.setSize({ width: width(), height: height() });
  });
})();
