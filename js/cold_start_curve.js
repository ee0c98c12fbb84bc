// ColdStartCurve front end: a metric against the number of revealed interactions n, one
// line with a confidence band per strategy, a per-segment toggle, a click on a point that
// lists the users behind it, and exposure of items with few training interactions.
//
// Every estimate and every per-user value arrives precomputed in binary arrays, so metric,
// segment and point switches redraw locally and keep working in the offline export.

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
 * @typedef {import("./_runtime.js").DecodedArray} DecodedArray
 */

/**
 * A breakdown of the cold users, such as gender.
 * @typedef {object} SegmentGroup
 * @property {string} key value of the `segment_by` trait; "" for all cold users
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
const CHART_HEIGHT = 300;
const CHART_MARGIN = { top: 30, right: 16, bottom: 62, left: 56 };
const POINT_RADIUS = 5;
const MAX_LISTED_USERS = 100;

const CURVE_CSS = `
.rw-cold-start h4 { margin: 10px 0 2px; font-size: 1em; }
.rw-cold-start .rw-ci { color: var(--rw-fg2); font-size: 0.92em; }
.rw-cold-start .rw-note { color: var(--rw-fg2); margin: 2px 0; }
.rw-cold-start circle.rw-point { cursor: pointer; stroke: var(--rw-bg); stroke-width: 1.5; }
.rw-cold-start circle.rw-point:hover, .rw-cold-start circle.rw-point:focus { stroke: var(--rw-fg); }
.rw-cold-start circle.rw-point[aria-selected="true"] { stroke: var(--rw-accent); stroke-width: 3; }
.rw-cold-start ol.rw-users { columns: 4 12em; margin: 4px 0; padding-left: 2.2em; }
.rw-cold-start details summary { cursor: pointer; color: var(--rw-fg2); margin-top: 6px; }
`;

/**
 * Return the estimate at one cell of the `values` array.
 * @param {DecodedArray} values shape (n_strategies, n_ns, n_metrics, n_rows, 3)
 * @param {number} strategy
 * @param {number} nIndex
 * @param {number} metric
 * @param {number} row
 * @returns {Estimate}
 */
function estimate(values, strategy, nIndex, metric, row) {
  const offset = flatIndex(values.shape, [strategy, nIndex, metric, row, 0]);
  return { value: values.data[offset], low: values.data[offset + 1], high: values.data[offset + 2] };
}

/**
 * Append "0.1234 [0.1100, 0.1350]" to a table cell.
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
 * Return the path through the finite points, "M x,y L x,y ..."; empty without points.
 * @param {Array<[number, number]>} points
 * @returns {string}
 */
function polyline(points) {
  return points.map(([x, y], index) => `${index === 0 ? "M" : "L"}${x.toFixed(2)},${y.toFixed(2)}`).join("");
}

/**
 * Create a labelled <select>.
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
 * Replace the options of a <select>, keeping the element and its listeners.
 * @param {HTMLSelectElement} select
 * @param {Array<[string, string]>} options
 * @param {string} value
 */
function setOptions(select, options, value) {
  select.replaceChildren(...options.map(([optionValue, text]) => h("option", { value: optionValue }, text)));
  select.value = value;
}

/**
 * Draw the curves with confidence bands and clickable points.
 * @param {object} spec
 * @param {string[]} spec.strategies
 * @param {number[]} spec.ns
 * @param {(strategy: number, nIndex: number) => Estimate} spec.valueAt
 * @param {string} spec.title
 * @param {string} spec.selectedStrategy
 * @param {number} spec.selectedN
 * @param {(strategy: string, n: number) => void} spec.onSelect
 * @returns {SVGElement}
 */
