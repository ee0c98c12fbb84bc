// OnlineUpdatePanel front end: sliders and buttons for online updates, before/after metric
// cards, a plasticity-versus-forgetting chart over windows, the update history and the
// users whose recommendations moved most.
//
// The update itself runs in the kernel. Sliders redraw their labels at once and send the
// value once they rest. The apply button sends the values shown at the moment of the
// click. Without a kernel (the offline export) the controls are disabled and the history
// stays readable.

import {
  bindPythonError,
  createShell,
  debounce,
  drawYAxis,
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
 * A before/after card as the kernel sends it.
 * @typedef {object} Card
 * @property {string} key
 * @property {string} label
 * @property {number | null} original
 * @property {number | null} before
 * @property {number | null} after
 * @property {boolean} [pair] true when before/after hold two values side by side, not a change
 */

/**
 * One row of the movers table.
 * @typedef {object} Mover
 * @property {number} user internal id
 * @property {string} user_id raw id
 * @property {number} jaccard
 * @property {boolean} in_window
 * @property {string[]} before
 * @property {string[]} after
 */

/**
 * A chart point with its status.
 * @typedef {object} HistoryPoint
 * @property {number} window
 * @property {number} update
 * @property {number} value
 * @property {string} status
 */

const SLIDER_WAIT_MS = 250;
const CHART_WIDTH = 700;
const CHART_HEIGHT = 280;
const CHART_MARGIN = { top: 30, right: 16, bottom: 52, left: 56 };
const ACTIVE = new Set(["pending", "committed"]);

const PANEL_CSS = `
.rw-online-update-panel .rw-controls { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 6px 16px; margin: 4px 0 8px; }
.rw-online-update-panel .rw-controls label { display: grid; grid-template-columns: 1fr auto; gap: 2px 8px; }
.rw-online-update-panel .rw-controls input[type="range"] { grid-column: 1 / span 2; width: 100%; padding: 0; }
.rw-online-update-panel .rw-value { color: var(--rw-fg); font-variant-numeric: tabular-nums; }
.rw-online-update-panel progress { width: 160px; }
.rw-online-update-panel .rw-cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.rw-online-update-panel .rw-card { border: 1px solid var(--rw-border); border-radius: 4px; padding: 6px 10px; min-width: 170px; background: var(--rw-bg); }
.rw-online-update-panel .rw-card-label { color: var(--rw-fg2); font-size: 0.92em; }
.rw-online-update-panel .rw-card-after { font-size: 1.35em; font-weight: 600; font-variant-numeric: tabular-nums; }
.rw-online-update-panel .rw-card-detail { color: var(--rw-fg2); font-size: 0.92em; font-variant-numeric: tabular-nums; }
.rw-online-update-panel .rw-up { color: var(--rw-series-2); }
.rw-online-update-panel .rw-down { color: var(--rw-error); }
.rw-online-update-panel tr.rw-inactive td { color: var(--rw-fg2); text-decoration: line-through; }
.rw-online-update-panel tr[data-testid="mover-row"] { cursor: pointer; }
.rw-online-update-panel tr[data-testid="mover-row"]:hover { background: var(--rw-bg2); }
.rw-online-update-panel tr[aria-selected="true"] { background: var(--rw-bg2); outline: 2px solid var(--rw-accent); outline-offset: -2px; }
.rw-online-update-panel .rw-note { color: var(--rw-warn); }
.rw-online-update-panel h4 { margin: 10px 0 2px; font-size: 1em; }
.rw-online-update-panel td.rw-num { white-space: nowrap; }
`;

/**
 * Return a learning rate rounded to 3 significant digits from a slider position (log10).
 * @param {number} position
 * @returns {number}
 */
function lrFromPosition(position) {
  return Number(Math.pow(10, position).toPrecision(3));
}

/**
 * Return the text of a learning rate, such as "1.00e-3".
 * @param {number} value
 * @returns {string}
 */
function formatRate(value) {
  return value === 0 ? "0" : value.toExponential(2);
}

/**
 * Return a value column of the history array as numbers.
 * @param {DecodedArray | null} history
 * @param {string[]} columns
 * @param {string} name
 * @returns {number[]}
 */
function column(history, columns, name) {
  const index = columns.indexOf(name);
  if (history === null || index < 0) {
    return [];
  }
  const [rows, width] = history.shape;
  const values = [];
  for (let row = 0; row < rows; row += 1) {
    values.push(history.data[row * width + index]);
  }
  return values;
}

/**
 * Create a labelled range input with a value display.
 * @param {string} text
 * @param {string} testId
 * @returns {{label: HTMLLabelElement, input: HTMLInputElement, value: HTMLSpanElement}}
 */
function slider(text, testId) {
  const label = h("label", {}, text);
  const value = h("span", { class: "rw-value", "data-testid": `${testId}-value` });
  const input = h("input", { type: "range", "data-testid": testId, "aria-label": text });
  label.append(value, input);
  return { label, input, value };
}

/**
 * Draw the plasticity-versus-forgetting chart over windows.
 * @param {HistoryPoint[][]} series plasticity after, forgetting after, plasticity original, forgetting original
 * @param {HistoryPoint[][]} inactive undone or reset points of plasticity and forgetting
 * @param {string} metric
 * @returns {SVGElement}
 */
function historyChart(series, inactive, metric) {
  const title = `${metric} after each update: next window (plasticity) and earlier users (forgetting)`;
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    role: "img",
    "aria-label": title,
    "data-testid": "online-chart",
  });
  chart.append(svg("text", { x: CHART_MARGIN.left, y: 14, "font-weight": 600 }, title));
  const all = [...series.flat(), ...inactive.flat()].filter((point) => Number.isFinite(point.value));
  if (all.length === 0) {
    chart.append(svg("text", { x: CHART_WIDTH / 2, y: CHART_HEIGHT / 2, "text-anchor": "middle", "data-testid": "chart-empty" }, "No update applied yet."));
    return chart;
  }

  const xMax = Math.max(1, ...all.map((point) => point.window));
  let low = Math.min(...all.map((point) => point.value));
  let high = Math.max(...all.map((point) => point.value));
  if (low === high) {
    low -= Math.abs(low) * 0.1 || 0.05;
    high += Math.abs(high) * 0.1 || 0.05;
  }
  const padding = (high - low) * 0.08;
  const ticks = niceTicks(low - padding, high + padding, 4);
  const y = linearScale([Math.min(low - padding, ...ticks), Math.max(high + padding, ...ticks)], [CHART_HEIGHT - CHART_MARGIN.bottom, CHART_MARGIN.top]);
  const x = linearScale([0.5, xMax + 0.5], [CHART_MARGIN.left, CHART_WIDTH - CHART_MARGIN.right]);
  drawYAxis(chart, ticks, y, CHART_MARGIN.left, CHART_WIDTH - CHART_MARGIN.right);
  const axis = svg("g", { class: "rw-axis" });
  const step = Math.max(1, Math.ceil(xMax / 12));
  for (let tick = 1; tick <= xMax; tick += step) {
    axis.append(svg("text", { x: x(tick), y: CHART_HEIGHT - CHART_MARGIN.bottom + 14, "text-anchor": "middle" }, String(tick)));
  }
  axis.append(svg("text", { x: CHART_WIDTH - CHART_MARGIN.right, y: CHART_HEIGHT - CHART_MARGIN.bottom + 28, "text-anchor": "end" }, "window"));
  chart.append(axis);

  const names = ["next window", "earlier users", "next window, original", "earlier users, original"];
  // Legend entries sit side by side, each as wide as its text (about 6.5 px per character at 11 px).
  const legendOffsets = names.map((_, index) => names.slice(0, index).reduce((sum, name) => sum + 36 + name.length * 6.5, 0));
  series.forEach((points, index) => {
    const legendX = CHART_MARGIN.left + legendOffsets[index];
    const color = seriesColor(index % 2);
    const original = index >= 2;
    const finite = points.filter((point) => Number.isFinite(point.value));
    if (finite.length > 0) {
      const line = svg("polyline", {
        points: finite.map((point) => `${x(point.window).toFixed(2)},${y(point.value).toFixed(2)}`).join(" "),
        fill: "none",
        stroke: color,
        "stroke-width": original ? 1.2 : 2,
        "stroke-dasharray": original ? "5 4" : "",
        "data-testid": "chart-line",
        "data-series": names[index],
      });
      line.append(svg("title", {}, names[index]));
      chart.append(line);
      if (!original) {
        for (const point of finite) {
          const dot = svg("circle", { cx: x(point.window), cy: y(point.value), r: 3.5, fill: color, "data-testid": "chart-point", "data-status": point.status });
          dot.append(svg("title", {}, `${names[index]}, window ${point.window} (update ${point.update}, ${point.status}): ${formatNumber(point.value)}`));
          chart.append(dot);
        }
      }
    }
    chart.append(
      svg("line", { x1: legendX, x2: legendX + 16, y1: CHART_HEIGHT - 9, y2: CHART_HEIGHT - 9, stroke: color, "stroke-width": 2, "stroke-dasharray": original ? "5 4" : "" }),
      svg("text", { x: legendX + 20, y: CHART_HEIGHT - 5 }, names[index]),
    );
  });
  inactive.forEach((points, index) => {
    for (const point of points.filter((candidate) => Number.isFinite(candidate.value))) {
      const ghost = svg("circle", {
        cx: x(point.window),
        cy: y(point.value),
        r: 3.5,
        fill: "none",
        stroke: seriesColor(index),
        "stroke-opacity": 0.5,
        "data-testid": "chart-point",
        "data-status": point.status,
      });
      ghost.append(svg("title", {}, `${names[index]}, window ${point.window} (update ${point.update}, ${point.status}): ${formatNumber(point.value)}`));
      chart.append(ghost);
    }
  });
  return chart;
}

