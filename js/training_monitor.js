// TrainingMonitor front end: training-loss and validation curves drawn as SVG, with the
// best epoch marked. The same drawing serves the live widget, the finished run and the
// offline export.

import {
  bindPythonError,
  createShell,
  debounce,
  drawYAxis,
  formatNumber,
  h,
  linearScale,
  listen,
  listenDom,
  niceTicks,
  readArray,
  seriesColor,
  showError,
  svg,
} from "./_runtime.js";

/**
 * @typedef {import("./_runtime.js").WidgetModel} WidgetModel
 * @typedef {import("./_runtime.js").Shell} Shell
 */

/**
 * One curve of a chart.
 * @typedef {object} Series
 * @property {string} name
 * @property {Array<[number, number]>} points
 * @property {string} color
 * @property {boolean} [markers]
 * @property {boolean} [faint]
 */

const WIDTH = 520;
const HEIGHT = 260;
const MARGIN = { top: 28, right: 12, bottom: 48, left: 56 };

const MONITOR_CSS = `
.rw-training-monitor .rw-charts { display: flex; flex-wrap: wrap; gap: 12px; }
.rw-training-monitor .rw-chart { flex: 1 1 300px; min-width: 260px; max-width: 640px; }
.rw-training-monitor .rw-summary { margin: 6px 0 0; }
.rw-training-monitor .rw-status { font-weight: 600; }
`;

/**
 * Return the points (x, y) of one history column against the epoch column, skipping NaN.
 * @param {{data: ArrayLike<number>, shape: number[]}} history
 * @param {number} xColumn
 * @param {number} yColumn
 * @returns {Array<[number, number]>}
 */
function columnPoints(history, xColumn, yColumn) {
  const [rows, width] = history.shape;
  /** @type {Array<[number, number]>} */
  const points = [];
  for (let row = 0; row < rows; row += 1) {
    const x = history.data[row * width + xColumn];
    const y = history.data[row * width + yColumn];
    if (Number.isFinite(x) && Number.isFinite(y)) {
      points.push([x, y]);
    }
  }
  return points;
}

/**
 * Smooth a curve with a debiased exponential moving average.
 * @param {Array<[number, number]>} points
 * @param {number} factor weight of the past, in [0, 1)
 * @returns {Array<[number, number]>}
 */
function smooth(points, factor) {
  if (factor <= 0) {
    return points;
  }
  let average = 0;
  let weight = 0;
  return points.map(([x, y]) => {
    average = factor * average + (1 - factor) * y;
    weight = factor * weight + (1 - factor);
    return /** @type {[number, number]} */ ([x, average / weight]);
  });
}

/**
 * Draw a line chart into a fresh SVG element and return it.
 * @param {string} title
 * @param {Series[]} series
 * @param {number | null} bestEpoch
 * @param {string} testId
 * @returns {SVGElement}
 */
