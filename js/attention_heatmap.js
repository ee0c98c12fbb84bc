// AttentionHeatmap front end: a query x key heatmap of one user's attention weights on a
// canvas. Controls pick the layer, head, window, overlay and user. Hovering shows a
// tooltip, a click pins a position, and a list shows what the last position attends to
// beside the top-k recommendations.
//
// With a kernel, Python sends only the visible slice (`matrix`) for the current layer,
// head and window. Users in `precomputed` carry their full (layers, heads, n, n) cube, so
// every control is answered locally, which is what the offline export relies on.

import {
  bindPythonError,
  createShell,
  formatNumber,
  h,
  hasKernel,
  listen,
  listenDom,
  readArray,
  showError,
  svg,
} from "./_runtime.js";

/**
 * @typedef {import("./_runtime.js").WidgetModel} WidgetModel
 * @typedef {import("./_runtime.js").Shell} Shell
 * @typedef {import("./_runtime.js").DecodedArray} DecodedArray
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
 * A user's history as Python sends it (`user_data`, or one entry of `precomputed`).
 * @typedef {object} UserPayload
 * @property {number} user
 * @property {number} length valid positions n
 * @property {number} truncated older items cut off by the model's max_len
 * @property {ArrayPayload} items int32 (n,)
 * @property {string[]} titles
 * @property {string[]} genres
 * @property {ArrayPayload} timestamps float64 (n,), unix seconds, NaN when unknown
 * @property {ArrayPayload} popularity int32 (n,)
 * @property {ArrayPayload} last_rows float32 (layers, heads, n)
 * @property {Recommendation[]} recommendations
 * @property {ArrayPayload} [cube] float32 (layers, heads, n, n), only in `precomputed`
 */

/**
 * The visible square of weights.
 * @typedef {object} Slice
 * @property {number} start first position on both axes
 * @property {number} size positions per axis
 * @property {(row: number, column: number) => number} at weight of window cell (row, column)
 * @property {(row: number) => number} before weight of a window row on keys before the window
 */

const MEAN_HEADS = -1;
const HEATMAP_PIXELS = 560;
const AXIS_MARGIN = 44;
const STRIP = 8;
const WINDOW_SIZES = [25, 50, 100, 200, 400];
const ROW_CHART_WIDTH = 560;
const ROW_CHART_HEIGHT = 60;

const HEATMAP_CSS = `
.rw-attention-heatmap .rw-heatmap-area { position: relative; display: inline-block; }
.rw-attention-heatmap canvas { display: block; cursor: crosshair; }
.rw-attention-heatmap .rw-tooltip { position: absolute; pointer-events: none; z-index: 10; max-width: 340px;
  background: var(--rw-bg); color: var(--rw-fg); border: 1px solid var(--rw-border); border-radius: 3px;
  padding: 4px 6px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.25); font-size: 0.92em; }
.rw-attention-heatmap .rw-tooltip[hidden] { display: none; }
.rw-attention-heatmap .rw-tooltip strong { display: block; }
.rw-attention-heatmap .rw-columns { display: flex; flex-wrap: wrap; gap: 24px; margin-top: 8px; }
.rw-attention-heatmap .rw-columns > div { flex: 1 1 280px; min-width: 260px; }
.rw-attention-heatmap ol { margin: 4px 0; padding-left: 22px; }
.rw-attention-heatmap li { margin: 2px 0; }
.rw-attention-heatmap li[data-testid="attention-last-item"] { cursor: pointer; }
.rw-attention-heatmap li[aria-selected="true"] { outline: 2px solid var(--rw-accent); outline-offset: 1px; }
.rw-attention-heatmap .rw-bar { display: inline-block; height: 8px; background: var(--rw-accent); margin-right: 6px; vertical-align: middle; }
.rw-attention-heatmap input[type="number"] { width: 6em; }
`;

/**
 * Create a labelled control element.
 * @template {"select" | "input"} K
 * @param {string} labelText
 * @param {K} tag
 * @param {Record<string, string>} attributes
 * @returns {{label: HTMLLabelElement, control: HTMLElementTagNameMap[K]}}
 */
