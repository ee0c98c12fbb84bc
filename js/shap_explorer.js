// ShapExplorer front end: Shapley values of one recommendation over the user's history.
// It draws an SVG waterfall (from the base value to the model's output) or bars in history
// order, with user, target and contrast pickers, the top-k list, and a summary over users.
//
// With a kernel, picking a target or a contrast sets a trait and Python computes the
// explanation. Users in `precomputed` carry explanations of their top targets, so the
// offline export switches users and targets locally and builds a contrast A - B as the
// difference of two stored explanations (Shapley values are linear in the output).

import {
  bindPythonError,
  createShell,
  formatNumber,
  h,
  hasKernel,
  linearScale,
  listen,
  listenDom,
  niceTicks,
  readArray,
  showError,
  svg,
} from "./_runtime.js";

/**
 * @typedef {import("./_runtime.js").WidgetModel} WidgetModel
 * @typedef {import("./_runtime.js").ArrayPayload} ArrayPayload
 */

/**
 * One recommended item.
 * @typedef {object} Recommendation
 * @property {number} item
 * @property {string} title
 * @property {string} genres
 * @property {number} score
 */

/**
 * An explanation as Python sends it (`result`, or one entry of a precomputed user).
 * @typedef {object} ExplanationPayload
 * @property {number} user
 * @property {number} target
 * @property {number} versus 0 without contrast
 * @property {string} label
 * @property {string} output
 * @property {string} absence
 * @property {string} method
 * @property {number} base_value
 * @property {number} explained_output
 * @property {number} n_evals
 * @property {number} max_standard_error
 * @property {boolean} converged
 * @property {ArrayPayload} items int32 (n,), oldest first
 * @property {ArrayPayload} positions int32 (n,), -1 is the most recent item
 * @property {string[]} titles
 * @property {string[]} genres
 * @property {ArrayPayload} popularity int32 (n,)
 * @property {ArrayPayload} values float64 (n,)
 * @property {ArrayPayload} errors float64 (n,) standard errors
 */

/**
 * A precomputed user.
 * @typedef {object} PrecomputedUser
 * @property {number} user
 * @property {Recommendation[]} recommendations
 * @property {ExplanationPayload[]} explanations
 */

/**
 * An explanation decoded for drawing.
 * @typedef {object} Shown
 * @property {number} user
 * @property {number} target
 * @property {number} versus
 * @property {string} label
 * @property {string} method
 * @property {number} base
 * @property {number} output
 * @property {number} nEvals
 * @property {number} maxError
 * @property {boolean} converged
 * @property {boolean} derived true for a contrast built from two stored explanations
 * @property {Array<{position: number, item: number, title: string, genres: string, popularity: number, value: number, error: number}>} rows oldest first
 */

/**
 * One summary row.
 * @typedef {object} SummaryRow
 * @property {string} kind
 * @property {string} group
 * @property {number} mean_attribution
 * @property {number} mean_abs_attribution
 * @property {number} n
 */

const CHART_WIDTH = 720;
const ROW_HEIGHT = 20;
const LABEL_WIDTH = 260;
// Room between the row labels and the plot for the value text of bars that grow leftwards.
const PLOT_LEFT = LABEL_WIDTH + 56;
const MARGIN = { top: 28, right: 70, bottom: 30 };
const POSITIVE = "var(--rw-series-3)";
const NEGATIVE = "var(--rw-series-0)";
const SUMMARY_KINDS = [
  ["genre", "Genre"],
  ["position", "Position from the end (20 most recent)"],
  ["popularity", "Popularity bucket (Q1 least popular)"],
];

