// Shared helpers of the recwidgets front ends: binary arrays, error boxes, theming,
// debouncing and small SVG chart pieces.
//
// anywidget loads one ESM string per widget, so this file is never imported at run time.
// `recwidgets.widgets.base.load_esm` inlines it in front of each widget file, dropping
// the `export` keywords here and the `import ... from "./_runtime.js"` line there.
// The import stays in the widget files so that tsc and eslint see the real types.
// Widget files must therefore not declare a top-level name that this file declares.

/**
 * @callback Listener
 * @param {...any} args
 * @returns {void}
 */

/**
 * The part of the anywidget model interface that the widgets use.
 * @typedef {object} WidgetModel
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} set
 * @property {(event: string, callback: Listener) => void} on
 * @property {(event: string, callback: Listener) => void} off
 * @property {() => void} save_changes
 * @property {(content: any, callbacks?: any, buffers?: ArrayBuffer[]) => void} send
 */

/**
 * A numeric array as the Python side sends it: metadata in JSON, the values in a
 * binary buffer that arrives as a DataView.
 * @typedef {object} ArrayPayload
 * @property {string} dtype
 * @property {number[]} shape
 * @property {DataView | ArrayBuffer | Uint8Array} buffer
 */

/**
 * @typedef {Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array} NumericArray
 */

/**
 * An array decoded from its buffer, row-major.
 * @typedef {object} DecodedArray
 * @property {NumericArray} data
 * @property {number[]} shape
 */

/**
 * The parts of the shell that every widget draws into.
 * @typedef {object} Shell
 * @property {HTMLDivElement} root
 * @property {HTMLDivElement} body
 * @property {HTMLDivElement} jsError
 * @property {HTMLDivElement} pythonError
 */

/** @type {Record<string, new (buffer: ArrayBuffer, byteOffset: number, length: number) => NumericArray>} */
const TYPED_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
};

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * Decode an array payload into a typed array view over its buffer (copying only when
 * the buffer offset is not aligned to the item size).
 * @param {ArrayPayload | null | undefined} payload
 * @returns {DecodedArray | null} null when the trait is unset
 */
export function readArray(payload) {
  if (payload === null || payload === undefined) {
    return null;
  }
  const Constructor = TYPED_ARRAYS[payload.dtype];
  if (Constructor === undefined) {
    throw new Error(`Unsupported array dtype ${JSON.stringify(payload.dtype)}; expected one of ${Object.keys(TYPED_ARRAYS).join(", ")}.`);
  }
  const source = payload.buffer;
  /** @type {Uint8Array} */
  let bytes;
  if (source instanceof DataView || source instanceof Uint8Array) {
    bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  } else if (source instanceof ArrayBuffer) {
    bytes = new Uint8Array(source);
  } else {
    throw new Error("Array payload has no binary buffer; it was probably sent as JSON.");
  }
  const itemSize = /** @type {any} */ (Constructor).BYTES_PER_ELEMENT;
  if (bytes.byteOffset % itemSize !== 0) {
    bytes = bytes.slice();
  }
  const expected = payload.shape.reduce((product, size) => product * size, 1);
  if (bytes.byteLength !== expected * itemSize) {
    throw new Error(`Array buffer has ${bytes.byteLength} bytes; shape ${JSON.stringify(payload.shape)} of ${payload.dtype} needs ${expected * itemSize}.`);
  }
  const data = new Constructor(/** @type {ArrayBuffer} */ (bytes.buffer), bytes.byteOffset, expected);
  return { data, shape: payload.shape.slice() };
}

/**
 * Return the flat row-major offset of an index into an array of the given shape.
 * @param {number[]} shape
 * @param {number[]} index
 * @returns {number}
 */
export function flatIndex(shape, index) {
  let offset = 0;
  for (let axis = 0; axis < shape.length; axis += 1) {
    offset = offset * shape[axis] + index[axis];
  }
  return offset;
}

/**
 * Return whether a kernel is behind the model. The offline export sets `_kernel` to
 * false, so controls that need Python can be disabled there.
 * @param {WidgetModel} model
 * @returns {boolean}
 */
export function hasKernel(model) {
  return model.get("_kernel") !== false;
}

/**
 * Subscribe to a model event and register the matching `model.off` for cleanup.
 * Errors thrown by the callback are shown in the shell instead of vanishing.
 * @param {WidgetModel} model
 * @param {string} event
 * @param {Listener} callback
 * @param {Array<() => void>} cleanups
 * @param {Shell} shell
 */