function lineChart(title, series, bestEpoch, testId) {
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: "img",
    "aria-label": title,
    "data-testid": testId,
  });
  chart.append(svg("text", { x: MARGIN.left, y: 14, "font-weight": 600 }, title));

  const all = series.flatMap((item) => item.points);
  if (all.length === 0) {
    chart.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", "data-testid": "chart-empty" }, "Waiting for the first epoch\u2026"));
    return chart;
  }

  const xs = all.map((point) => point[0]);
  const ys = all.map((point) => point[1]);
  const xMax = Math.max(1, ...xs, bestEpoch ?? 0);
  let yLow = Math.min(...ys);
  let yHigh = Math.max(...ys);
  if (yLow === yHigh) {
    yLow -= Math.abs(yLow) * 0.1 || 0.5;
    yHigh += Math.abs(yHigh) * 0.1 || 0.5;
  }
  const padding = (yHigh - yLow) * 0.06;
  const yTicks = niceTicks(yLow - padding, yHigh + padding, 4);
  const yDomain = /** @type {[number, number]} */ ([Math.min(yLow - padding, ...yTicks), Math.max(yHigh + padding, ...yTicks)]);
  const x = linearScale([0, xMax], [MARGIN.left, WIDTH - MARGIN.right]);
  const y = linearScale(yDomain, [HEIGHT - MARGIN.bottom, MARGIN.top]);

  drawYAxis(chart, yTicks, y, MARGIN.left, WIDTH - MARGIN.right);
  const xAxis = svg("g", { class: "rw-axis" });
  for (const tick of niceTicks(0, xMax, 6).filter((value) => Number.isInteger(value))) {
    xAxis.append(svg("text", { x: x(tick), y: HEIGHT - MARGIN.bottom + 14, "text-anchor": "middle" }, String(tick)));
  }
  xAxis.append(svg("text", { x: WIDTH - MARGIN.right, y: HEIGHT - MARGIN.bottom + 28, "text-anchor": "end" }, "epoch"));
  chart.append(xAxis);

  if (bestEpoch !== null) {
    const marker = svg("line", {
      x1: x(bestEpoch),
      x2: x(bestEpoch),
      y1: MARGIN.top,
      y2: HEIGHT - MARGIN.bottom,
      stroke: "var(--rw-accent)",
      "stroke-dasharray": "4 3",
      "stroke-width": 1.5,
      "data-testid": "best-epoch-marker",
      "data-epoch": bestEpoch,
    });
    marker.append(svg("title", {}, `best epoch ${bestEpoch}`));
    chart.append(marker, svg("text", { x: x(bestEpoch), y: MARGIN.top - 4, "text-anchor": "middle" }, `best ${bestEpoch}`));
  }

  series.forEach((item, index) => {
    if (item.points.length === 0) {
      return;
    }
    const path = item.points.map(([px, py]) => `${x(px).toFixed(2)},${y(py).toFixed(2)}`).join(" ");
    const line = svg("polyline", {
      points: path,
      fill: "none",
      stroke: item.color,
      "stroke-width": item.faint ? 1 : 2,
      "stroke-opacity": item.faint ? 0.45 : 1,
      "data-testid": "curve",
      "data-series": item.name,
    });
    line.append(svg("title", {}, item.name));
    chart.append(line);
    if (item.markers) {
      for (const [px, py] of item.points) {
        const dot = svg("circle", { cx: x(px), cy: y(py), r: px === bestEpoch ? 4.5 : 2.5, fill: item.color, "data-testid": "point" });
        dot.append(svg("title", {}, `${item.name} at epoch ${px}: ${formatNumber(py)}`));
        chart.append(dot);
      }
    }
    const legendX = MARGIN.left + index * 140;
    chart.append(
      svg("rect", { x: legendX, y: HEIGHT - 10, width: 12, height: 3, fill: item.color }),
      svg("text", { x: legendX + 16, y: HEIGHT - 5 }, item.name),
    );
  });
  return chart;
}

/**
 * Return the validation columns to draw: `validation_columns` when set, else the
 * monitored metric and the HR column at the same cutoff (other metrics, such as ARP,
 * have scales that would flatten these curves).
 * @param {WidgetModel} model
 * @param {string[]} columns
 * @returns {string[]}
 */
function shownValidationColumns(model, columns) {
  const chosen = /** @type {string[]} */ (model.get("validation_columns") || []);
  if (chosen.length > 0) {
    return chosen.filter((name) => columns.includes(name));
  }
  const monitored = String(model.get("monitor_metric") || "val_NDCG@10");
  const cutoff = monitored.includes("@") ? monitored.slice(monitored.indexOf("@")) : "@10";
  return [monitored, `val_HR${cutoff}`].filter((name) => columns.includes(name));
}

/**
 * Return the status line for the current model state.
 * @param {WidgetModel} model
 * @param {number} epochsDone
 * @returns {string}
 */
