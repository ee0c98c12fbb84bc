// MetricPanel front end: metrics with confidence intervals for several models side by side,
// a k selector, a per-segment breakdown and an SVG bar chart with error bars.
//
// Every (model, metric, k, segment) value arrives precomputed in one binary array, so k,
// breakdown and segment switches redraw locally and keep working in the offline export.

import {
  bindPythonError,
  createShell,
  drawYAxis,
  flatIndex,
  formatNumber,
  h,
  hasKernel,
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
 * @typedef {import("./_runtime.js").DecodedArray} DecodedArray
 */

/**
 * A breakdown of the evaluated users, such as activity quartiles.
 * @typedef {object} SegmentGroup
 * @property {string} key value of the `segment_by` trait; "" for all users
 * @property {string} label
 * @property {string[]} segments
 */

/**
 * One value with its confidence interval.
 * @typedef {object} Estimate
 * @property {number} value
 * @property {number} low
 * @property {number} high
 */

const CHART_WIDTH = 640;
const CHART_HEIGHT = 260;
const CHART_MARGIN = { top: 30, right: 12, bottom: 40, left: 56 };

const PANEL_CSS = `
.rw-metric-panel h4 { margin: 10px 0 2px; font-size: 1em; }
.rw-metric-panel tr[data-testid="segment-row"] { cursor: pointer; }
.rw-metric-panel tr[data-testid="segment-row"]:hover { background: var(--rw-bg2); }
.rw-metric-panel tr[aria-selected="true"] { background: var(--rw-bg2); outline: 2px solid var(--rw-accent); outline-offset: -2px; }
.rw-metric-panel .rw-ci { color: var(--rw-fg2); font-size: 0.92em; }
.rw-metric-panel .rw-differs td, .rw-metric-panel .rw-note { color: var(--rw-warn); }
.rw-metric-panel details summary { cursor: pointer; color: var(--rw-fg2); margin-top: 6px; }
.rw-metric-panel .rw-bar-group { cursor: pointer; }
.rw-metric-panel .rw-bar-group[aria-selected="true"] rect.rw-band { fill: var(--rw-bg2); stroke: var(--rw-accent); }
`;

/**
 * Return the estimate for one cell of the `values` array; NaN parts stay NaN.
 * @param {DecodedArray} values shape (n_models, n_metrics, n_ks, n_rows, 3)
 * @param {number} modelIndex
 * @param {number} metricIndex
 * @param {number} kIndex
 * @param {number} row
 * @returns {Estimate}
 */
function estimate(values, modelIndex, metricIndex, kIndex, row) {
  const offset = flatIndex(values.shape, [modelIndex, metricIndex, kIndex, row, 0]);
  return { value: values.data[offset], low: values.data[offset + 1], high: values.data[offset + 2] };
}

/**
 * Return "0.1234 [0.1100, 0.1350]" parts for a table cell.
 * @param {HTMLTableCellElement} cell
 * @param {Estimate} item
 */
function fillEstimateCell(cell, item) {
  cell.append(document.createTextNode(formatNumber(item.value)));
  if (Number.isFinite(item.low) && Number.isFinite(item.high)) {
    cell.append(h("span", { class: "rw-ci" }, ` [${formatNumber(item.low)}, ${formatNumber(item.high)}]`));
  }
}

/**
 * Draw grouped bars with error bars.
 * @param {string[]} groups labels along the x axis
 * @param {string[]} models one bar per model in each group
 * @param {(group: number, model: number) => Estimate} valueAt
 * @param {string} title
 * @param {string | null} selected label of the highlighted group
 * @param {((group: string) => void) | null} onSelect
 * @param {AbortSignal} signal removes the click listeners when aborted
 * @returns {SVGElement}
 */
function barChart(groups, models, valueAt, title, selected, onSelect, signal) {
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    role: "img",
    "aria-label": title,
    "data-testid": "metric-panel-chart",
  });
  chart.append(svg("text", { x: CHART_MARGIN.left, y: 14, "font-weight": 600 }, title));

  let top = 0;
  groups.forEach((_, group) => {
    models.forEach((__, model) => {
      const item = valueAt(group, model);
      for (const candidate of [item.value, item.high]) {
        if (Number.isFinite(candidate)) {
          top = Math.max(top, candidate);
        }
      }
    });
  });
  if (top <= 0) {
    top = 1;
  }
  const ticks = niceTicks(0, top * 1.08, 4);
  const y = linearScale([0, Math.max(top * 1.08, ...ticks)], [CHART_HEIGHT - CHART_MARGIN.bottom, CHART_MARGIN.top]);
  drawYAxis(chart, ticks, y, CHART_MARGIN.left, CHART_WIDTH - CHART_MARGIN.right);

  const plotWidth = CHART_WIDTH - CHART_MARGIN.left - CHART_MARGIN.right;
  const groupWidth = plotWidth / Math.max(groups.length, 1);
  const barWidth = Math.max(4, (groupWidth * 0.8) / Math.max(models.length, 1));
  const baseline = y(0);

  groups.forEach((label, group) => {
    const left = CHART_MARGIN.left + group * groupWidth;
    const container = svg("g", { class: "rw-bar-group", "data-testid": "bar-group", "data-group": label });
    container.append(svg("rect", { class: "rw-band", x: left + 1, y: CHART_MARGIN.top, width: groupWidth - 2, height: baseline - CHART_MARGIN.top, fill: "transparent" }));
    if (onSelect !== null) {
      container.setAttribute("aria-selected", String(label === selected));
      container.addEventListener("click", () => onSelect(label), { signal });
    }
    models.forEach((name, model) => {
      const item = valueAt(group, model);
      const x = left + groupWidth * 0.1 + model * barWidth;
      if (!Number.isFinite(item.value)) {
        return;
      }
      const bar = svg("rect", {
        x,
        y: y(item.value),
        width: Math.max(barWidth - 2, 2),
        height: Math.max(baseline - y(item.value), 0.5),
        fill: seriesColor(model),
        "data-testid": "bar",
        "data-model": name,
        "data-group": label,
      });
      const interval = Number.isFinite(item.low) ? ` [${formatNumber(item.low)}, ${formatNumber(item.high)}]` : "";
      bar.append(svg("title", {}, `${name}, ${label}: ${formatNumber(item.value)}${interval}`));
      container.append(bar);
      if (Number.isFinite(item.low) && Number.isFinite(item.high)) {
        const middle = x + Math.max(barWidth - 2, 2) / 2;
        const cap = Math.min(6, barWidth / 3);
        container.append(
          svg("path", {
            d: `M${middle},${y(item.low)}V${y(item.high)}M${middle - cap},${y(item.low)}H${middle + cap}M${middle - cap},${y(item.high)}H${middle + cap}`,
            stroke: "var(--rw-fg)",
            "stroke-width": 1.2,
            fill: "none",
            "data-testid": "error-bar",
          }),
        );
      }
    });
    container.append(svg("text", { x: left + groupWidth / 2, y: CHART_HEIGHT - CHART_MARGIN.bottom + 15, "text-anchor": "middle" }, label));
    chart.append(container);
  });

  models.forEach((name, model) => {
    const x = CHART_MARGIN.left + model * 130;
    chart.append(
      svg("rect", { x, y: CHART_HEIGHT - 14, width: 10, height: 10, fill: seriesColor(model) }),
      svg("text", { x: x + 14, y: CHART_HEIGHT - 5 }, name),
    );
  });
  return chart;
}

