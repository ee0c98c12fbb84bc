// Dashboard front end: metrics by segment, diagnosis findings and a user inspector with
// linked selection.
//
// Everything is drawn from the widget's own state: segment user lists arrive as binary
// arrays and inspector payloads of a bounded set of users are precomputed, so segment
// clicks, finding links and user switches work in the offline export too. With a kernel,
// a user without a precomputed payload is computed in Python and arrives as `user_data`.

import {
  bindPythonError,
  createShell,
  flatIndex,
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
 * @typedef {import("./_runtime.js").DecodedArray} DecodedArray
 * @typedef {import("./_runtime.js").ArrayPayload} ArrayPayload
 */

/**
 * @typedef {object} DashboardGroup
 * @property {string} key
 * @property {string} label
 * @property {string[]} segments
 */

/**
 * @typedef {object} DashboardFinding
 * @property {string} key
 * @property {string} id
 * @property {string} severity
 * @property {string} title
 * @property {string} fix
 * @property {Record<string, any>} view
 */

/**
 * @typedef {object} Recommendation
 * @property {number} item
 * @property {string} title
 * @property {number | null} score
 * @property {boolean} hit
 */

/**
 * @typedef {object} UserPayload
 * @property {number} user
 * @property {Record<string, string>} segments
 * @property {ArrayPayload} items
 * @property {string[]} titles
 * @property {number} truncated
 * @property {number} target
 * @property {string} target_title
 * @property {Recommendation[]} recommendations
 * @property {ArrayPayload} [attention]
 * @property {ArrayPayload} [shap]
 * @property {string} [shap_label]
 */

// Users listed per segment; the rest are counted, not drawn.
const MAX_LISTED_USERS = 60;
const BAR_WIDTH = 120;
const BAR_HEIGHT = 12;

const DASHBOARD_CSS = `
.rw-dashboard section { border-top: 1px solid var(--rw-border); padding-top: 4px; margin-top: 8px; }
.rw-dashboard h4 { margin: 6px 0 4px; font-size: 1em; }
.rw-dashboard tr[data-testid="dashboard-segment-row"] { cursor: pointer; }
.rw-dashboard tr[data-testid="dashboard-segment-row"]:hover { background: var(--rw-bg2); }
.rw-dashboard tr[aria-selected="true"] { background: var(--rw-bg2); outline: 2px solid var(--rw-accent); outline-offset: -2px; }
.rw-dashboard .rw-ci { color: var(--rw-fg2); font-size: 0.92em; }
.rw-dashboard .rw-users { display: flex; flex-wrap: wrap; gap: 4px; }
.rw-dashboard .rw-users button[aria-pressed="true"] { border-color: var(--rw-accent); outline: 2px solid var(--rw-accent); }
.rw-dashboard .rw-users button[data-precomputed="true"] { font-weight: 600; }
.rw-dashboard .rw-sev-error { color: var(--rw-error); font-weight: 600; }
.rw-dashboard .rw-sev-warning { color: var(--rw-warn); font-weight: 600; }
.rw-dashboard .rw-hit { color: var(--rw-accent); font-weight: 600; }
.rw-dashboard .rw-columns { display: flex; flex-wrap: wrap; gap: 24px; }
`;

/**
 * Decode a numeric array field of a payload into a plain number list.
 * @param {ArrayPayload | null | undefined} payload
 * @returns {number[] | null}
 */
function numbers(payload) {
  const decoded = readArray(payload);
  return decoded === null ? null : Array.from(decoded.data);
}

/**
 * Draw a small horizontal bar; negative values grow left of the middle when `signed`.
 * @param {number} value
 * @param {number} scale the magnitude that fills the bar
 * @param {boolean} signed
 * @param {string} testId
 * @returns {SVGElement}
 */
function miniBar(value, scale, signed, testId) {
  const box = svg("svg", { width: BAR_WIDTH, height: BAR_HEIGHT, viewBox: `0 0 ${BAR_WIDTH} ${BAR_HEIGHT}` });
  const share = scale > 0 && Number.isFinite(value) ? Math.min(Math.abs(value) / scale, 1) : 0;
  const middle = signed ? BAR_WIDTH / 2 : 0;
  const length = share * (signed ? BAR_WIDTH / 2 : BAR_WIDTH);
  const x = value < 0 ? middle - length : middle;
  const fill = value < 0 ? "var(--rw-series-3)" : "var(--rw-series-0)";
  const bar = svg("rect", { x, y: 1, width: Math.max(length, 0.5), height: BAR_HEIGHT - 2, fill, "data-testid": testId });
  bar.append(svg("title", {}, formatNumber(value)));
  box.append(bar);
  if (signed) {
    box.append(svg("line", { x1: middle, x2: middle, y1: 0, y2: BAR_HEIGHT, stroke: "var(--rw-border)" }));
  }
  return box;
}

/**
 * Return the user ids of one segment row from the concatenated arrays.
 * @param {DecodedArray | null} ids
 * @param {DecodedArray | null} offsets
 * @param {number} row
 * @returns {number[]}
 */
function rowUsers(ids, offsets, row) {
  if (ids === null || offsets === null || row < 0 || row + 1 >= offsets.data.length) {
    return [];
  }
  return Array.from(ids.data.subarray(offsets.data[row], offsets.data[row + 1]));
}

/**
 * Render the dashboard into `el`.
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-dashboard", "dashboard");
  shell.root.append(h("style", {}, DASHBOARD_CSS));

  const kLabel = h("label", {}, "k");
  const kSelect = h("select", { "data-testid": "dashboard-k" });
  kLabel.append(kSelect);
  const byLabel = h("label", {}, "Breakdown");
  const bySelect = h("select", { "data-testid": "dashboard-segment-by" });
  byLabel.append(bySelect);
  const toolbar = h("div", { class: "rw-toolbar" });
  toolbar.append(kLabel, byLabel);

  const metrics = h("section", { "data-testid": "dashboard-metrics" });
  const findingsBox = h("section", { "data-testid": "dashboard-findings" });
  const usersBox = h("section", { "data-testid": "dashboard-users" });
  const inspector = h("section", { "data-testid": "dashboard-inspector" });
  shell.body.append(toolbar, metrics, findingsBox, usersBox, inspector);

  /**
   * Set traits locally and send them to the kernel in one message.
   * @param {Record<string, any>} changes
   */
  const update = (changes) => {
    for (const [name, value] of Object.entries(changes)) {
      model.set(name, value);
    }
    model.save_changes();
  };

  // Listeners of elements that a redraw replaces hang on these controllers.
  /** @type {Record<string, AbortController>} */
  const scopes = { metrics: new AbortController(), findings: new AbortController(), users: new AbortController() };
  cleanups.push(() => Object.values(scopes).forEach((scope) => scope.abort()));
  /** @param {string} name @returns {AbortSignal} */
  const freshScope = (name) => {
    scopes[name].abort();
    scopes[name] = new AbortController();
    return scopes[name].signal;
  };

  /** @returns {DashboardGroup[]} */
  const groups = () => model.get("segment_groups") || [];

  /**
   * Return the row of a segment in `values`, `counts` and `segment_offsets`; -1 when absent.
   * @param {string} key
   * @param {string} label
   */
  const rowOf = (key, label) => {
    let row = 0;
    for (const group of groups()) {
      for (const segment of group.segments) {
        if (group.key === key && segment === label) {
          return row;
        }
        row += 1;
      }
    }
    return -1;
  };

  const drawMetrics = () => {
    const signal = freshScope("metrics");
    const names = /** @type {string[]} */ (model.get("model_names") || []);
    const metricNames = /** @type {string[]} */ (model.get("metric_names") || []);
    const ks = /** @type {number[]} */ (model.get("ks") || []);
    const values = readArray(model.get("values"));
    const k = model.get("k");
    const segmentBy = model.get("segment_by") || "";
    const chartMetric = model.get("chart_metric") || metricNames[0] || "";
    const selected = model.get("selected_segment") || "";
    const kIndex = ks.indexOf(k);

    kSelect.replaceChildren(...ks.map((value) => h("option", { value: String(value) }, String(value))));
    kSelect.value = String(k);
    bySelect.replaceChildren(...groups().map((group) => h("option", { value: group.key }, group.label)));
    bySelect.value = segmentBy;

    /** @param {number} m @param {number} metric @param {number} row */
    const cell = (m, metric, row) => {
      const td = h("td", { class: "rw-num" });
      if (values === null || kIndex < 0 || row < 0) {
        td.textContent = formatNumber(NaN);
        return td;
      }
      const offset = flatIndex(values.shape, [m, metric, kIndex, row, 0]);
      const [value, low, high] = [values.data[offset], values.data[offset + 1], values.data[offset + 2]];
      td.append(document.createTextNode(formatNumber(value)));
      if (Number.isFinite(low) && Number.isFinite(high)) {
        td.append(h("span", { class: "rw-ci" }, ` [${formatNumber(low)}, ${formatNumber(high)}]`));
      }
      return td;
    };

    const overall = h("table", { "data-testid": "dashboard-metric-table" });
    const head = h("tr");
    head.append(h("th", {}, `All users, k = ${k}`), ...names.map((name) => h("th", { "data-model": name }, name)));
    overall.append(head);
    const allRow = rowOf("", groups()[0]?.segments[0] ?? "");
    metricNames.forEach((metric, metricIndex) => {
      const tr = h("tr", { "data-metric": metric });
      tr.append(h("td", {}, `${metric}@${k}`));
      names.forEach((name, m) => {
        const td = cell(m, metricIndex, allRow);
        td.setAttribute("data-testid", "dashboard-metric-cell");
        td.setAttribute("data-model", name);
        td.setAttribute("data-metric", metric);
        tr.append(td);
      });
      overall.append(tr);
    });

    const group = groups().find((candidate) => candidate.key === segmentBy);
    const segmentTable = h("table", { "data-testid": "dashboard-segment-table" });
    const metricIndex = metricNames.indexOf(chartMetric);
    if (group !== undefined && segmentBy !== "") {
      const segHead = h("tr");
      segHead.append(h("th", {}, `${group.label}: ${chartMetric}@${k}`), ...names.map((name) => h("th", {}, name)), h("th", {}, "Users"));
      segmentTable.append(segHead);
      const ids = readArray(model.get("segment_user_ids"));
      const offsets = readArray(model.get("segment_offsets"));
      for (const label of group.segments) {
        const row = rowOf(segmentBy, label);
        const tr = h("tr", { "data-testid": "dashboard-segment-row", "data-segment": label, tabindex: "0", "aria-selected": String(label === selected) });
        tr.append(h("td", {}, label), ...names.map((_, m) => cell(m, metricIndex, row)), h("td", { class: "rw-num" }, String(rowUsers(ids, offsets, row).length)));
        const choose = () => update({ selected_segment: selected === label ? "" : label });
        tr.addEventListener("click", choose, { signal });
        tr.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            choose();
          }
        }, { signal });
        segmentTable.append(tr);
      }
    }
    const hint = h("p", { class: "rw-muted" }, segmentBy ? "Click a segment to list its users." : "Choose a breakdown to compare segments.");
    metrics.replaceChildren(h("h4", {}, "Metrics"), overall, segmentTable, hint);
  };

  const drawFindings = () => {
    const signal = freshScope("findings");
    const findings = /** @type {DashboardFinding[]} */ (model.get("findings") || []);
    const chosen = model.get("selected_finding") || "";
    const list = h("table");
    for (const finding of findings) {
      const tr = h("tr", { "data-testid": "dashboard-finding", "data-key": finding.key, "aria-selected": String(finding.key === chosen) });
      const action = h("td");
      const view = finding.view || {};
      if (Object.keys(view).length > 0) {
        const show = h("button", { type: "button", "data-testid": "dashboard-finding-show", "data-key": finding.key }, "show");
        show.addEventListener("click", () => showFinding(finding), { signal });
        action.append(show);
      }
      tr.append(h("td", { class: `rw-sev-${finding.severity}` }, finding.severity), h("td", {}, finding.title), h("td", { class: "rw-muted" }, finding.fix), action);
      list.append(tr);
    }
    const viewNote = h("p", { class: "rw-muted", "data-testid": "dashboard-view-note" });
    const current = findings.find((finding) => finding.key === chosen);
    if (current !== undefined) {
      const widget = current.view.widget || "";
      const here = ["MetricPanel", "Dashboard", "AttentionHeatmap", "ShapExplorer", ""].includes(widget);
      viewNote.textContent = here
        ? `Showing the view of "${current.title}".`
        : `"${current.title}" points to the ${widget} widget, which is not part of this dashboard.`;
    }
    findingsBox.replaceChildren(h("h4", {}, `Diagnosis (${findings.length} finding${findings.length === 1 ? "" : "s"})`), findings.length ? list : h("p", { class: "rw-muted" }, "No finding."), viewNote);
  };

  /**
   * Apply a finding's view here, so the link works without a kernel too.
   * @param {DashboardFinding} finding
   */
  const showFinding = (finding) => {
    const view = finding.view || {};
    /** @type {Record<string, any>} */
    const changes = { selected_finding: finding.key };
    const keys = groups().map((group) => group.key);
    if (typeof view.segment_by === "string" && keys.includes(view.segment_by) && view.segment_by !== model.get("segment_by")) {
      changes.segment_by = view.segment_by;
      changes.selected_segment = "";
    }
    if (typeof view.k === "number" && (model.get("ks") || []).includes(view.k)) {
      changes.k = view.k;
    }
    const metric = view.chart_metric ?? view.metric;
    if (typeof metric === "string" && (model.get("metric_names") || []).includes(metric)) {
      changes.chart_metric = metric;
    }
    if (typeof view.user === "number" && (hasKernel(model) || String(view.user) in (model.get("user_payloads") || {}))) {
      changes.user = view.user;
    }
    if (typeof view.segment === "string") {
      changes.selected_segment = view.segment;
    }
    update(changes);
  };

  const drawUsers = () => {
    const signal = freshScope("users");
    const segmentBy = model.get("segment_by") || "";
    const selected = model.get("selected_segment") || "";
    const payloads = model.get("user_payloads") || {};
    const current = model.get("user");
    const kernel = hasKernel(model);
    if (!selected) {
      usersBox.replaceChildren(h("h4", {}, "Users"), h("p", { class: "rw-muted", "data-testid": "dashboard-users-summary" }, "Select a segment to list its users."));
      return;
    }
    const users = rowUsers(readArray(model.get("segment_user_ids")), readArray(model.get("segment_offsets")), rowOf(segmentBy, selected));
    // Precomputed users first, so the offline page lists the ones it can show.
    const ordered = users.filter((user) => String(user) in payloads).concat(users.filter((user) => !(String(user) in payloads)));
    const listed = ordered.slice(0, MAX_LISTED_USERS);
    const box = h("div", { class: "rw-users", "data-testid": "dashboard-user-list" });
    for (const user of listed) {
      const ready = String(user) in payloads;
      const button = h("button", { type: "button", "data-testid": "dashboard-user", "data-user": String(user), "data-precomputed": String(ready), "aria-pressed": String(user === current) }, String(user));
      button.title = ready ? "Explanation precomputed" : kernel ? "Computed in Python on click" : "Not precomputed in this page";
      button.disabled = !ready && !kernel;
      button.addEventListener("click", () => update({ user }), { signal });
      box.append(button);
    }
    const summary = `${users.length} users in "${selected}"; ${listed.length} listed, ${users.filter((user) => String(user) in payloads).length} with precomputed explanations (bold).`;
    usersBox.replaceChildren(h("h4", {}, "Users"), h("p", { class: "rw-muted", "data-testid": "dashboard-users-summary" }, summary), box);
  };

  const drawInspector = () => {
    const user = model.get("user");
    const notes = /** @type {string[]} */ (model.get("inspector_notes") || []);
    const noteBox = h("div", { class: "rw-muted", "data-testid": "dashboard-inspector-notes" });
    for (const note of notes) {
      noteBox.append(h("p", {}, note));
    }
    if (user === null || user === undefined || user < 0) {
      inspector.replaceChildren(h("h4", {}, "User inspector"), h("p", { class: "rw-muted" }, "Choose a user to see the history, recommendations and explanations."), noteBox);
      return;
    }
    const payloads = model.get("user_payloads") || {};
    const live = model.get("user_data") || {};
    /** @type {UserPayload | undefined} */
    const payload = payloads[String(user)] ?? (live.user === user ? live : undefined);
    if (payload === undefined) {
      const text = hasKernel(model) ? `Computing user ${user}\u2026` : `User ${user} is not precomputed in this page.`;
      inspector.replaceChildren(h("h4", {}, `User ${user}`), h("p", { class: "rw-muted", "data-testid": "dashboard-inspector-pending" }, text));
      return;
    }

    const items = numbers(payload.items) || [];
    const attention = numbers(payload.attention);
    const shap = numbers(payload.shap);
    const segments = Object.entries(payload.segments || {}).map(([key, label]) => `${key}: ${label}`).join(", ");
    const title = h("h4", { "data-testid": "dashboard-inspector-title", "data-user": String(payload.user) }, `User ${payload.user}${segments ? ` (${segments})` : ""}`);
    const target = h("p", {}, `Held-out item: ${payload.target_title || "none"}`);

    const history = h("table", { "data-testid": "dashboard-history" });
    const head = h("tr");
    head.append(h("th", {}, "#"), h("th", {}, "History item"));
    if (attention !== null) {
      head.append(h("th", { "data-testid": "dashboard-attention-header" }, "Attention of last position"));
    }
    if (shap !== null) {
      head.append(h("th", { "data-testid": "dashboard-shap-header" }, `SHAP of ${payload.shap_label || "top-1"}`));
    }
    history.append(head);
    const attentionScale = attention === null ? 0 : Math.max(...attention, 0);
    const shapScale = shap === null ? 0 : Math.max(...shap.map(Math.abs), 0);
    // Most recent first: the last items matter most to a sequential model.
    for (let index = items.length - 1; index >= 0; index -= 1) {
      const tr = h("tr", { "data-testid": "dashboard-history-row", "data-item": String(items[index]) });
      tr.append(h("td", { class: "rw-num" }, String(index - items.length)), h("td", {}, payload.titles[index] ?? String(items[index])));
      if (attention !== null) {
        const td = h("td", { "data-value": String(attention[index]) });
        td.append(miniBar(attention[index], attentionScale, false, "attention-bar"));
        tr.append(td);
      }
      if (shap !== null) {
        const td = h("td", { "data-value": String(shap[index]) });
        td.append(miniBar(shap[index], shapScale, true, "shap-bar"));
        tr.append(td);
      }
      history.append(tr);
    }

    // Payloads carry the top max(ks) items, so the k selector trims the list here.
    const shown = (payload.recommendations || []).slice(0, model.get("k"));
    const recs = h("ol", { "data-testid": "dashboard-recommendations" });
    for (const item of shown) {
      const score = item.score === null || item.score === undefined ? "" : ` (${formatNumber(item.score, 3)})`;
      const li = h("li", { "data-testid": "dashboard-rec", "data-item": String(item.item), class: item.hit ? "rw-hit" : "" }, `${item.title}${score}${item.hit ? ", the held-out item" : ""}`);
      recs.append(li);
    }
    const columns = h("div", { class: "rw-columns" });
    const left = h("div");
    left.append(h("h4", {}, `History (${items.length} items${payload.truncated ? `, ${payload.truncated} older cut off` : ""})`), history);
    const right = h("div");
    right.append(h("h4", {}, `Top-${shown.length} recommendations`), recs);
    columns.append(left, right);
    inspector.replaceChildren(title, target, noteBox, columns);
  };

  /** @param {() => void} draw */
  const safely = (draw) => () => {
    try {
      draw();
    } catch (error) {
      showError(shell, error);
    }
  };
  const metricsDraw = safely(drawMetrics);
  const findingsDraw = safely(drawFindings);
  const usersDraw = safely(drawUsers);
  const inspectorDraw = safely(drawInspector);

  listenDom(kSelect, "change", () => update({ k: Number(kSelect.value) }), cleanups, shell);
  listenDom(bySelect, "change", () => update({ selected_segment: "", segment_by: bySelect.value }), cleanups, shell);
  for (const name of ["model_names", "metric_names", "ks", "segment_groups", "values", "k", "segment_by", "chart_metric", "selected_segment", "segment_user_ids", "segment_offsets"]) {
    listen(model, `change:${name}`, metricsDraw, cleanups, shell);
  }
  for (const name of ["findings", "selected_finding"]) {
    listen(model, `change:${name}`, findingsDraw, cleanups, shell);
  }
  for (const name of ["segment_by", "selected_segment", "user_payloads", "user", "segment_user_ids", "segment_offsets"]) {
    listen(model, `change:${name}`, usersDraw, cleanups, shell);
  }
  for (const name of ["user", "user_data", "user_payloads", "inspector_notes", "k"]) {
    listen(model, `change:${name}`, inspectorDraw, cleanups, shell);
  }
  bindPythonError(model, shell, cleanups);

  metricsDraw();
  findingsDraw();
  usersDraw();
  inspectorDraw();

  return () => {
    for (const cleanup of cleanups.splice(0)) {
      cleanup();
    }
  };
}

export default { render };