export function listen(model, event, callback, cleanups, shell) {
  /** @type {Listener} */
  const guarded = (...args) => {
    try {
      callback(...args);
    } catch (error) {
      showError(shell, error);
    }
  };
  model.on(event, guarded);
  cleanups.push(() => model.off(event, guarded));
}

/**
 * Add a DOM event listener and register its removal for cleanup.
 * @param {EventTarget} target
 * @param {string} type
 * @param {(event: any) => void} callback
 * @param {Array<() => void>} cleanups
 * @param {Shell} shell
 */
export function listenDom(target, type, callback, cleanups, shell) {
  /** @param {Event} event */
  const guarded = (event) => {
    try {
      callback(event);
    } catch (error) {
      showError(shell, error);
    }
  };
  target.addEventListener(type, guarded);
  cleanups.push(() => target.removeEventListener(type, guarded));
}

/**
 * Return a debounced function that runs `callback` once `waitMs` passed without calls.
 * @template {any[]} A
 * @param {(...args: A) => void} callback
 * @param {number} waitMs
 * @returns {((...args: A) => void) & {cancel: () => void, flush: () => void}}
 */
export function debounce(callback, waitMs) {
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** @type {A | null} */
  let pending = null;
  /** @param {A} args */
  const debounced = (...args) => {
    pending = args;
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(run, waitMs);
  };
  const run = () => {
    timer = null;
    if (pending !== null) {
      const args = pending;
      pending = null;
      callback(...args);
    }
  };
  debounced.cancel = () => {
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = null;
    pending = null;
  };
  debounced.flush = () => {
    if (timer !== null) {
      clearTimeout(timer);
    }
    run();
  };
  return debounced;
}

/**
 * Create an HTML element; `text` goes in through textContent, never as markup.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} [attributes]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attributes = {}, text) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    element.setAttribute(name, value);
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

/**
 * Create an SVG element with attributes; `text` goes in through textContent.
 * @param {string} tag
 * @param {Record<string, string | number>} [attributes]
 * @param {string} [text]
 * @returns {SVGElement}
 */
export function svg(tag, attributes = {}, text) {
  const element = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  for (const [name, value] of Object.entries(attributes)) {
    element.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

// Colours come from JupyterLab's theme variables, so light and dark themes both work.
// The fallbacks apply in a plain page, where the offline export defines the variables too.
const THEME_CSS = `
.rw-root {
  --rw-fg: var(--jp-ui-font-color1, #1f2328);
  --rw-fg2: var(--jp-ui-font-color2, #59636e);
  --rw-bg: var(--jp-layout-color1, #ffffff);
  --rw-bg2: var(--jp-layout-color2, #f2f4f7);
  --rw-border: var(--jp-border-color2, #d1d9e0);
  --rw-accent: var(--jp-brand-color1, #1f6feb);
  --rw-error: var(--jp-error-color1, #cf222e);
  --rw-warn: var(--jp-warn-color1, #9a6700);
  --rw-series-0: var(--jp-brand-color1, #4c78a8);
  --rw-series-1: #f58518;
  --rw-series-2: #54a24b;
  --rw-series-3: #e45756;
  --rw-series-4: #b279a2;
  --rw-series-5: #72b7b2;
  font-family: var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", sans-serif);
  font-size: var(--jp-ui-font-size1, 13px);
  color: var(--rw-fg);
  background: var(--rw-bg);
  padding: 8px;
  box-sizing: border-box;
  max-width: 100%;
}
.rw-root * { box-sizing: border-box; }
.rw-root .rw-error { border: 1px solid var(--rw-error); color: var(--rw-error); padding: 6px 8px; margin: 4px 0; white-space: pre-wrap; border-radius: 3px; }
.rw-root .rw-error[hidden] { display: none; }
.rw-root .rw-toolbar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 4px 0 8px; }
.rw-root label { color: var(--rw-fg2); display: inline-flex; gap: 4px; align-items: center; }
.rw-root select, .rw-root button, .rw-root input { font: inherit; color: var(--rw-fg); background: var(--rw-bg); border: 1px solid var(--rw-border); border-radius: 3px; padding: 2px 6px; }
.rw-root button:disabled, .rw-root select:disabled, .rw-root input:disabled { opacity: 0.55; cursor: not-allowed; }
.rw-root table { border-collapse: collapse; margin: 4px 0 8px; }
.rw-root th, .rw-root td { border-bottom: 1px solid var(--rw-border); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
.rw-root td.rw-num { text-align: right; font-variant-numeric: tabular-nums; }
.rw-root th { color: var(--rw-fg2); font-weight: 600; }
.rw-root .rw-muted { color: var(--rw-fg2); }
.rw-root svg { display: block; max-width: 100%; height: auto; overflow: visible; }
.rw-root svg text { fill: var(--rw-fg2); font-size: 11px; }
.rw-root svg .rw-axis line, .rw-root svg .rw-axis path { stroke: var(--rw-border); }
`;

/**
 * Replace the content of `el` with the widget shell: a themed root, a box for
 * front-end errors, a box for errors of Python callbacks, and a body to draw into.
 * @param {HTMLElement} el
 * @param {string} className
 * @param {string} testId
 * @returns {Shell}
 */
export function createShell(el, className, testId) {
  const root = h("div", { class: `rw-root ${className}`, "data-testid": testId });
  const style = h("style", {}, THEME_CSS);
  const jsError = h("div", { class: "rw-error", "data-testid": "rw-error", role: "alert" });
  jsError.hidden = true;
  const pythonError = h("div", { class: "rw-error", "data-testid": "rw-python-error", role: "alert" });
  pythonError.hidden = true;
  const body = h("div", { class: "rw-body" });
  root.append(style, pythonError, jsError, body);
  el.replaceChildren(root);
  return { root, body, jsError, pythonError };
}

/**
 * Show a front-end error inside the widget and log it to the console.
 * @param {Shell} shell
 * @param {unknown} error
 */
export function showError(shell, error) {
  console.error("recwidgets: rendering failed", error);
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  shell.jsError.textContent = `Display error: ${message}`;
  shell.jsError.hidden = false;
}

/**
 * Keep the Python-error box in sync with the `python_error` trait.
 * @param {WidgetModel} model
 * @param {Shell} shell
 * @param {Array<() => void>} cleanups
 */
export function bindPythonError(model, shell, cleanups) {
  const update = () => {
    const message = model.get("python_error") || "";
    shell.pythonError.textContent = message ? `Python error: ${message}` : "";
    shell.pythonError.hidden = !message;
  };
  listen(model, "change:python_error", update, cleanups, shell);
  update();
}

/**
 * Format a metric value for display; NaN and missing values become an en dash.
 * @param {number | null | undefined} value
 * @param {number} [digits]
 * @returns {string}
 */
export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return "\u2013";
  }
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) {
    return value.toExponential(2);
  }
  return value.toFixed(digits);
}