function labelled(labelText, tag, attributes) {
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
function fillSelect(select, options, value) {
  const same =
    select.options.length === options.length &&
    options.every(([optionValue, text], index) => select.options[index].value === optionValue && select.options[index].text === text);
  if (!same) {
    select.replaceChildren(...options.map(([optionValue, text]) => h("option", { value: optionValue }, text)));
  }
  select.value = value;
}

/**
 * Return a CSS custom property of `element` resolved to a colour string.
 * @param {HTMLElement} element
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
function cssColor(element, name, fallback) {
  const value = getComputedStyle(element).getPropertyValue(name).trim();
  return value || fallback;
}

/**
 * Format a unix time in seconds as a UTC date, or "" when unknown.
 * @param {number} seconds
 * @returns {string}
 */
function formatTime(seconds) {
  if (!Number.isFinite(seconds)) {
    return "";
  }
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/**
 * Return the weights of one layer (one head, or the mean over heads) of a
 * (layers, heads, rows, columns) or (layers, heads, columns) array, as a function of the
 * trailing indices.
 * @param {DecodedArray} array
 * @param {number} layer
 * @param {number} head
 * @returns {(offset: number) => number} weight at a flat offset inside one head's plane
 */
function headPlane(array, layer, head) {
  const heads = array.shape[1];
  const planeSize = array.shape.slice(2).reduce((product, size) => product * size, 1);
  const layerOffset = layer * heads * planeSize;
  if (head !== MEAN_HEADS) {
    const base = layerOffset + head * planeSize;
    return (offset) => array.data[base + offset];
  }
  return (offset) => {
    let total = 0;
    for (let index = 0; index < heads; index += 1) {
      total += array.data[layerOffset + index * planeSize + offset];
    }
    return total / heads;
  };
}

/**
 * Clamp a requested window to the history length.
 * @param {number} length
 * @param {number} start
 * @param {number} size
 * @returns {{start: number, size: number}}
 */
function clampWindow(length, start, size) {
  const clampedSize = Math.max(1, Math.min(size, length));
  const clampedStart = Math.min(Math.max(start, 0), Math.max(length - clampedSize, 0));
  return { start: clampedStart, size: clampedSize };
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-attention-heatmap", "attention-heatmap");
  shell.root.append(h("style", {}, HEATMAP_CSS));
  const kernel = hasKernel(model);

  const userPick = labelled("User", "select", { "data-testid": "attention-user" });
  const userInput = labelled("User id", "input", { type: "number", min: "1", step: "1", "data-testid": "attention-user-input" });
  const layerPick = labelled("Layer", "select", { "data-testid": "attention-layer" });
  const headPick = labelled("Head", "select", { "data-testid": "attention-head" });
  const startInput = labelled("Window start", "input", { type: "number", min: "0", step: "1", "data-testid": "attention-window-start" });
  const sizePick = labelled("Window size", "select", { "data-testid": "attention-window-size" });
  const overlayPick = labelled("Overlay", "select", { "data-testid": "attention-overlay" });
  fillSelect(overlayPick.control, [["none", "none"], ["popularity", "item popularity"], ["recency", "recency"]], "none");
  if (!kernel) {
    userInput.control.disabled = true;
    userInput.control.title = "Needs a running kernel; the exported page offers the precomputed users only.";
  }
  const toolbar = h("div", { class: "rw-toolbar" });
  toolbar.append(userPick.label, userInput.label, layerPick.label, headPick.label, startInput.label, sizePick.label, overlayPick.label);

  const summary = h("p", { class: "rw-muted", "data-testid": "attention-summary" });
  const area = h("div", { class: "rw-heatmap-area" });
  const canvas = h("canvas", { "data-testid": "attention-canvas", role: "img" });
  const tooltip = h("div", { class: "rw-tooltip", "data-testid": "attention-tooltip" });
  tooltip.hidden = true;
  area.append(canvas, tooltip);
  const pinnedInfo = h("p", { "data-testid": "attention-pinned" });
  const rowChart = h("div", { "data-testid": "attention-row-chart" });
  const lastBox = h("div");
  const lastList = h("ol", { "data-testid": "attention-last-row" });
  lastBox.append(h("h4", {}, "What the last position attends to"), lastList);
  const recommendationBox = h("div");
  const recommendationList = h("ol", { "data-testid": "attention-recommendations" });
  recommendationBox.append(h("h4", {}, "Top-k recommendations"), recommendationList);
  const columns = h("div", { class: "rw-columns" });
  columns.append(lastBox, recommendationBox);
  shell.body.append(toolbar, summary, area, pinnedInfo, rowChart, columns);

  /** @param {string} name @param {any} value */
  const update = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };

  /** @type {{payload: UserPayload, slice: Slice | null, cellSize: number} | null} */
  let shown = null;

  /**
   * Return the payload of the current user: its precomputed entry, else `user_data`.
   * @returns {{payload: UserPayload | null, cube: DecodedArray | null}}
   */
  const currentPayload = () => {
    const user = Number(model.get("user"));
    const entries = /** @type {UserPayload[]} */ (model.get("precomputed") || []);
    const entry = entries.find((candidate) => candidate.user === user);
    if (entry !== undefined && entry.cube !== undefined) {
      return { payload: entry, cube: readArray(entry.cube) };
    }
    const data = /** @type {UserPayload | null} */ (model.get("user_data") || null);
    if (data !== null && data.user === user) {
      return { payload: data, cube: null };
    }
    return { payload: null, cube: null };
  };

  /**
   * Return the visible square for the current controls, or null while the kernel has not sent it.
   * @param {UserPayload} payload
   * @param {DecodedArray | null} cube
   * @returns {Slice | null}
   */
  const currentSlice = (payload, cube) => {
    const layer = Number(model.get("layer"));
    const head = Number(model.get("head"));
    const range = clampWindow(payload.length, Number(model.get("window_start")), Number(model.get("window_size")));
    if (cube !== null) {
      const n = payload.length;
      const plane = headPlane(cube, layer, head);
      return {
        ...range,
        at: (row, column) => plane((range.start + row) * n + range.start + column),
        before: (row) => {
          let total = 0;
          for (let column = 0; column < range.start; column += 1) {
            total += plane((range.start + row) * n + column);
          }
          return total;
        },
      };
    }
    const key = model.get("matrix_key") || {};
    const matrix = readArray(model.get("matrix"));
    const before = readArray(model.get("matrix_before"));
    const matches =
      key.user === payload.user && key.layer === layer && key.head === head && key.start === range.start && key.size === range.size;
    if (!matches || matrix === null || before === null) {
      return null;
    }
    return {
      ...range,
      at: (row, column) => matrix.data[row * matrix.shape[1] + column],
      before: (row) => before.data[row],
    };
  };

  /**
   * Draw the heatmap, its axes and overlay strips onto the canvas.
   * @param {UserPayload} payload
   * @param {Slice} slice
   * @returns {{max: number, cellSize: number}}
   */
  const drawCanvas = (payload, slice) => {
    const cellSize = Math.max(1, Math.floor(HEATMAP_PIXELS / slice.size));
    const side = cellSize * slice.size;
    const width = AXIS_MARGIN + side + 8;
    const height = AXIS_MARGIN + side + 8;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const context = canvas.getContext("2d");
    if (context === null) {
      throw new Error("the browser gave no 2D canvas context");
    }
    context.setTransform(ratio, 0, 0, ratio, 0, 0);

    const background = cssColor(shell.root, "--rw-bg", "#ffffff");
    const foreground = cssColor(shell.root, "--rw-fg2", "#59636e");
    const accent = cssColor(shell.root, "--rw-accent", "#1f6feb");
    context.fillStyle = background;
    context.fillRect(0, 0, width, height);

    let max = 0;
    for (let row = 0; row < slice.size; row += 1) {
      for (let column = 0; column < slice.size; column += 1) {
        const value = slice.at(row, column);
        if (Number.isFinite(value) && value > max) {
          max = value;
        }
      }
    }
    context.fillStyle = accent;
    for (let row = 0; row < slice.size; row += 1) {
      for (let column = 0; column < slice.size; column += 1) {
        const value = slice.at(row, column);
        if (!(value > 0) || max <= 0) {
          continue;
        }
        context.globalAlpha = Math.min(1, value / max);
        context.fillRect(AXIS_MARGIN + column * cellSize, AXIS_MARGIN + row * cellSize, cellSize, cellSize);
      }
    }
    context.globalAlpha = 1;

    // Overlay strips just outside the plot: popularity (log count) or recency (newer is darker).
    const overlay = String(model.get("overlay") || "none");
    const strength = overlayStrengths(payload, overlay);
    if (strength !== null) {
      context.fillStyle = overlay === "popularity" ? "#f58518" : "#54a24b";
      for (let offset = 0; offset < slice.size; offset += 1) {
        const value = strength[slice.start + offset];
        if (!(value > 0)) {
          continue;
        }
        context.globalAlpha = value;
        context.fillRect(AXIS_MARGIN + offset * cellSize, AXIS_MARGIN - STRIP - 2, cellSize, STRIP);
        context.fillRect(AXIS_MARGIN - STRIP - 2, AXIS_MARGIN + offset * cellSize, STRIP, cellSize);
      }
      context.globalAlpha = 1;
    }

    // Position ticks on both axes, about ten per axis.
    context.fillStyle = foreground;
    context.font = "10px sans-serif";
    const every = Math.max(1, Math.ceil(slice.size / 10));
    for (let offset = 0; offset < slice.size; offset += every) {
      const label = String(slice.start + offset);
      const middle = AXIS_MARGIN + offset * cellSize + cellSize / 2;
      context.textAlign = "center";
      context.fillText(label, middle, AXIS_MARGIN - STRIP - 6);
      context.textAlign = "right";
      context.fillText(label, AXIS_MARGIN - STRIP - 4, middle + 3);
    }
    context.textAlign = "left";
    context.fillText("key position \u2192", AXIS_MARGIN, 10);

    // Outline the pinned position's row and column when it lies in the window.
    const pinned = Number(model.get("pinned"));
    if (pinned >= slice.start && pinned < slice.start + slice.size) {
      const offset = pinned - slice.start;
      context.strokeStyle = cssColor(shell.root, "--rw-fg", "#1f2328");
      context.lineWidth = 1.5;
      context.strokeRect(AXIS_MARGIN, AXIS_MARGIN + offset * cellSize, side, cellSize);
      context.strokeRect(AXIS_MARGIN + offset * cellSize, AXIS_MARGIN, cellSize, side);
    }
    return { max, cellSize };
  };

  /**
   * Return a strength in [0, 1] per position for the overlay, or null for none.
   * @param {UserPayload} payload
   * @param {string} overlay
   * @returns {number[] | null}
   */
  const overlayStrengths = (payload, overlay) => {
    if (overlay === "popularity") {
      const popularity = readArray(payload.popularity);
      if (popularity === null) {
        return null;
      }
      const values = Array.from(popularity.data, (count) => Math.log1p(count));
      const top = Math.max(...values, 1e-9);
      return values.map((value) => value / top);
    }
    if (overlay === "recency") {
      const times = readArray(payload.timestamps);
      if (times === null) {
        return null;
      }
      const known = Array.from(times.data).filter((value) => Number.isFinite(value));
      if (known.length === 0) {
        return null;
      }
      const first = Math.min(...known);
      const last = Math.max(...known);
      const span = last - first || 1;
      return Array.from(times.data, (value) => (Number.isFinite(value) ? 0.15 + (0.85 * (value - first)) / span : 0));
    }
    return null;
  };

  /**
   * Describe one position of the history: title, genres, time and popularity.
   * @param {UserPayload} payload
   * @param {number} position
   * @returns {string}
   */
  const describe = (payload, position) => {
    const items = readArray(payload.items);
    const times = readArray(payload.timestamps);
    const popularity = readArray(payload.popularity);
    const parts = [`#${position}`, `item ${items === null ? "?" : items.data[position]}`];
    const genres = payload.genres[position];
    if (genres) {
      parts.push(genres.split("|").join(", "));
    }
    const time = times === null ? "" : formatTime(times.data[position]);
    if (time) {
      parts.push(time);
    }
    if (popularity !== null) {
      parts.push(`${popularity.data[position]} training interactions`);
    }
    return parts.join(" \u00b7 ");
  };

  /** @param {number} position */
  const pin = (position) => {
    const current = Number(model.get("pinned"));
    const next = current === position ? -1 : position;
    if (next >= 0 && shown !== null) {
      const size = Math.min(Number(model.get("window_size")), shown.payload.length);
      const start = Number(model.get("window_start"));
      if (next < start || next >= start + size) {
        update("window_start", clampWindow(shown.payload.length, next - Math.floor(size / 2), size).start);
      }
    }
    update("pinned", next);
  };

  const draw = () => {
    const nLayers = Number(model.get("n_layers"));
    const nHeads = Number(model.get("n_heads"));
    const layer = Number(model.get("layer"));
    const head = Number(model.get("head"));
    const user = Number(model.get("user"));

    const entries = /** @type {UserPayload[]} */ (model.get("precomputed") || []);
    const offered = new Set(/** @type {number[]} */ (model.get("users") || []));
    for (const entry of entries) {
      offered.add(entry.user);
    }
    offered.add(user);
    const userIds = Array.from(offered);
    const available = kernel ? userIds : userIds.filter((id) => entries.some((entry) => entry.user === id));
    fillSelect(userPick.control, (available.length ? available : [user]).map((id) => [String(id), `user ${id}`]), String(user));
    if (document.activeElement !== userInput.control) {
      userInput.control.value = String(user);
    }
    fillSelect(layerPick.control, Array.from({ length: nLayers }, (_, index) => [String(index), String(index)]), String(layer));
    fillSelect(
      headPick.control,
      [...Array.from({ length: nHeads }, (_, index) => /** @type {[string, string]} */ ([String(index), String(index)])), [String(MEAN_HEADS), "mean over heads"]],
      String(head),
    );
    overlayPick.control.value = String(model.get("overlay") || "none");

    const { payload, cube } = currentPayload();
    if (payload === null) {
      summary.textContent = kernel
        ? `Loading user ${user}\u2026`
        : `User ${user} was not precomputed for this page; pick one of the listed users.`;
      shown = null;
      return;
    }
    const windowSize = Number(model.get("window_size"));
    const sizes = Array.from(new Set([...WINDOW_SIZES.filter((size) => size < payload.length), Math.min(windowSize, payload.length), payload.length]))
      .filter((size) => size >= 1)
      .sort((a, b) => a - b);
    fillSelect(sizePick.control, sizes.map((size) => [String(size), size === payload.length ? `${size} (all)` : String(size)]), String(Math.min(windowSize, payload.length)));
    const slice = currentSlice(payload, cube);
    const range = clampWindow(payload.length, Number(model.get("window_start")), windowSize);
    startInput.control.max = String(Math.max(payload.length - range.size, 0));
    if (document.activeElement !== startInput.control) {
      startInput.control.value = String(range.start);
    }

    const headText = head === MEAN_HEADS ? "mean over heads" : `head ${head}`;
    const cut = payload.truncated > 0 ? ` (${payload.truncated} older cut by max_len)` : "";
    const base = `User ${payload.user} \u00b7 ${payload.length} items${cut} \u00b7 layer ${layer} \u00b7 ${headText} \u00b7 positions ${range.start}\u2013${range.start + range.size - 1}`;
    if (slice === null) {
      summary.textContent = `${base} \u00b7 loading\u2026`;
      shown = null;
    } else {
      const { max, cellSize } = drawCanvas(payload, slice);
      shown = { payload, slice, cellSize };
      summary.textContent = `${base} \u00b7 colour scaled to the max weight ${formatNumber(max)}`;
      canvas.dataset.user = String(payload.user);
      canvas.dataset.layer = String(layer);
      canvas.dataset.head = String(head);
      canvas.dataset.start = String(slice.start);
      canvas.dataset.size = String(slice.size);
      canvas.dataset.max = String(max);
      canvas.setAttribute("aria-label", `Attention weights, ${base}`);
    }

    const pinned = Number(model.get("pinned"));
    pinnedInfo.textContent =
      pinned >= 0 && pinned < payload.length
        ? `Pinned: ${payload.titles[pinned]} (${describe(payload, pinned)}). Click it again to unpin.`
        : "Click a cell to pin its key item's row and column.";

    // The last query's row over the whole history, for the shown layer and head.
    const rows = readArray(payload.last_rows);
    /** @type {number[]} */
    const lastRow = [];
    if (rows !== null) {
      const plane = headPlane(rows, layer, head);
      for (let position = 0; position < payload.length; position += 1) {
        lastRow.push(plane(position));
      }
    }
    drawRowChart(lastRow, range);

    const k = Number(model.get("k"));
    const recommendations = payload.recommendations.slice(0, k);
    const order = lastRow.map((weight, position) => ({ weight, position })).sort((a, b) => b.weight - a.weight).slice(0, Math.max(k, recommendations.length));
    const top = order.length ? order[0].weight : 0;
    lastList.replaceChildren(
      ...order.map(({ weight, position }) => {
        const entry = h("li", { "data-testid": "attention-last-item", "data-position": String(position), "aria-selected": String(position === pinned), tabindex: "0" });
        const bar = h("span", { class: "rw-bar" });
        bar.style.width = `${top > 0 ? Math.round((60 * weight) / top) : 0}px`;
        entry.append(bar, document.createTextNode(`${formatNumber(weight, 3)} \u00b7 #${position} ${payload.titles[position]}`));
        entry.title = describe(payload, position);
        entry.addEventListener("click", () => pin(position));
        entry.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            pin(position);
          }
        });
        return entry;
      }),
    );
    recommendationList.replaceChildren(
      ...recommendations.map((recommendation) => {
        const entry = h("li", { "data-testid": "attention-recommendation", "data-item": String(recommendation.item) }, recommendation.title);
        entry.title = `item ${recommendation.item}${recommendation.genres ? ` \u00b7 ${recommendation.genres.split("|").join(", ")}` : ""} \u00b7 score ${formatNumber(recommendation.score, 3)}`;
        return entry;
      }),
    );
  };

  /**
   * Draw the last query's weights over the whole history, with the window shaded.
   * @param {number[]} weights
   * @param {{start: number, size: number}} range
   */
  const drawRowChart = (weights, range) => {
    const n = weights.length;
    const chart = svg("svg", { viewBox: `0 0 ${ROW_CHART_WIDTH} ${ROW_CHART_HEIGHT}`, width: ROW_CHART_WIDTH, height: ROW_CHART_HEIGHT, role: "img", "aria-label": "Last position's attention over the whole history" });
    if (n > 0) {
      const step = ROW_CHART_WIDTH / n;
      const top = Math.max(...weights, 1e-12);
      chart.append(svg("rect", { x: range.start * step, y: 0, width: range.size * step, height: ROW_CHART_HEIGHT - 12, fill: "var(--rw-bg2)" }));
      const path = weights.map((weight, position) => `${position === 0 ? "M" : "L"}${(position + 0.5) * step},${(ROW_CHART_HEIGHT - 14) * (1 - weight / top) + 2}`).join("");
      chart.append(svg("path", { d: path, fill: "none", stroke: "var(--rw-accent)", "stroke-width": 1.5 }));
      chart.append(svg("text", { x: 0, y: ROW_CHART_HEIGHT - 1 }, "oldest"), svg("text", { x: ROW_CHART_WIDTH, y: ROW_CHART_HEIGHT - 1, "text-anchor": "end" }, "last position"));
    }
    rowChart.replaceChildren(chart);
  };

  /**
   * Return the window cell under a mouse event, or null outside the plot.
   * @param {MouseEvent} event
   * @returns {{row: number, column: number} | null}
   */
  const cellAt = (event) => {
    if (shown === null || shown.slice === null) {
      return null;
    }
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left - AXIS_MARGIN;
    const y = event.clientY - box.top - AXIS_MARGIN;
    const column = Math.floor(x / shown.cellSize);
    const row = Math.floor(y / shown.cellSize);
    if (x < 0 || y < 0 || row >= shown.slice.size || column >= shown.slice.size) {
      return null;
    }
    return { row, column };
  };

  listenDom(
    canvas,
    "mousemove",
    (event) => {
      const cell = cellAt(event);
      if (cell === null || shown === null || shown.slice === null) {
        tooltip.hidden = true;
        return;
      }
      const { payload, slice } = shown;
      const query = slice.start + cell.row;
      const key = slice.start + cell.column;
      tooltip.replaceChildren(
        h("strong", { "data-testid": "attention-tooltip-title" }, payload.titles[key]),
        h("div", {}, describe(payload, key)),
        h("div", {}, `weight ${formatNumber(slice.at(cell.row, cell.column))} from query #${query}: ${payload.titles[query]}`),
        h("div", { class: "rw-muted" }, `weight of this query on keys before the window: ${formatNumber(slice.before(cell.row))}`),
      );
      tooltip.hidden = false;
      const areaBox = area.getBoundingClientRect();
      tooltip.style.left = `${event.clientX - areaBox.left + 14}px`;
      tooltip.style.top = `${event.clientY - areaBox.top + 14}px`;
    },
    cleanups,
    shell,
  );
  listenDom(canvas, "mouseleave", () => (tooltip.hidden = true), cleanups, shell);
  listenDom(
    canvas,
    "click",
    (event) => {
      const cell = cellAt(event);
      if (cell !== null && shown !== null && shown.slice !== null) {
        pin(shown.slice.start + cell.column);
      }
    },
    cleanups,
    shell,
  );

  listenDom(userPick.control, "change", () => update("user", Number(userPick.control.value)), cleanups, shell);
  listenDom(
    userInput.control,
    "change",
    () => {
      const value = Number(userInput.control.value);
      if (Number.isInteger(value) && value > 0) {
        update("user", value);
      }
    },
    cleanups,
    shell,
  );
  listenDom(layerPick.control, "change", () => update("layer", Number(layerPick.control.value)), cleanups, shell);
  listenDom(headPick.control, "change", () => update("head", Number(headPick.control.value)), cleanups, shell);
  listenDom(overlayPick.control, "change", () => update("overlay", overlayPick.control.value), cleanups, shell);
  listenDom(
    startInput.control,
    "change",
    () => {
      const length = shown === null ? Infinity : shown.payload.length;
      const size = Number(model.get("window_size"));
      update("window_start", clampWindow(length, Math.round(Number(startInput.control.value) || 0), size).start);
    },
    cleanups,
    shell,
  );
  listenDom(
    sizePick.control,
    "change",
    () => {
      const size = Number(sizePick.control.value);
      const length = shown === null ? size : shown.payload.length;
      // Keep the window's last position in place, so growing the window reveals older items.
      const end = clampWindow(length, Number(model.get("window_start")), Number(model.get("window_size")));
      model.set("window_size", size);
      update("window_start", clampWindow(length, end.start + end.size - size, size).start);
    },
    cleanups,
    shell,
  );

  const names = ["user", "users", "layer", "head", "n_layers", "n_heads", "window_start", "window_size", "pinned", "overlay", "k", "user_data", "matrix", "matrix_before", "matrix_key", "precomputed"];
  for (const name of names) {
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