/**
 * Create a labelled <select> whose options are (value, text) pairs.
 * @param {string} labelText
 * @param {string} testId
 * @returns {{label: HTMLLabelElement, select: HTMLSelectElement}}
 */
function labelledSelect(labelText, testId) {
  const label = h("label", {}, labelText);
  const select = h("select", { "data-testid": testId });
  label.append(select);
  return { label, select };
}

/**
 * Replace the options of a <select>, keeping the element (and its listeners).
 * @param {HTMLSelectElement} select
 * @param {Array<[string, string]>} options
 * @param {string} value
 */
function setOptions(select, options, value) {
  select.replaceChildren(...options.map(([optionValue, text]) => h("option", { value: optionValue }, text)));
  select.value = value;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-metric-panel", "metric-panel");
  shell.root.append(h("style", {}, PANEL_CSS));

  const kControl = labelledSelect("k", "metric-panel-k");
  const segmentControl = labelledSelect("Breakdown", "metric-panel-segment-by");
  const metricControl = labelledSelect("Chart metric", "metric-panel-metric");
  const toolbar = h("div", { class: "rw-toolbar" });
  toolbar.append(kControl.label, segmentControl.label, metricControl.label);

  const notes = h("div", { "data-testid": "metric-panel-notes" });
  const tableTitle = h("h4");
  const table = h("table", { "data-testid": "metric-panel-table" });
  const segmentsBox = h("div", { "data-testid": "metric-panel-segments" });
  const chartBox = h("div", { class: "rw-chart" });
  const selection = h("p", { class: "rw-muted", "data-testid": "metric-panel-selection" });
  const card = h("details", { "data-testid": "metric-panel-card", open: "" });
  shell.body.append(toolbar, notes, tableTitle, table, segmentsBox, chartBox, selection, card);

  /** @param {string} name @param {any} value */
  const update = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };

  /** @param {string} label */
  const selectSegment = (label) => {
    update("selected_segment", model.get("selected_segment") === label ? "" : label);
  };

  // Listeners of elements that a redraw replaces hang on this controller, so each redraw
  // and the cleanup remove them.
  let drawScope = new AbortController();
  cleanups.push(() => drawScope.abort());

  const draw = () => {
    drawScope.abort();
    drawScope = new AbortController();
    const signal = drawScope.signal;
    const models = /** @type {string[]} */ (model.get("model_names") || []);
    const metrics = /** @type {string[]} */ (model.get("metric_names") || []);
    const ks = /** @type {number[]} */ (model.get("ks") || []);
    const groups = /** @type {SegmentGroup[]} */ (model.get("segment_groups") || []);
    const values = readArray(model.get("values"));
    const counts = readArray(model.get("counts"));
    const k = Number(model.get("k"));
    const segmentBy = String(model.get("segment_by") || "");
    const chartMetric = String(model.get("chart_metric") || metrics[0] || "");
    const selected = String(model.get("selected_segment") || "");

    setOptions(kControl.select, ks.map((value) => [String(value), String(value)]), String(k));
    setOptions(segmentControl.select, groups.map((group) => [group.key, group.label]), segmentBy);
    setOptions(metricControl.select, metrics.map((name) => [name, name]), chartMetric);

    notes.replaceChildren(...(/** @type {string[]} */ (model.get("notes") || [])).map((text) => h("p", { class: "rw-note" }, text)));

    if (values === null || models.length === 0) {
      table.replaceChildren();
      tableTitle.textContent = "No evaluation results.";
      return;
    }
    const kIndex = Math.max(0, ks.indexOf(k));
    const metricIndex = Math.max(0, metrics.indexOf(chartMetric));

    // Rows of the `values` array: the segments of every group, in group order.
    /** @type {Map<string, number>} */
    const firstRow = new Map();
    let rowCount = 0;
    for (const group of groups) {
      firstRow.set(group.key, rowCount);
      rowCount += group.segments.length;
    }
    const overallRow = firstRow.get("") ?? 0;

    tableTitle.textContent = `Metrics at k = ${ks[kIndex]} for all evaluated users, with confidence intervals`;
    const head = h("tr");
    head.append(h("th", {}, "Metric"), ...models.map((name) => h("th", { "data-model": name }, name)));
    const rows = metrics.map((metric, index) => {
      const row = h("tr", { "data-metric": metric });
      row.append(h("td", {}, `${metric}@${ks[kIndex]}`));
      models.forEach((name, modelIndex) => {
        const cell = h("td", { class: "rw-num", "data-testid": "metric-cell", "data-model": name, "data-metric": metric });
        fillEstimateCell(cell, estimate(values, modelIndex, index, kIndex, overallRow));
        row.append(cell);
      });
      return row;
    });
    table.replaceChildren(h("thead"), h("tbody"));
    /** @type {HTMLElement} */ (table.firstChild).append(head);
    /** @type {HTMLElement} */ (table.lastChild).append(...rows);

    const group = groups.find((candidate) => candidate.key === segmentBy);
    segmentsBox.replaceChildren();
    segmentsBox.hidden = !segmentBy || group === undefined;
    let chart;
    if (segmentBy && group !== undefined) {
      const start = firstRow.get(group.key) ?? 0;
      segmentsBox.append(h("h4", {}, `${chartMetric}@${ks[kIndex]} by ${group.label.toLowerCase()} (click a row to select its users)`));
      const segmentTable = h("table");
      const segmentHead = h("tr");
      segmentHead.append(h("th", {}, group.label), h("th", {}, "Users"), ...models.map((name) => h("th", {}, name)));
      segmentTable.append(segmentHead);
      group.segments.forEach((label, offset) => {
        const row = h("tr", { "data-testid": "segment-row", "data-segment": label, tabindex: "0", "aria-selected": String(label === selected) });
        const userCount = counts === null ? NaN : counts.data[flatIndex(counts.shape, [0, start + offset])];
        row.append(h("td", {}, label), h("td", { class: "rw-num" }, Number.isFinite(userCount) ? String(userCount) : "\u2013"));
        models.forEach((_, modelIndex) => {
          const cell = h("td", { class: "rw-num" });
          fillEstimateCell(cell, estimate(values, modelIndex, metricIndex, kIndex, start + offset));
          row.append(cell);
        });
        row.addEventListener("click", () => selectSegment(label), { signal });
        row.addEventListener(
          "keydown",
          (event) => {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              selectSegment(label);
            }
          },
          { signal },
        );
        segmentTable.append(row);
      });
      segmentsBox.append(segmentTable);
      chart = barChart(
        group.segments,
        models,
        (segment, modelIndex) => estimate(values, modelIndex, metricIndex, kIndex, start + segment),
        `${chartMetric}@${ks[kIndex]} by ${group.label.toLowerCase()}`,
        selected,
        selectSegment,
        signal,
      );
    } else {
      // One metric across every k keeps the bars on one scale (ARP and Novelty are not in [0, 1]).
      const kLabels = ks.map((value) => `${chartMetric}@${value}`);
      chart = barChart(
        kLabels,
        models,
        (kPosition, modelIndex) => estimate(values, modelIndex, metricIndex, kPosition, overallRow),
        `${chartMetric} for all evaluated users (click a bar group to switch k)`,
        kLabels[kIndex],
        (label) => update("k", ks[kLabels.indexOf(label)]),
        signal,
      );
    }
    chartBox.replaceChildren(chart);

    const selectedOffset = group === undefined ? -1 : group.segments.indexOf(selected);
    if (selected && selectedOffset >= 0 && counts !== null) {
      // Models evaluated on one split share their users, so the largest count is the
      // size of the union that Python's panel.selected_users holds.
      const row = (firstRow.get(group === undefined ? "" : group.key) ?? 0) + selectedOffset;
      let count = 0;
      for (let modelIndex = 0; modelIndex < counts.shape[0]; modelIndex += 1) {
        count = Math.max(count, counts.data[flatIndex(counts.shape, [modelIndex, row])]);
      }
      const where = hasKernel(model)
        ? "their ids are in panel.selected_users in Python"
        : "their ids need a running kernel (panel.selected_users)";
      selection.textContent = `Selected segment "${selected}": ${count} users; ${where}.`;
    } else {
      selection.textContent = segmentBy ? "Click a segment to select its users." : "";
    }

    const cardRows = /** @type {Array<[string, string, boolean]>} */ (model.get("card_rows") || []);
    card.replaceChildren(h("summary", {}, "Protocol card"));
    const cardTable = h("table");
    for (const [label, text, differs] of cardRows) {
      const row = h("tr", { "data-testid": "card-row", class: differs ? "rw-differs" : "" });
      row.append(h("th", {}, label), h("td", {}, differs ? `${text} (differs between models)` : text));
      cardTable.append(row);
    }
    card.append(cardTable);
  };

  listenDom(kControl.select, "change", () => update("k", Number(kControl.select.value)), cleanups, shell);
  listenDom(
    segmentControl.select,
    "change",
    () => {
      // Read the choice first: clearing the selection redraws, which resets the <select>.
      const choice = segmentControl.select.value;
      model.set("selected_segment", "");
      update("segment_by", choice);
    },
    cleanups,
    shell,
  );
  listenDom(metricControl.select, "change", () => update("chart_metric", metricControl.select.value), cleanups, shell);

  for (const name of ["model_names", "metric_names", "ks", "segment_groups", "values", "counts", "k", "segment_by", "chart_metric", "selected_segment", "card_rows", "notes"]) {
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