/**
 * Return about `count` round tick values covering [low, high].
 * @param {number} low
 * @param {number} high
 * @param {number} [count]
 * @returns {number[]}
 */
export function niceTicks(low, high, count = 5) {
  if (!Number.isFinite(low) || !Number.isFinite(high)) {
    return [];
  }
  if (high === low) {
    return [low];
  }
  const rough = (high - low) / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  const fraction = rough / power;
  // Thresholds are the geometric means of 1, 2, 5 and 10, so the count stays near `count`.
  const step = (fraction >= Math.sqrt(50) ? 10 : fraction >= Math.sqrt(10) ? 5 : fraction >= Math.sqrt(2) ? 2 : 1) * power;
  const ticks = [];
  for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) {
    ticks.push(Number(tick.toPrecision(12)));
  }
  return ticks;
}

/**
 * Return a linear map from a data interval onto a pixel interval.
 * @param {[number, number]} domain
 * @param {[number, number]} range
 * @returns {(value: number) => number}
 */
export function linearScale(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/**
 * Draw horizontal grid lines with tick labels on the left of a plot area.
 * @param {SVGElement} parent
 * @param {number[]} ticks
 * @param {(value: number) => number} y
 * @param {number} left
 * @param {number} right
 */
export function drawYAxis(parent, ticks, y, left, right) {
  const axis = svg("g", { class: "rw-axis" });
  for (const tick of ticks) {
    const position = y(tick);
    axis.append(svg("line", { x1: left, x2: right, y1: position, y2: position, "stroke-width": 1 }));
    axis.append(svg("text", { x: left - 6, y: position + 4, "text-anchor": "end" }, formatNumber(tick, tickDigits(ticks))));
  }
  parent.append(axis);
}

/**
 * Return how many decimals the labels of evenly spaced ticks need.
 * @param {number[]} ticks
 * @returns {number}
 */
function tickDigits(ticks) {
  if (ticks.length < 2) {
    return 3;
  }
  const step = Math.abs(ticks[1] - ticks[0]);
  return Math.max(0, Math.min(6, Math.ceil(-Math.log10(step) + 1e-9)));
}

/**
 * Return the CSS colour of the i-th data series.
 * @param {number} index
 * @returns {string}
 */
export function seriesColor(index) {
  return `var(--rw-series-${index % 6})`;
}
