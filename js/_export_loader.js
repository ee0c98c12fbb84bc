// Inline loader of the offline HTML export (recwidgets.export.save_html).
//
// The page holds the standard widget-state script (application/vnd.jupyter.widget-state+json,
// buffers base64-encoded) and one widget-view script per view. This loader decodes the
// buffers into DataViews, imports each widget's ESM from a Blob URL (identical ESM is
// stored once per page), and calls `render` with a stand-in model that has no kernel
// behind it: `set` updates the local state and fires change events, `save_changes` and
// `send` do nothing, and `get("_kernel")` is false. Vega charts, when the page has any,
// are drawn with the one Vega bundle stored in the page.
//
// Sets data-recwidgets-ready="true" on <html> when every view has rendered, and
// data-recwidgets-errors to the number of views that failed.

const STATE_MIME = "application/vnd.jupyter.widget-state+json";
const VIEW_MIME = "application/vnd.jupyter.widget-view+json";

/**
 * @typedef {{path: Array<string | number>, encoding?: string, data: string}} BufferEntry
 * @typedef {{state: Record<string, any>, buffers?: BufferEntry[], recwidgets_esm?: string, recwidgets_css?: string}} ModelEntry
 * @typedef {{esm: Record<string, string>, css: Record<string, string>, vega: string | null, charts: Record<string, any>}} PageModules
 * @typedef {(...args: any[]) => void} Listener
 */

/**
 * Decode base64 text into a fresh ArrayBuffer.
 * @param {string} text
 * @returns {ArrayBuffer}
 */
function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) {
    bytes[index] = binary.charCodeAt(index);
  }
  return bytes.buffer;
}

/**
 * Put each decoded buffer into the state at its path, as a DataView (what ipywidgets does).
 * @param {Record<string, any>} state
 * @param {BufferEntry[]} buffers
 */
function putBuffers(state, buffers) {
  for (const entry of buffers) {
    /** @type {any} */
    let target = state;
    for (const key of entry.path.slice(0, -1)) {
      target = target[key];
    }
    target[entry.path[entry.path.length - 1]] = new DataView(decodeBase64(entry.data));
  }
}

/**
 * Create a model stand-in over a local copy of one widget's state.
 * @param {Record<string, any>} state
 */
function createModel(state) {
  /** @type {Map<string, Set<Listener>>} */
  const listeners = new Map();
  /** @param {string} event @param {...any} args */
  const emit = (event, ...args) => {
    for (const callback of Array.from(listeners.get(event) ?? [])) {
      callback(...args);
    }
  };
  return {
    /** @param {string} name */
    get(name) {
      return state[name];
    },
    /** @param {string} name @param {any} value */
    set(name, value) {
      const previous = state[name];
      state[name] = value;
      if (previous !== value) {
        emit(`change:${name}`, null, value);
        emit("change");
      }
    },
    /** @param {string} event @param {Listener} callback */
    on(event, callback) {
      if (!listeners.has(event)) {
        listeners.set(event, new Set());
      }
      listeners.get(event)?.add(callback);
    },
    /** @param {string} [event] @param {Listener} [callback] */
    off(event, callback) {
      if (event === undefined) {
        listeners.clear();
      } else if (callback === undefined) {
        listeners.delete(event);
      } else {
        listeners.get(event)?.delete(callback);
      }
    },
    save_changes() {},
    send() {
      console.info("recwidgets: this page has no kernel; a message to Python was dropped.");
    },
    widget_manager: {},
  };
}

/**
 * Show a failure inside a view container as text.
 * @param {HTMLElement} container
 * @param {unknown} error
 */
function showFailure(container, error) {
  console.error("recwidgets: a widget failed to render", error);
  const box = document.createElement("div");
  box.className = "rw-export-error";
  box.setAttribute("role", "alert");
  box.setAttribute("data-testid", "rw-export-error");
  box.textContent = `This widget could not be displayed: ${error instanceof Error ? error.message : String(error)}`;
  container.append(box);
}

/**
 * Read and parse the JSON content of a script element.
 * @param {string} selector
 * @returns {any}
 */
function readJson(selector) {
  const element = document.querySelector(selector);
  return element === null ? null : JSON.parse(element.textContent || "null");
}

/**
 * Import module source text through a Blob URL (allowed from file:// pages).
 * @param {string} source
 * @returns {Promise<any>}
 */
async function importSource(source) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return await import(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function main() {
  const root = document.documentElement;
  let failures = 0;
  const widgetState = readJson(`script[type="${STATE_MIME}"]`) ?? { state: {} };
  /** @type {PageModules} */
  const modules = readJson("#recwidgets-modules") ?? { esm: {}, css: {}, vega: null, charts: {} };

  /** @type {Map<string, Promise<any>>} */
  const loaded = new Map();
  /** @param {string} hash */
  const loadWidget = (hash) => {
    let promise = loaded.get(hash);
    if (promise === undefined) {
      const source = modules.esm[hash];
      promise = source === undefined ? Promise.reject(new Error(`ESM ${hash} is missing from the page`)) : importSource(source);
      loaded.set(hash, promise);
    }
    return promise;
  };

  /** @type {Set<string>} */
  const styled = new Set();
  /** @type {Map<string, ReturnType<typeof createModel>>} */
  const models = new Map();

  for (const viewScript of Array.from(document.querySelectorAll(`script[type="${VIEW_MIME}"]`))) {
    const container = document.createElement("div");
    container.className = "rw-view";
    viewScript.before(container);
    try {
      const view = JSON.parse(viewScript.textContent || "{}");
      container.dataset.modelId = view.model_id;
      /** @type {ModelEntry | undefined} */
      const entry = widgetState.state[view.model_id];
      if (entry === undefined) {
        throw new Error(`no state for widget ${view.model_id}`);
      }
      const cssHash = entry.recwidgets_css;
      if (cssHash && !styled.has(cssHash) && modules.css[cssHash] !== undefined) {
        const style = document.createElement("style");
        style.textContent = modules.css[cssHash];
        document.head.append(style);
        styled.add(cssHash);
      }
      let model = models.get(view.model_id);
      const module = await loadWidget(entry.recwidgets_esm ?? "");
      let widget = module.default;
      if (typeof widget === "function") {
        widget = await widget();
      }
      if (model === undefined) {
        putBuffers(entry.state, entry.buffers ?? []);
        model = createModel(entry.state);
        models.set(view.model_id, model);
        if (typeof widget.initialize === "function") {
          await widget.initialize({ model });
        }
      }
      await widget.render({ model, el: container });
    } catch (error) {
      failures += 1;
      showFailure(container, error);
    }
  }

  const chartBoxes = Array.from(document.querySelectorAll("div.rw-vega[data-chart-id]"));
  if (chartBoxes.length > 0) {
    try {
      if (modules.vega === null) {
        throw new Error("the page has charts but no Vega bundle");
      }
      await importSource(modules.vega);
      const embed = /** @type {any} */ (window).vegaEmbed;
      for (const box of chartBoxes) {
        const spec = modules.charts[/** @type {HTMLElement} */ (box).dataset.chartId ?? ""];
        try {
          await embed(box, spec, { actions: false, renderer: "svg" });
        } catch (error) {
          failures += 1;
          showFailure(/** @type {HTMLElement} */ (box), error);
        }
      }
    } catch (error) {
      failures += chartBoxes.length;
      for (const box of chartBoxes) {
        showFailure(/** @type {HTMLElement} */ (box), error);
      }
    }
  }

  root.dataset.recwidgetsErrors = String(failures);
  root.dataset.recwidgetsReady = "true";
}

main();