const EXPLORER_CSS = `
.rw-shap-explorer h4 { margin: 10px 0 4px; font-size: 1em; }
.rw-shap-explorer .rw-columns { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
.rw-shap-explorer .rw-columns > div { min-width: 240px; }
.rw-shap-explorer tr[data-testid="shap-recommendation"] { cursor: pointer; }
.rw-shap-explorer tr[data-testid="shap-recommendation"]:hover { background: var(--rw-bg2); }
.rw-shap-explorer tr[aria-selected="true"] { background: var(--rw-bg2); outline: 2px solid var(--rw-accent); outline-offset: -2px; }
.rw-shap-explorer tr[data-versus="true"] td:first-child::after { content: " (B)"; color: var(--rw-fg2); }
.rw-shap-explorer [data-stale="true"] { opacity: 0.45; }
.rw-shap-explorer .rw-status { color: var(--rw-warn); }
.rw-shap-explorer .rw-summary-charts { display: flex; flex-wrap: wrap; gap: 16px; }
`;

/**
 * Create a labelled control element.
 * @template {"select" | "input" | "button"} K
 * @param {string} labelText
 * @param {K} tag
 * @param {Record<string, string>} attributes
 * @returns {{label: HTMLLabelElement, control: HTMLElementTagNameMap[K]}}
 */
function labelledControl(labelText, tag, attributes) {
  const label = h("label", {}, labelText);
  const control = h(tag, attributes);
  label.append(control);
  return { label, control };
}

/**
 * Replace the options of a <select>, keeping the element and its listeners.
 * @param {HTMLSelectElement} select
 * @param {Array<[string, string]>} options
 * @param {string} value
 */
function setOptions(select, options, value) {
  const same =
    select.options.length === options.length &&
    options.every(([optionValue, text], index) => select.options[index].value === optionValue && select.options[index].text === text);
  if (!same) {
    select.replaceChildren(...options.map(([optionValue, text]) => h("option", { value: optionValue }, text)));
  }
  select.value = value;
}

/**
 * Decode an explanation payload into rows, oldest first.
 * @param {ExplanationPayload} payload
 * @returns {Shown}
 */
function decode(payload) {
  const items = readArray(payload.items);
  const positions = readArray(payload.positions);
  const values = readArray(payload.values);
  const errors = readArray(payload.errors);
  const popularity = readArray(payload.popularity);
  const count = values === null ? 0 : values.data.length;
  const rows = [];
  for (let index = 0; index < count; index += 1) {
    rows.push({
      position: positions === null ? index - count : positions.data[index],
      item: items === null ? 0 : items.data[index],
      title: payload.titles[index],
      genres: payload.genres[index] || "",
      popularity: popularity === null ? 0 : popularity.data[index],
      value: values === null ? 0 : values.data[index],
      error: errors === null ? 0 : errors.data[index],
    });
  }
  return {
    user: payload.user,
    target: payload.target,
    versus: payload.versus || 0,
    label: payload.label,
    method: payload.method,
    base: payload.base_value,
    output: payload.explained_output,
    nEvals: payload.n_evals,
    maxError: payload.max_standard_error,
    converged: payload.converged,
    derived: false,
    rows,
  };
}

/**
 * Return the contrast A - B of two explanations of the same history.
 * @param {Shown} first
 * @param {Shown} second
 * @returns {Shown}
 */
function contrast(first, second) {
  const rows = first.rows.map((row, index) => {
    const other = second.rows[index];
    // Standard errors of two independent runs add in quadrature.
    return { ...row, value: row.value - other.value, error: Math.hypot(row.error, other.error) };
  });
  return {
    ...first,
    versus: second.target,
    label: `${first.label} - ${second.label}`,
    base: first.base - second.base,
    output: first.output - second.output,
    nEvals: first.nEvals + second.nEvals,
    maxError: Math.max(0, ...rows.map((row) => row.error)),
    converged: first.converged && second.converged,
    derived: true,
    rows,
  };
}

/**
 * Shorten a label to `limit` characters with an ellipsis.
 * @param {string} text
 * @param {number} limit
 * @returns {string}
 */
