/* Charts of the report pages. Each <canvas data-chart="ID"> is drawn from the JSON in
   <script type="application/json" id="ID"> (Django's json_script): {type, labels, datasets: [{label, data}],
   format: "count" | "money" | "percent", horizontal}. The numbers are also in the page's tables, so the pages
   read fine without this file or without Chart.js. Empty values (null) are gaps, never zeros. */
(function () {
  "use strict";

  var PALETTE = ["#0f766e", "#175cd3", "#c11574", "#a15c07", "#6941c6", "#027a48", "#b42318", "#475467",
    "#0e9384", "#dd2590", "#ca8504", "#2e90fa"];
  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function formatter(format, currency) {
    var locale = document.documentElement.lang || undefined;
    var plain = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
    var money = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    var share = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
    return function (value) {
      if (value === null || value === undefined || isNaN(value)) return "—";
      if (format === "money") return (currency || "") + money.format(value);
      if (format === "percent") return share.format(value);
      return plain.format(value);
    };
  }

  function colour(index, alpha) {
    var hex = PALETTE[index % PALETTE.length];
    if (alpha === undefined) return hex;
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function config(spec, currency) {
    var format = formatter(spec.format, currency);
    var round = spec.type === "doughnut" || spec.type === "pie";
    var line = spec.type === "line";
    var datasets = spec.datasets.map(function (dataset, index) {
      var styled = { label: dataset.label, data: dataset.data };
      if (round) {
        styled.backgroundColor = dataset.data.map(function (_value, i) { return colour(i); });
        styled.borderColor = "#fff";
      } else if (line) {
        styled.borderColor = colour(index);
        styled.backgroundColor = colour(index, 0.12);
        styled.fill = spec.datasets.length === 1;
        styled.cubicInterpolationMode = "monotone";  // smooth, but never above or below the data
        styled.spanGaps = false;
        styled.pointRadius = spec.labels.length > 60 ? 0 : 2;
      } else {
        styled.backgroundColor = colour(index, 0.85);
        styled.borderRadius = 3;
      }
      return styled;
    });
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion ? false : { duration: 300 },
      plugins: {
        legend: { display: round || spec.datasets.length > 1, position: round ? "right" : "bottom" },
        tooltip: {
          callbacks: {
            label: function (context) {
              var value = round ? context.parsed : (spec.horizontal ? context.parsed.x : context.parsed.y);
              return (context.dataset.label ? context.dataset.label + ": " : "") + format(value);
            },
          },
        },
      },
    };
    if (!round) {
      var valueAxis = { beginAtZero: true, ticks: { callback: function (value) { return format(value); } } };
      var categoryAxis = { ticks: { autoSkip: true, maxRotation: 0 } };
      options.indexAxis = spec.horizontal ? "y" : "x";
      options.scales = spec.horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis };
      if (line) options.interaction = { mode: "index", intersect: false };
    }
    return { type: spec.type, data: { labels: spec.labels, datasets: datasets }, options: options };
  }

  function draw(canvas) {
    if (!window.Chart || window.Chart.getChart(canvas)) return;
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    try {
      new window.Chart(canvas, config(JSON.parse(source.textContent), canvas.dataset.currency));
    } catch (error) {
      // A chart that cannot be drawn leaves its table to speak for it.
      if (window.console) window.console.error("report chart", canvas.dataset.chart, error);
    }
  }

  function drawAll(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("canvas[data-chart]"), draw);
  }

  // Content swapped in by htmx: free the charts being removed, draw the new ones.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !window.Chart) return;
    Array.prototype.forEach.call(target.querySelectorAll("canvas[data-chart]"), function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  });
  document.addEventListener("htmx:load", function (event) { drawAll(event.target); });

  // Deferred scripts run after the document is parsed, in order: Chart.js is already there.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();