function statusText(model, epochsDone) {
  const status = model.get("status");
  if (status === "finished") {
    return "Finished";
  }
  if (status === "failed") {
    return "Failed";
  }
  if (status === "waiting") {
    return "Waiting for training to start";
  }
  const progress = model.get("progress") || {};
  const total = model.get("total_epochs");
  const epoch = progress.epoch ?? epochsDone;
  let text = `Training: epoch ${epoch}${total ? ` of ${total}` : ""}`;
  if (progress.batch) {
    text += `, step ${progress.batch}${progress.n_batches ? ` of ${progress.n_batches}` : ""}`;
  }
  if (Number.isFinite(progress.loss)) {
    text += `, loss ${formatNumber(progress.loss)}`;
  }
  return text;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-training-monitor", "training-monitor");
  shell.root.append(h("style", {}, MONITOR_CSS));

  const status = h("span", { class: "rw-status", "data-testid": "training-monitor-status" });
  const smoothing = h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    "data-testid": "training-monitor-smoothing",
    "aria-label": "Smoothing of the per-step loss",
  });
  const smoothingValue = h("span", { class: "rw-muted" });
  const toggles = h("div", { class: "rw-toolbar", "data-testid": "training-monitor-series" });
  const toolbar = h("div", { class: "rw-toolbar" });
  const smoothingLabel = h("label", {}, "Step-loss smoothing ");
  smoothingLabel.append(smoothing, smoothingValue);
  toolbar.append(status, smoothingLabel);
  const lossBox = h("div", { class: "rw-chart", "data-testid": "training-monitor-loss" });
  const validationBox = h("div", { class: "rw-chart", "data-testid": "training-monitor-validation" });
  const charts = h("div", { class: "rw-charts" });
  charts.append(lossBox, validationBox);
  const summary = h("p", { class: "rw-summary", "data-testid": "training-monitor-summary" });
  shell.body.append(toolbar, charts, toggles, summary);

  /** @type {number | null} */
  let localSmoothing = null;

  const draw = () => {
    const history = readArray(model.get("history"));
    const columns = /** @type {string[]} */ (model.get("columns") || []);
    const batches = readArray(model.get("batch_loss"));
    const bestRaw = model.get("best_epoch");
    const bestEpoch = typeof bestRaw === "number" && bestRaw > 0 ? bestRaw : null;
    const factor = localSmoothing ?? Number(model.get("smoothing") ?? 0);
    smoothing.value = String(factor);
    smoothingValue.textContent = factor.toFixed(2);

    /** @type {Series[]} */
    const lossSeries = [];
    if (batches !== null && batches.shape[0] > 0) {
      /** @type {Array<[number, number]>} */
      const steps = [];
      for (let row = 0; row < batches.shape[0]; row += 1) {
        steps.push([batches.data[row * 2], batches.data[row * 2 + 1]]);
      }
      lossSeries.push({ name: "step loss", points: smooth(steps, factor), color: seriesColor(1), faint: true });
    }
    /** @type {Series[]} */
    const validationSeries = [];
    let epochsDone = 0;
    const epochColumn = columns.indexOf("epoch");
    if (history !== null && epochColumn >= 0) {
      epochsDone = history.shape[0];
      const lossColumn = columns.indexOf("train_loss");
      if (lossColumn >= 0) {
        lossSeries.push({ name: "train_loss", points: columnPoints(history, epochColumn, lossColumn), color: seriesColor(0), markers: true });
      }
      const shown = shownValidationColumns(model, columns);
      columns.forEach((name, column) => {
        if (shown.includes(name)) {
          validationSeries.push({ name, points: columnPoints(history, epochColumn, column), color: seriesColor(validationSeries.length), markers: true });
        }
      });
      drawToggles(columns.filter((name) => name.startsWith("val_")), shown);
    }

    lossBox.replaceChildren(lineChart("Training loss", lossSeries, bestEpoch, "training-monitor-loss-chart"));
    validationBox.replaceChildren(lineChart("Validation", validationSeries, bestEpoch, "training-monitor-validation-chart"));
    status.textContent = statusText(model, epochsDone);
    summary.textContent = model.get("summary") || "";
  };

  let toggleScope = new AbortController();
  cleanups.push(() => toggleScope.abort());
  /**
   * Draw one checkbox per validation column; a change sets `validation_columns`.
   * @param {string[]} available
   * @param {string[]} shown
   */
  const drawToggles = (available, shown) => {
    // A redraw replaces the checkboxes, so the listeners of the old ones go with them.
    toggleScope.abort();
    toggleScope = new AbortController();
    const signal = toggleScope.signal;
    toggles.replaceChildren(h("span", { class: "rw-muted" }, "Validation curves:"));
    for (const name of available) {
      const box = h("input", { type: "checkbox", "data-testid": "training-monitor-series-toggle", "data-series": name });
      box.checked = shown.includes(name);
      box.addEventListener("change", () => {
        const next = available.filter((column) => (column === name ? box.checked : shown.includes(column)));
        model.set("validation_columns", next);
        model.save_changes();
      }, { signal });
      const label = h("label", {});
      label.append(box, document.createTextNode(name));
      toggles.append(label);
    }
  };

  // The slider redraws at once; the trait update waits until the slider rests.
  const saveSmoothing = debounce(
    /** @param {number} value */ (value) => {
      localSmoothing = null;
      model.set("smoothing", value);
      model.save_changes();
    },
    200,
  );
  cleanups.push(() => saveSmoothing.cancel());
  listenDom(
    smoothing,
    "input",
    () => {
      localSmoothing = Number(smoothing.value);
      draw();
      saveSmoothing(localSmoothing);
    },
    cleanups,
    shell,
  );

  for (const name of ["history", "columns", "batch_loss", "best_epoch", "status", "progress", "total_epochs", "summary", "smoothing", "validation_columns", "monitor_metric"]) {
    listen(model, `change:${name}`, draw, cleanups, shell);
  }
  bindPythonError(model, shell, cleanups);

  try {
    draw();
  } catch (error) {
    showError(shell, error);
  }

  return () => {
    for (const cleanup of cleanups.splice(0)) {
      cleanup();
    }
  };
}

export default { render };