function shorten(text, limit) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}\u2026`;
}

/**
 * Draw the waterfall: the largest contributions one per row, the rest summed, stacked
 * from the base value (bottom) to the model's output (top).
 * @param {Shown} shown
 * @param {number} maxRows
 * @returns {SVGElement}
 */
function drawWaterfall(shown, maxRows) {
  const ordered = shown.rows.slice().sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  const kept = ordered.slice(0, Math.max(1, maxRows));
  const rest = ordered.slice(kept.length);
  /** @type {Array<{label: string, detail: string, value: number, testid: string, position: number | null}>} */
  const bars = kept.map((row) => ({
    label: `${shorten(row.title, 34)} (${row.position})`,
    detail: `${row.title} \u00b7 position ${row.position} \u00b7 item ${row.item}${row.genres ? ` \u00b7 ${row.genres.split("|").join(", ")}` : ""} \u00b7 ${row.popularity} training interactions \u00b7 ${formatNumber(row.value)} \u00b1 ${formatNumber(1.96 * row.error)}`,
    value: row.value,
    testid: "shap-bar",
    position: row.position,
  }));
  if (rest.length) {
    const total = rest.reduce((sum, row) => sum + row.value, 0);
    bars.push({ label: `${rest.length} other items`, detail: `sum of ${rest.length} smaller contributions`, value: total, testid: "shap-bar-rest", position: null });
  }

  // Walk from the bottom row (the base value) up to the top row (the output).
  /** @type {Array<{start: number, end: number}>} */
  const spans = new Array(bars.length);
  let running = shown.base;
  for (let index = bars.length - 1; index >= 0; index -= 1) {
    spans[index] = { start: running, end: running + bars[index].value };
    running += bars[index].value;
  }
  const ends = spans.flatMap((span) => [span.start, span.end]);
  const low = Math.min(shown.base, shown.output, ...ends);
  const high = Math.max(shown.base, shown.output, ...ends);
  const pad = (high - low) * 0.05 || 1;
  const height = MARGIN.top + bars.length * ROW_HEIGHT + MARGIN.bottom;
  const x = linearScale([low - pad, high + pad], [PLOT_LEFT, CHART_WIDTH - MARGIN.right]);
  const chart = svg("svg", { viewBox: `0 0 ${CHART_WIDTH} ${height}`, width: CHART_WIDTH, height, role: "img", "data-testid": "shap-chart" });

  const axis = svg("g", { class: "rw-axis" });
  const bottom = MARGIN.top + bars.length * ROW_HEIGHT;
  for (const tick of niceTicks(low - pad, high + pad, 6)) {
    axis.append(svg("line", { x1: x(tick), x2: x(tick), y1: MARGIN.top - 4, y2: bottom, "stroke-width": 1 }));
    axis.append(svg("text", { x: x(tick), y: bottom + 14, "text-anchor": "middle" }, formatNumber(tick, 2)));
  }
  chart.append(axis);
  chart.append(svg("line", { x1: x(shown.output), x2: x(shown.output), y1: MARGIN.top - 10, y2: MARGIN.top, stroke: "var(--rw-fg)", "stroke-width": 1.5 }));
  chart.append(svg("text", { x: x(shown.output), y: MARGIN.top - 13, "text-anchor": "middle", "data-testid": "shap-output" }, `f(x) = ${formatNumber(shown.output)}`));
  chart.append(svg("line", { x1: x(shown.base), x2: x(shown.base), y1: bottom, y2: bottom + 18, stroke: "var(--rw-fg)", "stroke-width": 1.5 }));
  chart.append(svg("text", { x: x(shown.base), y: bottom + 28, "text-anchor": "middle", "data-testid": "shap-base" }, `base = ${formatNumber(shown.base)}`));

  bars.forEach((bar, index) => {
    const span = spans[index];
    const y = MARGIN.top + index * ROW_HEIGHT;
    const group = svg("g", { "data-testid": bar.testid, "data-value": String(bar.value), ...(bar.position === null ? {} : { "data-position": String(bar.position) }) });
    group.append(svg("title", {}, bar.detail));
    group.append(svg("text", { x: LABEL_WIDTH - 8, y: y + ROW_HEIGHT / 2 + 4, "text-anchor": "end" }, bar.label));
    const left = x(Math.min(span.start, span.end));
    const width = Math.max(1, Math.abs(x(span.end) - x(span.start)));
    group.append(svg("rect", { x: left, y: y + 3, width, height: ROW_HEIGHT - 6, fill: bar.value >= 0 ? POSITIVE : NEGATIVE }));
    const labelX = bar.value >= 0 ? left + width + 4 : left - 4;
    group.append(svg("text", { x: labelX, y: y + ROW_HEIGHT / 2 + 4, "text-anchor": bar.value >= 0 ? "start" : "end" }, `${bar.value >= 0 ? "+" : ""}${formatNumber(bar.value, 3)}`));
    if (index + 1 < bars.length) {
      // A thin connector from this bar's start to the bar below's end, as in a waterfall.
      chart.append(svg("line", { x1: x(span.start), x2: x(span.start), y1: y + ROW_HEIGHT - 3, y2: y + ROW_HEIGHT + 3, stroke: "var(--rw-fg2)", "stroke-width": 1 }));
    }
    chart.append(group);
  });
  return chart;
}

/**
 * Draw one bar per history item in history order (most recent at the top), with 95% error bars.
 * @param {Shown} shown
 * @returns {SVGElement}
 */
function drawBars(shown) {
  const rows = shown.rows.slice().reverse();
  const reach = Math.max(1e-12, ...rows.map((row) => Math.abs(row.value) + 1.96 * row.error));
  const height = MARGIN.top + rows.length * ROW_HEIGHT + MARGIN.bottom;
  const x = linearScale([-reach * 1.05, reach * 1.05], [LABEL_WIDTH, CHART_WIDTH - MARGIN.right]);
  const chart = svg("svg", { viewBox: `0 0 ${CHART_WIDTH} ${height}`, width: CHART_WIDTH, height, role: "img", "data-testid": "shap-chart" });
  const bottom = MARGIN.top + rows.length * ROW_HEIGHT;
  const axis = svg("g", { class: "rw-axis" });
  for (const tick of niceTicks(-reach, reach, 6)) {
    axis.append(svg("line", { x1: x(tick), x2: x(tick), y1: MARGIN.top - 4, y2: bottom, "stroke-width": tick === 0 ? 2 : 1 }));
    axis.append(svg("text", { x: x(tick), y: bottom + 14, "text-anchor": "middle" }, formatNumber(tick, 2)));
  }
  chart.append(axis);
  chart.append(svg("text", { x: LABEL_WIDTH, y: MARGIN.top - 12 }, "most recent item at the top; whiskers are 95% intervals of sampled values"));
  rows.forEach((row, index) => {
    const y = MARGIN.top + index * ROW_HEIGHT;
    const group = svg("g", { "data-testid": "shap-bar", "data-position": String(row.position), "data-value": String(row.value) });
    group.append(svg("title", {}, `${row.title} \u00b7 position ${row.position} \u00b7 ${formatNumber(row.value)} \u00b1 ${formatNumber(1.96 * row.error)}`));
    group.append(svg("text", { x: LABEL_WIDTH - 8, y: y + ROW_HEIGHT / 2 + 4, "text-anchor": "end" }, `${shorten(row.title, 34)} (${row.position})`));
    const left = x(Math.min(0, row.value));
    group.append(svg("rect", { x: left, y: y + 3, width: Math.max(1, Math.abs(x(row.value) - x(0))), height: ROW_HEIGHT - 6, fill: row.value >= 0 ? POSITIVE : NEGATIVE }));
    if (row.error > 0) {
      const middle = y + ROW_HEIGHT / 2;
      group.append(svg("line", { x1: x(row.value - 1.96 * row.error), x2: x(row.value + 1.96 * row.error), y1: middle, y2: middle, stroke: "var(--rw-fg)", "stroke-width": 1 }));
    }
    chart.append(group);
  });
  return chart;
}

/**
 * Draw horizontal bars of the mean attribution per group of one summary kind.
 * @param {SummaryRow[]} rows
 * @param {string} title
 * @param {string} kind
 * @returns {HTMLDivElement}
 */
function drawSummaryChart(rows, title, kind) {
  const box = h("div", { "data-testid": `shap-summary-${kind}` });
  box.append(h("h4", {}, title));
  const shownRows = rows.slice(0, 20);
  const width = 320;
  const labelWidth = 120;
  const height = 8 + shownRows.length * 16;
  const reach = Math.max(1e-12, ...shownRows.map((row) => Math.abs(row.mean_attribution)));
  const x = linearScale([-reach, reach], [labelWidth, width - 8]);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  chart.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: height, stroke: "var(--rw-border)" }));
  shownRows.forEach((row, index) => {
    const y = 4 + index * 16;
    const group = svg("g", { "data-group": row.group });
    group.append(svg("title", {}, `${row.group}: mean ${formatNumber(row.mean_attribution)}, mean |value| ${formatNumber(row.mean_abs_attribution)}, ${row.n} items`));
    group.append(svg("text", { x: labelWidth - 6, y: y + 11, "text-anchor": "end" }, shorten(row.group, 18)));
    group.append(svg("rect", { x: x(Math.min(0, row.mean_attribution)), y: y + 2, width: Math.max(1, Math.abs(x(row.mean_attribution) - x(0))), height: 11, fill: row.mean_attribution >= 0 ? POSITIVE : NEGATIVE }));
    chart.append(group);
  });
  box.append(chart);
  return box;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-shap-explorer", "shap-explorer");
  shell.root.append(h("style", {}, EXPLORER_CSS));
  const kernel = hasKernel(model);

  const userPick = labelledControl("User", "select", { "data-testid": "shap-user" });
  const targetPick = labelledControl("Explain", "select", { "data-testid": "shap-target" });
  const versusPick = labelledControl("versus", "select", { "data-testid": "shap-versus" });
  const viewPick = labelledControl("Chart", "select", { "data-testid": "shap-view" });
  setOptions(viewPick.control, [["waterfall", "waterfall"], ["bar", "bars in history order"]], "waterfall");
  const status = h("span", { class: "rw-status", "data-testid": "shap-status" });
  const toolbar = h("div", { class: "rw-toolbar" });
  toolbar.append(userPick.label, targetPick.label, versusPick.label, viewPick.label, status);

  const headline = h("p", { class: "rw-muted", "data-testid": "shap-headline" });
  const chartBox = h("div", { "data-testid": "shap-chart-box" });
  const recommendationBody = h("tbody");
  const recommendationTable = h("table", { "data-testid": "shap-recommendations" });
  const head = h("tr");
  head.append(h("th", {}, "#"), h("th", {}, "Recommended item"), h("th", {}, "Score"));
  recommendationTable.append(h("thead"), recommendationBody);
  /** @type {HTMLElement} */ (recommendationTable.firstChild).append(head);
  const listBox = h("div");
  listBox.append(h("h4", {}, "Top-k recommendations (click to explain)"), recommendationTable);
  const chartColumn = h("div");
  chartColumn.append(headline, chartBox);
  const columns = h("div", { class: "rw-columns" });
  columns.append(chartColumn, listBox);

  const summaryButton = h("button", { type: "button", "data-testid": "shap-summary-button" }, "Summarize over users");
  if (!kernel) {
    summaryButton.disabled = true;
    summaryButton.title = "Needs a running kernel; the exported page shows the summary stored with it, if any.";
  }
  const summaryNote = h("p", { class: "rw-muted", "data-testid": "shap-summary-note" });
  const summaryCharts = h("div", { class: "rw-summary-charts", "data-testid": "shap-summary" });
  const summaryBox = h("div");
  summaryBox.append(h("h4", {}, "What drives the top-1 recommendations over users"), summaryButton, summaryNote, summaryCharts);
  shell.body.append(toolbar, columns, summaryBox);

  /** @param {string} name @param {any} value */
  const update = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };

  /**
   * Return the precomputed entry of a user, if any.
   * @param {number} user
   * @returns {PrecomputedUser | undefined}
   */
  const storedUser = (user) => /** @type {PrecomputedUser[]} */ (model.get("precomputed") || []).find((entry) => entry.user === user);

  /**
   * Return the explanation for the current user, target and contrast, or null while it is
   * being computed (or, offline, when it was not stored).
   * @returns {Shown | null}
   */
  const current = () => {
    const user = Number(model.get("user"));
    const target = Number(model.get("target"));
    const versus = Number(model.get("versus"));
    const result = /** @type {ExplanationPayload | null} */ (model.get("result") || null);
    if (result !== null && result.user === user && result.target === target && (result.versus || 0) === versus) {
      return decode(result);
    }
    const entry = storedUser(user);
    if (entry === undefined) {
      return null;
    }
    const first = entry.explanations.find((candidate) => candidate.target === target);
    if (first === undefined) {
      return null;
    }
    if (versus === 0) {
      return decode(first);
    }
    const second = entry.explanations.find((candidate) => candidate.target === versus);
    return second === undefined ? null : contrast(decode(first), decode(second));
  };

  /** @type {Shown | null} */
  let lastShown = null;

  const draw = () => {
    const user = Number(model.get("user"));
    const target = Number(model.get("target"));
    const versus = Number(model.get("versus"));
    const entries = /** @type {PrecomputedUser[]} */ (model.get("precomputed") || []);

    const offered = new Set(/** @type {number[]} */ (model.get("users") || []));
    for (const entry of entries) {
      offered.add(entry.user);
    }
    offered.add(user);
    const available = kernel ? Array.from(offered) : entries.map((entry) => entry.user);
    setOptions(userPick.control, (available.length ? available : [user]).map((id) => [String(id), `user ${id}`]), String(user));

    const entry = storedUser(user);
    /** @type {Recommendation[]} */
    let recommendations = model.get("recommendations") || [];
    if (!kernel && entry !== undefined) {
      recommendations = entry.recommendations;
    }
    // Offline, only stored targets can be explained.
    const explainable = kernel || entry === undefined ? recommendations : recommendations.filter((item) => entry.explanations.some((stored) => stored.target === item.item));
    const rank = new Map(recommendations.map((item, index) => [item.item, index + 1]));
    /** @param {Recommendation} item */
    const optionText = (item) => `#${rank.get(item.item)} ${shorten(item.title, 40)} (${formatNumber(item.score, 3)})`;
    setOptions(targetPick.control, explainable.map((item) => [String(item.item), optionText(item)]), String(target));
    setOptions(
      versusPick.control,
      [["0", "nothing (explain the item alone)"], ...explainable.filter((item) => item.item !== target).map((item) => /** @type {[string, string]} */ ([String(item.item), optionText(item)]))],
      String(versus),
    );
    viewPick.control.value = String(model.get("view") || "waterfall");

    recommendationBody.replaceChildren(
      ...recommendations.map((item, index) => {
        const stored = explainable.includes(item);
        const row = h("tr", { "data-testid": "shap-recommendation", "data-item": String(item.item), "aria-selected": String(item.item === target), "data-versus": String(item.item === versus) });
        row.append(h("td", { class: "rw-num" }, String(index + 1)), h("td", {}, item.title), h("td", { class: "rw-num" }, formatNumber(item.score, 3)));
        row.title = stored ? `item ${item.item}${item.genres ? ` \u00b7 ${item.genres.split("|").join(", ")}` : ""}` : "Not precomputed for this page";
        if (!stored) {
          row.classList.add("rw-muted");
        } else {
          row.addEventListener("click", () => {
            if (item.item !== target) {
              if (Number(model.get("versus")) === item.item) {
                model.set("versus", 0);
              }
              update("target", item.item);
            }
          });
        }
        return row;
      }),
    );

    const message = String(model.get("status") || "");
    const shown = current();
    if (shown === null) {
      status.textContent = message || (kernel ? "Computing\u2026" : "");
      if (!kernel) {
        headline.textContent = `This explanation was not stored with the page; pick a listed target.`;
      }
      chartBox.dataset.stale = "true";
      if (lastShown === null) {
        chartBox.replaceChildren();
      }
      return;
    }
    status.textContent = message;
    lastShown = shown;
    chartBox.dataset.stale = "false";
    const view = String(model.get("view") || "waterfall");
    const chart = view === "bar" ? drawBars(shown) : drawWaterfall(shown, Number(model.get("max_rows")) || 15);
    const total = shown.base + shown.rows.reduce((sum, row) => sum + row.value, 0);
    Object.assign(/** @type {SVGElement & {dataset: DOMStringMap}} */ (chart).dataset, {
      user: String(shown.user),
      target: String(shown.target),
      versus: String(shown.versus),
      view,
      rows: String(shown.rows.length),
      total: String(total),
      output: String(shown.output),
      base: String(shown.base),
    });
    chart.setAttribute("aria-label", `Shapley values of ${shown.label} for user ${shown.user}`);
    chartBox.replaceChildren(chart);

    const precision = shown.method === "exact" ? "exact" : `${shown.method}, max standard error ${formatNumber(shown.maxError)}${shown.converged ? "" : " (budget reached before the tolerance)"}`;
    const origin = shown.derived ? " \u00b7 contrast from two stored explanations" : "";
    headline.textContent = `User ${shown.user} \u00b7 ${shown.label}: output ${formatNumber(shown.output)} = base ${formatNumber(shown.base)} + sum of ${shown.rows.length} item contributions \u00b7 ${precision} \u00b7 ${shown.nEvals.toLocaleString()} forward passes${origin}`;
  };

  const drawSummary = () => {
    const summary = /** @type {{n_users?: number, output?: string, rows?: SummaryRow[]}} */ (model.get("summary") || {});
    const rows = summary.rows || [];
    if (rows.length === 0) {
      summaryNote.textContent = kernel ? "Explains the top-1 recommendation of each listed user (or the first 20) and averages by genre, position and popularity." : "No summary was stored with this page.";
      summaryCharts.replaceChildren();
      return;
    }
    summaryNote.textContent = `Mean ${summary.output || "score"} attribution per item over the top-1 explanations of ${summary.n_users} users; positive pushes the recommendation up.`;
    summaryCharts.replaceChildren(
      ...SUMMARY_KINDS.filter(([kind]) => rows.some((row) => row.kind === kind)).map(([kind, title]) => {
        let kindRows = rows.filter((row) => row.kind === kind);
        if (kind === "genre") {
          kindRows = kindRows.slice().sort((a, b) => Math.abs(b.mean_attribution) - Math.abs(a.mean_attribution));
        }
        return drawSummaryChart(kindRows, title, kind);
      }),
    );
  };

  listenDom(
    userPick.control,
    "change",
    () => {
      const user = Number(userPick.control.value);
      const entry = storedUser(user);
      if (!kernel && entry !== undefined && entry.explanations.length > 0) {
        // The kernel resets target and contrast on a user switch; offline the page does it.
        model.set("versus", 0);
        model.set("target", entry.explanations[0].target);
      }
      update("user", user);
    },
    cleanups,
    shell,
  );
  listenDom(
    targetPick.control,
    "change",
    () => {
      const value = Number(targetPick.control.value);
      if (Number(model.get("versus")) === value) {
        model.set("versus", 0);
      }
      update("target", value);
    },
    cleanups,
    shell,
  );
  listenDom(versusPick.control, "change", () => update("versus", Number(versusPick.control.value)), cleanups, shell);
  listenDom(viewPick.control, "change", () => update("view", viewPick.control.value), cleanups, shell);
  listenDom(
    summaryButton,
    "click",
    () => {
      summaryNote.textContent = "Computing the summary\u2026";
      update("summary_request", Number(model.get("summary_request")) + 1);
    },
    cleanups,
    shell,
  );

  /** @param {() => void} callback */
  const safely = (callback) => () => {
    try {
      callback();
    } catch (error) {
      showError(shell, error);
    }
  };
  const names = ["user", "users", "target", "versus", "view", "max_rows", "status", "recommendations", "result", "precomputed"];
  for (const name of names) {
    listen(model, `change:${name}`, draw, cleanups, shell);
  }
  listen(model, "change:summary", drawSummary, cleanups, shell);
  bindPythonError(model, shell, cleanups);
  safely(draw)();
  safely(drawSummary)();

  return () => {
    for (const cleanup of cleanups.splice(0)) {
      cleanup();
    }
  };
}

export default { render };