/**
 * Fill a card element from a card record.
 * @param {Card} card
 * @returns {HTMLDivElement}
 */
function cardElement(card) {
  const box = h("div", { class: "rw-card", "data-testid": "online-card", "data-key": card.key });
  box.append(h("div", { class: "rw-card-label" }, card.label));
  if (card.pair) {
    box.append(h("div", { class: "rw-card-after", "data-testid": "card-after" }, `${formatNumber(card.before)} / ${formatNumber(card.after)}`));
    return box;
  }
  box.append(h("div", { class: "rw-card-after", "data-testid": "card-after" }, formatNumber(card.after)));
  const detail = h("div", { class: "rw-card-detail" });
  detail.append(h("span", { "data-testid": "card-before" }, `before ${formatNumber(card.before)}`));
  if (card.before !== null && card.after !== null) {
    const change = card.after - card.before;
    let direction = "";
    if (change > 0) {
      direction = "rw-up";
    } else if (change < 0) {
      direction = "rw-down";
    }
    detail.append(h("span", { class: direction }, ` (${change > 0 ? "+" : ""}${formatNumber(change)})`));
  }
  box.append(detail);
  box.append(h("div", { class: "rw-card-detail", "data-testid": "card-original" }, `original ${formatNumber(card.original)}`));
  return box;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-online-update-panel", "online-update-panel");
  shell.root.append(h("style", {}, PANEL_CSS));
  const kernel = hasKernel(model);

  const lrControl = slider("Learning rate (log scale)", "online-lr");
  const stepsControl = slider("Optimizer steps", "online-steps");
  const windowControl = slider("Window size", "online-window");
  const replayControl = slider("Replay fraction", "online-replay");
  const stateLabel = h("label", {}, "Optimizer state ");
  const stateSelect = h("select", { "data-testid": "online-optimizer-state" });
  stateSelect.append(h("option", { value: "fresh" }, "fresh per window"), h("option", { value: "carry" }, "carried over"));
  stateLabel.append(stateSelect);
  const sparseText = h("span", { class: "rw-muted", "data-testid": "online-sparse" });
  const controls = h("div", { class: "rw-controls" });
  controls.append(lrControl.label, stepsControl.label, windowControl.label, replayControl.label, stateLabel, sparseText);

  const applyButton = h("button", { type: "button", "data-testid": "online-apply" }, "Apply next window");
  const undoButton = h("button", { type: "button", "data-testid": "online-undo" }, "Undo");
  const commitButton = h("button", { type: "button", "data-testid": "online-commit" }, "Commit");
  const resetButton = h("button", { type: "button", "data-testid": "online-reset" }, "Reset to original");
  const progress = h("progress", { max: "1", value: "0", "data-testid": "online-progress" });
  const status = h("span", { class: "rw-muted", "data-testid": "online-status", "aria-live": "polite" });
  const buttons = h("div", { class: "rw-toolbar" });
  buttons.append(applyButton, undoButton, commitButton, resetButton, progress, status);

  const kernelNote = h("p", { class: "rw-note", "data-testid": "online-kernel-note" }, "Static view: applying, undoing and committing need a running kernel; the history below is what was recorded.");
  kernelNote.hidden = kernel;
  const running = h("p", { class: "rw-muted", "data-testid": "online-running" });
  const nextWindow = h("p", { class: "rw-muted", "data-testid": "online-next-window" });
  const cardsTitle = h("h4", {}, "Latest pending or committed update");
  const cards = h("div", { class: "rw-cards", "data-testid": "online-cards" });
  const chartBox = h("div", { class: "rw-chart" });
  const historyTitle = h("h4", {}, "Update history");
  const historyTable = h("table", { "data-testid": "online-history" });
  const moversTitle = h("h4", {}, "Users whose top-k list moved most (click to select)");
  const moversTable = h("table", { "data-testid": "online-movers" });
  shell.body.append(controls, buttons, kernelNote, running, nextWindow, cardsTitle, cards, chartBox, historyTitle, historyTable, moversTitle, moversTable);

  // Set after a button press until the kernel replies, so a second press cannot race the first.
  let awaiting = false;

  /** @param {string} name @param {any} value */
  const save = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  // Names whose slider value has not reached the model yet.
  /** @type {Set<string>} */
  const unsaved = new Set();
  /** @param {string} name */
  const saver = (name) =>
    debounce(
      /** @param {number} value */ (value) => {
        unsaved.delete(name);
        save(name, value);
      },
      SLIDER_WAIT_MS,
    );
  const saveLr = saver("lr");
  const saveSteps = saver("steps");
  const saveWindow = saver("window_size");
  const saveReplay = saver("replay");
  const savers = [saveLr, saveSteps, saveWindow, saveReplay];
  cleanups.push(() => savers.forEach((pending) => pending.cancel()));
  // The log-scale slider cannot show lr = 0, which Python may set, so the label shows 0 until the slider moves.
  let lrIsZero = false;

  /** Values shown by the controls, which may be ahead of the model while a slider rests. */
  const shown = () => ({
    lr: lrIsZero ? 0 : lrFromPosition(Number(lrControl.input.value)),
    steps: Number(stepsControl.input.value),
    window_size: Number(windowControl.input.value),
    replay: Number(replayControl.input.value),
    optimizer_state: stateSelect.value,
  });

  const showValues = () => {
    const values = shown();
    lrControl.value.textContent = formatRate(values.lr);
    stepsControl.value.textContent = String(values.steps);
    windowControl.value.textContent = `${values.window_size} ${model.get("window_unit") || ""}`;
    replayControl.value.textContent = values.replay.toFixed(2);
  };

  const syncControls = () => {
    const lrMin = Math.log10(Number(model.get("lr_min")) || 1e-5);
    const lrMax = Math.log10(Number(model.get("lr_max")) || 1e-1);
    Object.assign(lrControl.input, { min: String(lrMin), max: String(lrMax), step: "0.05" });
    Object.assign(stepsControl.input, { min: "0", max: String(model.get("steps_max") || 100), step: "1" });
    Object.assign(windowControl.input, { min: "1", max: String(model.get("window_max") || 60), step: "1" });
    Object.assign(replayControl.input, { min: "0", max: "0.9", step: "0.05" });
    const lr = Number(model.get("lr"));
    lrIsZero = lr === 0;
    lrControl.input.value = String(lr > 0 ? Math.log10(lr) : lrMin);
    stepsControl.input.value = String(model.get("steps"));
    windowControl.input.value = String(model.get("window_size"));
    replayControl.input.value = String(model.get("replay"));
    stateSelect.value = String(model.get("optimizer_state") || "fresh");
    sparseText.textContent = model.get("sparse")
      ? `Sparse: only rows of items in a step change (k = ${model.get("k")})`
      : `Dense: every parameter may change (k = ${model.get("k")})`;
    showValues();
  };

  const syncButtons = () => {
    const busy = Boolean(model.get("busy"));
    const blocked = !kernel || busy || awaiting;
    applyButton.disabled = blocked || !model.get("can_apply");
    undoButton.disabled = blocked || Number(model.get("n_pending")) === 0;
    commitButton.disabled = blocked || Number(model.get("n_pending")) === 0;
    resetButton.disabled = blocked || Number(model.get("depth")) === 0;
    for (const input of [lrControl.input, stepsControl.input, windowControl.input, replayControl.input, stateSelect]) {
      input.disabled = !kernel;
    }
    progress.value = Number(model.get("progress")) || 0;
    progress.hidden = !busy;
    applyButton.setAttribute("aria-busy", String(busy));
    status.textContent = model.get("status") || "";
  };

  const drawRunning = () => {
    const settings = model.get("running") || {};
    if (settings.update === undefined) {
      running.textContent = "No update applied yet.";
      return;
    }
    const verb = model.get("busy") ? "Running" : "Last applied";
    running.textContent = `${verb}: update ${settings.update} with lr ${formatRate(Number(settings.lr))}, ${settings.steps} steps, window ${settings.window}, replay ${Number(settings.replay).toFixed(2)}, ${settings.optimizer_state} optimizer state.`;
  };

  const drawCards = () => {
    const list = /** @type {Card[]} */ (model.get("cards") || []);
    cardsTitle.hidden = list.length === 0;
    cards.replaceChildren(...list.map(cardElement));
  };

  const drawHistory = () => {
    const history = readArray(model.get("history"));
    const columns = /** @type {string[]} */ (model.get("history_columns") || []);
    const statuses = /** @type {string[]} */ (model.get("history_status") || []);
    const settingsText = /** @type {string[]} */ (model.get("history_settings") || []);
    const metric = String(model.get("metric") || "");
    const windows = column(history, columns, "window");
    const updates = column(history, columns, "update");

    /** @param {string} name @param {(status: string) => boolean} keep */
    const points = (name, keep) => {
      const values = column(history, columns, name);
      return values
        .map((value, row) => ({ window: windows[row], update: updates[row], value, status: statuses[row] || "" }))
        .filter((point) => keep(point.status))
        .sort((left, right) => left.window - right.window);
    };
    const isActive = (/** @type {string} */ state) => ACTIVE.has(state);
    const isInactive = (/** @type {string} */ state) => !ACTIVE.has(state);
    chartBox.replaceChildren(
      historyChart(
        [points("plasticity_after", isActive), points("forgetting_after", isActive), points("plasticity_original", isActive), points("forgetting_original", isActive)],
        [points("plasticity_after", isInactive), points("forgetting_after", isInactive)],
        metric,
      ),
    );

    const head = h("tr");
    for (const name of ["Update", "Window", "Status", "Start", "Interactions", "lr", "Steps", "Replay", "Window size, optimizer", `Next window ${metric}`, `Earlier users ${metric}`]) {
      head.append(h("th", {}, name));
    }
    const starts = column(history, columns, "start");
    const sizes = column(history, columns, "n_interactions");
    const rates = column(history, columns, "lr");
    const steps = column(history, columns, "steps");
    const replays = column(history, columns, "replay");
    const plasticity = [column(history, columns, "plasticity_before"), column(history, columns, "plasticity_after")];
    const forgetting = [column(history, columns, "forgetting_before"), column(history, columns, "forgetting_after")];
    const rows = updates.map((update, row) => {
      const state = statuses[row] || "";
      const tr = h("tr", { "data-testid": "history-row", "data-status": state, class: ACTIVE.has(state) ? "" : "rw-inactive" });
      const start = new Date(starts[row] * 1000).toISOString().slice(0, 16).replace("T", " ");
      tr.append(
        h("td", { class: "rw-num" }, String(update)),
        h("td", { class: "rw-num" }, String(windows[row])),
        h("td", {}, state),
        h("td", {}, start),
        h("td", { class: "rw-num" }, String(sizes[row])),
        h("td", { class: "rw-num" }, formatRate(rates[row])),
        h("td", { class: "rw-num" }, String(steps[row])),
        h("td", { class: "rw-num" }, replays[row].toFixed(2)),
        h("td", {}, settingsText[row] || ""),
        h("td", { class: "rw-num" }, `${formatNumber(plasticity[0][row])} \u2192 ${formatNumber(plasticity[1][row])}`),
        h("td", { class: "rw-num" }, `${formatNumber(forgetting[0][row])} \u2192 ${formatNumber(forgetting[1][row])}`),
      );
      return tr;
    });
    historyTable.replaceChildren(h("thead"), h("tbody"));
    /** @type {HTMLElement} */ (historyTable.firstChild).append(head);
    /** @type {HTMLElement} */ (historyTable.lastChild).append(...rows);
    historyTitle.hidden = rows.length === 0;
    historyTable.hidden = rows.length === 0;
  };

  /** @param {number} user */
  const selectUser = (user) => {
    save("selected_user", model.get("selected_user") === user ? null : user);
  };

  const drawMovers = () => {
    const movers = /** @type {Mover[]} */ (model.get("movers") || []);
    const selected = model.get("selected_user");
    moversTitle.hidden = movers.length === 0;
    moversTable.hidden = movers.length === 0;
    const head = h("tr");
    for (const name of ["User", "Top-k change (Jaccard)", "In window", "Before", "After"]) {
      head.append(h("th", {}, name));
    }
    const rows = movers.map((mover) => {
      const row = h("tr", { "data-testid": "mover-row", "data-user": String(mover.user), tabindex: "0", "aria-selected": String(mover.user === selected) });
      row.append(
        h("td", {}, mover.user_id),
        h("td", { class: "rw-num" }, formatNumber(mover.jaccard, 2)),
        h("td", {}, mover.in_window ? "yes" : "no"),
        h("td", {}, mover.before.join(", ")),
        h("td", {}, mover.after.join(", ")),
      );
      row.addEventListener("click", () => selectUser(mover.user));
      row.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          selectUser(mover.user);
        }
      });
      return row;
    });
    moversTable.replaceChildren(h("thead"), h("tbody"));
    /** @type {HTMLElement} */ (moversTable.firstChild).append(head);
    /** @type {HTMLElement} */ (moversTable.lastChild).append(...rows);
  };

  const drawAll = () => {
    syncControls();
    syncButtons();
    drawRunning();
    nextWindow.textContent = model.get("next_window") || "";
    drawCards();
    drawHistory();
    drawMovers();
  };

  // Slider moves show at once; the value reaches the kernel when the slider rests.
  /**
   * @param {HTMLInputElement} input
   * @param {string} name
   * @param {(value: number) => void} send
   * @param {() => number} read
   */
  const onSlide = (input, name, send, read) => {
    listenDom(
      input,
      "input",
      () => {
        if (name === "lr") {
          lrIsZero = false;
        }
        unsaved.add(name);
        showValues();
        send(read());
      },
      cleanups,
      shell,
    );
  };
  onSlide(lrControl.input, "lr", saveLr, () => shown().lr);
  onSlide(stepsControl.input, "steps", saveSteps, () => shown().steps);
  onSlide(windowControl.input, "window_size", saveWindow, () => shown().window_size);
  onSlide(replayControl.input, "replay", saveReplay, () => shown().replay);
  listenDom(stateSelect, "change", () => save("optimizer_state", stateSelect.value), cleanups, shell);

  /** @param {string} action @param {Record<string, any>} [extra] */
  const press = (action, extra = {}) => {
    if (!kernel) {
      return;
    }
    // Pending slider values go first, so the kernel's traits match what the apply uses.
    savers.forEach((pending) => pending.flush());
    awaiting = true;
    syncButtons();
    model.send({ action, ...extra });
  };
  listenDom(applyButton, "click", () => press("apply", { settings: shown() }), cleanups, shell);
  listenDom(undoButton, "click", () => press("undo"), cleanups, shell);
  listenDom(commitButton, "click", () => press("commit"), cleanups, shell);
  listenDom(resetButton, "click", () => press("reset"), cleanups, shell);

  // The kernel acknowledges every button message, also a failed one.
  listen(
    model,
    "msg:custom",
    /** @param {any} content */ (content) => {
      if (content && content.event === "handled") {
        awaiting = false;
        syncButtons();
      }
    },
    cleanups,
    shell,
  );
  for (const name of ["busy", "status", "n_pending"]) {
    listen(model, `change:${name}`, syncButtons, cleanups, shell);
  }
  listen(model, "change:progress", syncButtons, cleanups, shell);
  for (const name of ["can_apply", "depth"]) {
    listen(model, `change:${name}`, syncButtons, cleanups, shell);
  }
  listen(model, "change:busy", drawRunning, cleanups, shell);
  listen(model, "change:running", drawRunning, cleanups, shell);
  listen(model, "change:next_window", () => { nextWindow.textContent = model.get("next_window") || ""; }, cleanups, shell);
  listen(model, "change:cards", drawCards, cleanups, shell);
  for (const name of ["history", "history_columns", "history_status", "history_settings", "metric"]) {
    listen(model, `change:${name}`, drawHistory, cleanups, shell);
  }
  for (const name of ["movers", "selected_user"]) {
    listen(model, `change:${name}`, drawMovers, cleanups, shell);
  }
  for (const name of ["lr", "steps", "window_size", "replay", "optimizer_state", "lr_min", "lr_max", "steps_max", "window_max", "window_unit", "sparse"]) {
    listen(
      model,
      `change:${name}`,
      () => {
        // A value from the kernel replaces the control, unless the user is still moving it.
        if (unsaved.size === 0) {
          syncControls();
        }
      },
      cleanups,
      shell,
    );
  }
  bindPythonError(model, shell, cleanups);

  try {
    drawAll();
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