function curveChart({ strategies, ns, valueAt, title, selectedStrategy, selectedN, onSelect }) {
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    role: "img",
    "aria-label": title,
    "data-testid": "coldstart-chart",
  });
  chart.append(svg("text", { x: CHART_MARGIN.left, y: 14, "font-weight": 600 }, title));

  let top = 0;
  strategies.forEach((_, strategy) => {
    ns.forEach((__, nIndex) => {
      const item = valueAt(strategy, nIndex);
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
  const ticks = niceTicks(0, top * 1.08, 5);
  const plotBottom = CHART_HEIGHT - CHART_MARGIN.bottom;
  const y = linearScale([0, Math.max(top * 1.08, ...ticks)], [plotBottom, CHART_MARGIN.top]);
  drawYAxis(chart, ticks, y, CHART_MARGIN.left, CHART_WIDTH - CHART_MARGIN.right);

  // The n values are few and uneven (1, 2, 3, 5, 10, 20), so they sit at even steps.
  const plotWidth = CHART_WIDTH - CHART_MARGIN.left - CHART_MARGIN.right;
  const step = plotWidth / Math.max(ns.length, 1);
  /** @param {number} nIndex */
  const x = (nIndex) => CHART_MARGIN.left + step * (nIndex + 0.5);
  ns.forEach((n, nIndex) => {
    chart.append(svg("text", { x: x(nIndex), y: plotBottom + 16, "text-anchor": "middle", "data-testid": "coldstart-x-tick" }, String(n)));
  });
  chart.append(svg("text", { x: CHART_MARGIN.left + plotWidth / 2, y: plotBottom + 32, "text-anchor": "middle" }, "revealed interactions n"));

  // Bands and lines of every strategy go below all points, so no band covers a point.
  // They also let pointer events through, so every point stays clickable.
  const bands = svg("g", { "pointer-events": "none" });
  const lines = svg("g", { "pointer-events": "none" });
  const points = svg("g");
  chart.append(bands, lines, points);
  strategies.forEach((name, strategy) => {
    const color = seriesColor(strategy);
    /** @type {Array<[number, number]>} */
    const upper = [];
    /** @type {Array<[number, number]>} */
    const lower = [];
    /** @type {Array<[number, number]>} */
    const middle = [];
    ns.forEach((_, nIndex) => {
      const item = valueAt(strategy, nIndex);
      if (!Number.isFinite(item.value)) {
        return;
      }
      middle.push([x(nIndex), y(item.value)]);
      if (Number.isFinite(item.low) && Number.isFinite(item.high)) {
        upper.push([x(nIndex), y(item.high)]);
        lower.push([x(nIndex), y(item.low)]);
      }
    });
    if (upper.length > 0) {
      const band = `${polyline(upper)}${polyline(lower.slice().reverse()).replace(/^M/, "L")}Z`;
      bands.append(svg("path", { d: band, fill: color, "fill-opacity": 0.15, stroke: "none", "data-testid": "coldstart-band", "data-strategy": name }));
    }
    if (middle.length > 0) {
      lines.append(svg("path", { d: polyline(middle), fill: "none", stroke: color, "stroke-width": 2, "data-testid": "coldstart-line", "data-strategy": name }));
    }
    ns.forEach((n, nIndex) => {
      const item = valueAt(strategy, nIndex);
      if (!Number.isFinite(item.value)) {
        return;
      }
      const selected = name === selectedStrategy && n === selectedN;
      const point = svg("circle", {
        class: "rw-point",
        cx: x(nIndex),
        cy: y(item.value),
        r: POINT_RADIUS,
        fill: color,
        tabindex: 0,
        role: "button",
        "aria-selected": String(selected),
        "data-testid": "coldstart-point",
        "data-strategy": name,
        "data-n": n,
        "data-value": item.value,
      });
      const interval = Number.isFinite(item.low) ? ` [${formatNumber(item.low)}, ${formatNumber(item.high)}]` : "";
      point.append(svg("title", {}, `${name}, n = ${n}: ${formatNumber(item.value)}${interval}`));
      point.addEventListener("click", () => onSelect(name, n));
      point.addEventListener("keydown", (event) => {
        const key = /** @type {KeyboardEvent} */ (event).key;
        if (key === "Enter" || key === " ") {
          event.preventDefault();
          onSelect(name, n);
        }
      });
      points.append(point);
    });
  });

  strategies.forEach((name, strategy) => {
    const left = CHART_MARGIN.left + strategy * 110;
    chart.append(
      svg("rect", { x: left, y: CHART_HEIGHT - 14, width: 10, height: 10, fill: seriesColor(strategy) }),
      svg("text", { x: left + 14, y: CHART_HEIGHT - 5, "data-testid": "coldstart-legend" }, name),
    );
  });
  return chart;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-cold-start", "cold-start-curve");
  shell.root.append(h("style", {}, CURVE_CSS));

  const metricControl = labelledSelect("Metric", "coldstart-metric");
  const breakdownControl = labelledSelect("Breakdown", "coldstart-segment-by");
  const segmentControl = labelledSelect("Segment", "coldstart-segment");
  const toolbar = h("div", { class: "rw-toolbar" });
  toolbar.append(metricControl.label, breakdownControl.label, segmentControl.label);

  const chartBox = h("div", { class: "rw-chart" });
  const hint = h("p", { class: "rw-muted", "data-testid": "coldstart-hint" });
  const usersBox = h("div", { "data-testid": "coldstart-users" });
  const tableTitle = h("h4", { "data-testid": "coldstart-table-title" });
  const table = h("table", { "data-testid": "coldstart-table" });
  const itemsBox = h("div", { "data-testid": "coldstart-items" });
  const notes = h("div", { "data-testid": "coldstart-notes" });
  const card = h("details", { "data-testid": "coldstart-card" });
  shell.body.append(toolbar, chartBox, hint, usersBox, tableTitle, table, itemsBox, notes, card);

  /** @param {Record<string, any>} changes */
  const update = (changes) => {
    for (const [name, value] of Object.entries(changes)) {
      model.set(name, value);
    }
    model.save_changes();
  };

  /** @param {string} strategy @param {number} n */
  const selectPoint = (strategy, n) => {
    const same = model.get("selected_strategy") === strategy && Number(model.get("selected_n")) === n;
    update(same ? { selected_strategy: "", selected_n: -1 } : { selected_strategy: strategy, selected_n: n });
  };

  const draw = () => {
    const strategies = /** @type {string[]} */ (model.get("strategies") || []);
    const ns = /** @type {number[]} */ (model.get("ns") || []);
    const metrics = /** @type {string[]} */ (model.get("metric_names") || []);
    const groups = /** @type {SegmentGroup[]} */ (model.get("segment_groups") || []);
    const values = readArray(model.get("values"));
    const counts = readArray(model.get("counts"));
    const skipped = readArray(model.get("skipped"));
    const metric = String(model.get("metric") || metrics[0] || "");
    const segmentBy = String(model.get("segment_by") || "");
    const groupIndex = Math.max(0, groups.findIndex((group) => group.key === segmentBy));
    const group = groups[groupIndex];
    const segment = String(model.get("segment") || (group ? group.segments[0] : ""));
    const selectedStrategy = String(model.get("selected_strategy") || "");
    const selectedN = Number(model.get("selected_n"));

    setOptions(metricControl.select, metrics.map((name) => [name, name]), metric);
    setOptions(breakdownControl.select, groups.map((item) => [item.key, item.label]), segmentBy);
    setOptions(segmentControl.select, (group ? group.segments : []).map((label) => [label, label]), segment);
    // The theme sets labels to inline-flex, which overrides the hidden attribute.
    segmentControl.label.style.display = segmentBy ? "" : "none";

    if (values === null || strategies.length === 0 || group === undefined) {
      chartBox.replaceChildren(h("p", {}, "No cold-start results."));
      return;
    }
    const metricIndex = Math.max(0, metrics.indexOf(metric));

    // Rows of `values`: the segments of every group, in group order.
    let row = 0;
    for (let index = 0; index < groupIndex; index += 1) {
      row += groups[index].segments.length;
    }
    row += Math.max(0, group.segments.indexOf(segment));
    const where = segmentBy ? `${group.label.toLowerCase()} ${segment}` : "all cold users";

    chartBox.replaceChildren(
      curveChart({
        strategies,
        ns,
        valueAt: (strategy, nIndex) => estimate(values, strategy, nIndex, metricIndex, row),
        title: `${metric} against revealed interactions, ${where} (bands: confidence intervals)`,
        selectedStrategy,
        selectedN,
        onSelect: selectPoint,
      }),
    );
    hint.textContent = "Click a point to list the users behind it.";

    drawUsers({ strategies, ns, metrics, metric, metricIndex, groupIndex, row, where, selectedStrategy, selectedN });

    tableTitle.textContent = `${metric} by revealed interactions n, ${where}`;
    const head = h("tr");
    head.append(h("th", {}, "n"), h("th", {}, "Users"), h("th", {}, "Left out"), ...strategies.map((name) => h("th", { "data-strategy": name }, name)));
    const body = ns.map((n, nIndex) => {
      const tableRow = h("tr", { "data-testid": "coldstart-row", "data-n": String(n) });
      const userCount = counts === null ? NaN : counts.data[flatIndex(counts.shape, [nIndex, row])];
      const leftOut = skipped === null ? NaN : skipped.data[nIndex];
      tableRow.append(
        h("td", { class: "rw-num" }, String(n)),
        h("td", { class: "rw-num" }, Number.isFinite(userCount) ? String(userCount) : "\u2013"),
        h("td", { class: "rw-num" }, Number.isFinite(leftOut) ? String(leftOut) : "\u2013"),
      );
      strategies.forEach((name, strategy) => {
        const cell = h("td", { class: "rw-num", "data-testid": "coldstart-cell", "data-strategy": name, "data-n": String(n) });
        fillEstimateCell(cell, estimate(values, strategy, nIndex, metricIndex, row));
        tableRow.append(cell);
      });
      return tableRow;
    });
    table.replaceChildren(h("thead"), h("tbody"));
    /** @type {HTMLElement} */ (table.firstChild).append(head);
    /** @type {HTMLElement} */ (table.lastChild).append(...body);

    drawItems(strategies, ns, selectedN);

    notes.replaceChildren(...(/** @type {string[]} */ (model.get("notes") || [])).map((text) => h("p", { class: "rw-note" }, text)));
    const cardRows = /** @type {Array<[string, string]>} */ (model.get("card_rows") || []);
    card.replaceChildren(h("summary", {}, "Protocol card"));
    const cardTable = h("table");
    for (const [label, text] of cardRows) {
      const cardRow = h("tr", { "data-testid": "card-row" });
      cardRow.append(h("th", {}, label), h("td", {}, text));
      cardTable.append(cardRow);
    }
    card.append(cardTable);
  };

  /**
   * List the users behind the selected point, worst value first.
   * @param {{strategies: string[], ns: number[], metrics: string[], metric: string, metricIndex: number, groupIndex: number, row: number, where: string, selectedStrategy: string, selectedN: number}} view
   */
  const drawUsers = ({ strategies, ns, metrics, metric, metricIndex, groupIndex, row, where, selectedStrategy, selectedN }) => {
    usersBox.replaceChildren();
    const strategy = strategies.indexOf(selectedStrategy);
    const nIndex = ns.indexOf(selectedN);
    const userIds = readArray(model.get("user_ids"));
    const userRows = readArray(model.get("user_rows"));
    const userValues = readArray(model.get("user_values"));
    if (strategy < 0 || nIndex < 0 || userIds === null || userRows === null || userValues === null || metrics.length === 0) {
      return;
    }
    /** @type {Array<[number, number]>} */
    const listed = [];
    for (let index = 0; index < userIds.data.length; index += 1) {
      if (userRows.data[flatIndex(userRows.shape, [groupIndex, index])] !== row) {
        continue;
      }
      const value = userValues.data[flatIndex(userValues.shape, [strategy, nIndex, metricIndex, index])];
      if (Number.isFinite(value)) {
        listed.push([userIds.data[index], value]);
      }
    }
    listed.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    const origin = hasKernel(model) ? "their ids are in widget.selected_users in Python" : "no kernel: the list below is all there is";
    usersBox.append(
      h(
        "h4",
        { "data-testid": "coldstart-selection" },
        `${selectedStrategy} at n = ${selectedN}, ${where}: ${listed.length} users, worst ${metric} first (${origin})`,
      ),
    );
    const list = h("ol", { class: "rw-users" });
    for (const [user, value] of listed.slice(0, MAX_LISTED_USERS)) {
      list.append(h("li", { "data-testid": "coldstart-user", "data-user": String(user) }, `user ${user}: ${formatNumber(value)}`));
    }
    usersBox.append(list);
    if (listed.length > MAX_LISTED_USERS) {
      usersBox.append(h("p", { class: "rw-muted" }, `\u2026 and ${listed.length - MAX_LISTED_USERS} more.`));
    }
  };

  /**
   * Draw exposure and hit rate of items by training count, at the selected n (else the largest).
   * @param {string[]} strategies
   * @param {number[]} ns
   * @param {number} selectedN
   */
  const drawItems = (strategies, ns, selectedN) => {
    itemsBox.replaceChildren();
    const buckets = /** @type {string[]} */ (model.get("item_buckets") || []);
    const itemValues = readArray(model.get("item_values"));
    const itemCounts = readArray(model.get("item_counts"));
    if (itemValues === null || buckets.length === 0 || ns.length === 0) {
      return;
    }
    const nIndex = ns.indexOf(selectedN) >= 0 ? ns.indexOf(selectedN) : ns.length - 1;
    const k = Number(model.get("item_k"));
    itemsBox.append(
      h("h4", {}, `Items by number of training interactions at n = ${ns[nIndex]}: share of top-${k} slots / HR@${k} of their targets`),
    );
    const itemTable = h("table", { "data-testid": "coldstart-items-table" });
    const head = h("tr");
    head.append(h("th", {}, "Training interactions"), h("th", {}, "Items"), h("th", {}, "Targets"), ...strategies.map((name) => h("th", {}, name)));
    itemTable.append(head);
    buckets.forEach((label, bucket) => {
      const itemRow = h("tr", { "data-testid": "coldstart-item-row", "data-bucket": label });
      const targets = itemValues.data[flatIndex(itemValues.shape, [0, nIndex, bucket, 2])];
      itemRow.append(
        h("td", {}, label),
        h("td", { class: "rw-num" }, itemCounts === null ? "\u2013" : String(itemCounts.data[bucket])),
        h("td", { class: "rw-num" }, Number.isFinite(targets) ? String(targets) : "\u2013"),
      );
      strategies.forEach((_, strategy) => {
        const offset = flatIndex(itemValues.shape, [strategy, nIndex, bucket, 0]);
        itemRow.append(h("td", { class: "rw-num" }, `${formatNumber(itemValues.data[offset])} / ${formatNumber(itemValues.data[offset + 1])}`));
      });
      itemTable.append(itemRow);
    });
    itemsBox.append(itemTable);
  };

  listenDom(metricControl.select, "change", () => update({ metric: metricControl.select.value }), cleanups, shell);
  listenDom(
    breakdownControl.select,
    "change",
    () => {
      // Read the choice first: each set redraws, which resets the <select>.
      const choice = breakdownControl.select.value;
      const groups = /** @type {SegmentGroup[]} */ (model.get("segment_groups") || []);
      const group = groups.find((item) => item.key === choice);
      update({ segment_by: choice, segment: group ? group.segments[0] : "" });
    },
    cleanups,
    shell,
  );
  listenDom(segmentControl.select, "change", () => update({ segment: segmentControl.select.value }), cleanups, shell);

  for (const name of [
    "strategies",
    "ns",
    "metric_names",
    "metric",
    "segment_groups",
    "segment_by",
    "segment",
    "values",
    "counts",
    "skipped",
    "user_values",
    "item_values",
    "selected_strategy",
    "selected_n",
    "notes",
    "card_rows",
  ]) {
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
