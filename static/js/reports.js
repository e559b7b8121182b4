/* Charts of the report pages. Each <canvas data-chart="ID"> is drawn from the JSON in
   <script type="application/json" id="ID"> (Django's json_script):
     {type: "bar" | "line" | "doughnut" | "waterfall", labels, datasets: [{label, data, partialIndex}],
      format: "count" | "money" | "percent", horizontal,
      partial: ["", "month to date", ...]   (bars: a note per bar; a non-empty one marks the bar incomplete),
      partialLabel,                         (lines: what the point at a dataset's partialIndex is)
      steps: [{kind: "total" | "rise" | "fall" | "flat", base, value}]   (waterfall)}
   The numbers are also in the page's tables, so the pages read fine without this file or without Chart.js.
   Empty values (null) are gaps, never zeros.

   Numbers follow the page's language (<html lang>) through Intl.NumberFormat: a comma every three digits in
   English and in Chinese. Values on bars and axes are abbreviated from 10,000 on (12.3K / 1.2M in English,
   1.2万 / 3.4亿 in Chinese); percentages from 1,000 % on are written as multiples (12,345 % → 123×). */
(function () {
  "use strict";

  var PALETTE = ["#0f766e", "#175cd3", "#c11574", "#a15c07", "#6941c6", "#027a48", "#b42318", "#475467",
    "#0e9384", "#dd2590", "#ca8504", "#2e90fa"];
  var WATERFALL = { total: "#475467", rise: "#067647", fall: "#b42318", flat: "#98a2b3" };
  var LABEL_COLOUR = "#344054";
  var COMPACT_FROM = 10000;
  var MULTIPLE_FROM = 10;  // a ratio of 10 = 1,000 %
  var specs = new WeakMap();  // canvas → what the plugins below need to know about its chart
  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function pageLocale() {
    var lang = document.documentElement.lang || undefined;
    try {
      new Intl.NumberFormat(lang);
      return lang;
    } catch (error) {
      return undefined;
    }
  }

  /* format(value) for tables and tooltips, format.short(value) for labels on bars and axis ticks. */
  function formatter(format, currency) {
    var locale = pageLocale();
    var plain = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
    var money = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    var share = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
    var compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
    var whole = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
    var oneDecimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
    currency = currency || "";

    function sign(value) { return value < 0 ? "-" : ""; }
    function multiple(value) {
      return (Math.abs(value) < 100 ? oneDecimal : whole).format(value) + "×";
    }
    function full(value) {
      if (value === null || value === undefined || isNaN(value)) return "—";
      if (format === "money") return sign(value) + currency + money.format(Math.abs(value));
      if (format === "percent") return Math.abs(value) >= MULTIPLE_FROM ? multiple(value) : share.format(value);
      return plain.format(value);
    }
    full.short = function (value) {
      if (value === null || value === undefined || isNaN(value)) return "";
      var big = Math.abs(value) >= COMPACT_FROM;
      if (format === "money") {
        return sign(value) + currency + (big ? compact.format(Math.abs(value)) : whole.format(Math.abs(value)));
      }
      if (format === "percent") return full(value);
      return big ? compact.format(value) : plain.format(value);
    };
    full.signed = function (value, short) {
      var text = short ? full.short(value) : full(value);
      return value > 0 ? "+" + text : text;
    };
    return full;
  }

  function colour(index, alpha) {
    var hex = PALETTE[index % PALETTE.length];
    if (alpha === undefined) return hex;
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  /* Diagonal stripes over a light tint of the colour: an incomplete period ("month to date"). */
  function hatch(hex) {
    var tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    var ctx = tile.getContext("2d");
    var n = parseInt(hex.slice(1), 16);
    ctx.fillStyle = "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + ",0.22)";
    ctx.fillRect(0, 0, 8, 8);
    ctx.strokeStyle = hex;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(-2, 10); ctx.lineTo(10, -2);
    ctx.moveTo(-2, 2); ctx.lineTo(2, -2);
    ctx.moveTo(6, 10); ctx.lineTo(10, 6);
    ctx.stroke();
    return ctx.createPattern(tile, "repeat") || hex;
  }

  /* Writes each bar's value at its end (above a column, right of a horizontal bar). A bar too narrow for
     its label gets it turned upright; labels never overlap the chart's edge. */
  var barValues = {
    id: "scrmBarValues",
    afterDatasetsDraw: function (chart) {
      var spec = specs.get(chart.canvas);
      if (!spec || spec.round || spec.line) return;
      var ctx = chart.ctx;
      var area = chart.chartArea;
      ctx.save();
      ctx.font = "11px system-ui, -apple-system, 'PingFang SC', 'Microsoft YaHei', sans-serif";
      ctx.fillStyle = LABEL_COLOUR;
      chart.data.datasets.forEach(function (dataset, datasetIndex) {
        var meta = chart.getDatasetMeta(datasetIndex);
        if (meta.hidden) return;
        meta.data.forEach(function (bar, index) {
          var text = spec.labelFor(datasetIndex, index);
          if (!text) return;
          var props = bar.getProps(["x", "y", "base", "width", "height"]);
          var width = ctx.measureText(text).width;
          if (spec.horizontal) {
            var right = Math.max(props.x, props.base);
            ctx.textAlign = "left";
            ctx.textBaseline = "middle";
            ctx.fillText(text, Math.min(right + 4, area.right - width), props.y);
            return;
          }
          var top = Math.min(props.y, props.base);
          if (width + 2 > props.width) {
            // Too narrow: upright, above the bar, or inside its top in white when there is no room above.
            var inside = top - width - 4 < area.top && Math.abs(props.base - props.y) > width + 6;
            ctx.save();
            ctx.translate(props.x, inside ? top + 4 : Math.max(top - 4, area.top + width));
            ctx.rotate(-Math.PI / 2);
            ctx.textAlign = inside ? "right" : "left";
            ctx.textBaseline = "middle";
            if (inside) ctx.fillStyle = "#fff";
            ctx.fillText(text, 0, 0);
            ctx.restore();
          } else {
            ctx.textAlign = "center";
            ctx.textBaseline = "bottom";
            ctx.fillText(text, props.x, Math.max(top - 3, area.top + 12));
          }
        });
      });
      ctx.restore();
    },
  };

  /* Dashed connectors between the steps of a waterfall: each step starts where the previous one ended. */
  var waterfallLinks = {
    id: "scrmWaterfallLinks",
    afterDatasetsDraw: function (chart) {
      var spec = specs.get(chart.canvas);
      if (!spec || !spec.waterfall) return;
      var bars = chart.getDatasetMeta(0).data;
      var y = chart.scales.y;
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#98a2b3";
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      for (var i = 0; i + 1 < bars.length; i++) {
        var step = spec.steps[i];
        var level = y.getPixelForValue(step.kind === "total" ? step.value : step.base + step.value);
        var from = bars[i].getProps(["x", "width"], true);
        var to = bars[i + 1].getProps(["x", "width"], true);
        ctx.beginPath();
        ctx.moveTo(from.x + from.width / 2, level);
        ctx.lineTo(to.x - to.width / 2, level);
        ctx.stroke();
      }
      ctx.restore();
    },
  };

  function waterfallConfig(spec, format) {
    var data = spec.steps.map(function (step) {
      return step.kind === "total" ? [0, step.value] : [step.base, step.base + step.value];
    });
    var colours = spec.steps.map(function (step) { return WATERFALL[step.kind] || WATERFALL.flat; });
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [{
          label: spec.datasets && spec.datasets[0] ? spec.datasets[0].label : "",
          data: data,
          backgroundColor: colours,
          borderRadius: 3,
          maxBarThickness: 72,
        }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reducedMotion ? false : { duration: 300 },
        layout: { padding: { top: 18 } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (context) {
                var step = spec.steps[context.dataIndex];
                return step.kind === "total" ? format(step.value) : format.signed(step.value);
              },
            },
          },
        },
        scales: {
          x: { ticks: { autoSkip: false, maxRotation: 0 } },
          y: { beginAtZero: true, grace: "8%", ticks: { callback: function (value) { return format.short(value); } } },
        },
      },
    };
  }

  function config(spec, currency) {
    var format = formatter(spec.format, currency);
    var round = spec.type === "doughnut" || spec.type === "pie";
    var line = spec.type === "line";
    var partial = spec.partial || [];
    var meta = {
      round: round,
      line: line,
      horizontal: !!spec.horizontal,
      waterfall: spec.type === "waterfall",
      steps: spec.steps,
      labelFor: function (datasetIndex, index) {
        if (spec.type === "waterfall") {
          var step = spec.steps[index];
          return step.kind === "total" ? format.short(step.value) : format.signed(step.value, true);
        }
        var value = spec.datasets[datasetIndex].data[index];
        if (value === null || value === undefined) return "";
        // An incomplete bar (month to date) says so on its label too: a bar of 0 shows no hatching.
        return format.short(value) + (partial[index] ? "*" : "");
      },
    };
    if (spec.type === "waterfall") {
      var built = waterfallConfig(spec, format);
      built.$scrm = meta;
      return built;
    }
    var datasets = spec.datasets.map(function (dataset, index) {
      var styled = { label: dataset.label, data: dataset.data };
      if (round) {
        styled.backgroundColor = dataset.data.map(function (_value, i) { return colour(i); });
        styled.borderColor = "#fff";
      } else if (line) {
        var at = dataset.partialIndex;
        var hasPartial = at !== null && at !== undefined;
        styled.borderColor = colour(index);
        styled.backgroundColor = colour(index, 0.12);
        styled.fill = spec.datasets.length === 1;
        styled.cubicInterpolationMode = "monotone";  // smooth, but never above or below the data
        styled.spanGaps = false;
        styled.pointRadius = dataset.data.map(function (_value, i) {
          if (hasPartial && i === at) return 4;
          return spec.labels.length > 60 ? 0 : 2;
        });
        // The incomplete month: a hollow point reached by a dashed line.
        styled.pointBackgroundColor = dataset.data.map(function (_value, i) {
          return hasPartial && i === at ? "#fff" : colour(index);
        });
        if (hasPartial) {
          styled.segment = { borderDash: function (ctx) { return ctx.p1DataIndex === at ? [4, 4] : undefined; } };
        }
      } else {
        var solid = colour(index, 0.85);
        styled.backgroundColor = dataset.data.map(function (_value, i) { return partial[i] ? hatch(colour(index)) : solid; });
        styled.borderColor = dataset.data.map(function (_value, i) { return partial[i] ? colour(index) : solid; });
        styled.borderWidth = dataset.data.map(function (_value, i) { return partial[i] ? 1 : 0; });
        styled.borderRadius = 3;
        styled.maxBarThickness = 56;
      }
      return styled;
    });
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion ? false : { duration: 300 },
      layout: { padding: { top: round ? 0 : 18, right: spec.horizontal ? 48 : 0 } },
      plugins: {
        legend: { display: round || spec.datasets.length > 1, position: round ? "right" : "bottom" },
        tooltip: {
          callbacks: {
            label: function (context) {
              var value = round ? context.parsed : (spec.horizontal ? context.parsed.x : context.parsed.y);
              var text = (context.dataset.label ? context.dataset.label + ": " : "") + format(value);
              var note = line
                ? (spec.datasets[context.datasetIndex].partialIndex === context.dataIndex ? spec.partialLabel : "")
                : partial[context.dataIndex];
              return note ? text + " (" + note + ")" : text;
            },
          },
        },
      },
    };
    if (!round) {
      var valueAxis = {
        beginAtZero: true,
        grace: line ? 0 : "5%",
        ticks: { callback: function (value) { return format.short(value); } },
      };
      var categoryAxis = { ticks: { autoSkip: true, maxRotation: 0 } };
      options.indexAxis = spec.horizontal ? "y" : "x";
      options.scales = spec.horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis };
      if (line) options.interaction = { mode: "index", intersect: false };
    }
    return { type: spec.type, data: { labels: spec.labels, datasets: datasets }, options: options, $scrm: meta };
  }

  function draw(canvas) {
    if (!window.Chart || window.Chart.getChart(canvas)) return;
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    try {
      var built = config(JSON.parse(source.textContent), canvas.dataset.currency);
      specs.set(canvas, built.$scrm);
      new window.Chart(canvas, {
        type: built.type,
        data: built.data,
        options: built.options,
        plugins: [barValues, waterfallLinks],
      });
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
