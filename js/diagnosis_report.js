// DiagnosisReport front end: diagnosis findings grouped by severity, each with its evidence,
// a suggested fix, a reference, and a button that selects it so a dashboard can open its view.
//
// Findings arrive as plain JSON (a few dozen small records), so filtering and selection are
// local and keep working in the offline export.

import { bindPythonError, createShell, formatNumber, h, hasKernel, listen, listenDom, showError } from "./_runtime.js";

/**
 * @typedef {import("./_runtime.js").WidgetModel} WidgetModel
 */

/**
 * One finding as the Python side sends it.
 * @typedef {object} FindingRecord
 * @property {string} key unique within the report
 * @property {string} id stable dotted id such as "leakage.global_timeline"
 * @property {"error" | "warning" | "info"} severity
 * @property {string} title
 * @property {Record<string, any>} evidence
 * @property {string} fix
 * @property {string} reference
 * @property {Record<string, any>} view widget name and trait values that show the evidence
 */

/** Severities from most to least serious, with their section titles. */
const SEVERITIES = /** @type {const} */ ([
  ["error", "Errors"],
  ["warning", "Warnings"],
  ["info", "Info"],
]);

const REPORT_CSS = `
.rw-diagnosis-report h4 { margin: 12px 0 4px; font-size: 1em; }
.rw-diagnosis-report .rw-finding { border: 1px solid var(--rw-border); border-left-width: 4px; border-radius: 3px; padding: 6px 10px; margin: 6px 0; }
.rw-diagnosis-report .rw-finding[data-severity="error"] { border-left-color: var(--rw-error); }
.rw-diagnosis-report .rw-finding[data-severity="warning"] { border-left-color: var(--rw-warn); }
.rw-diagnosis-report .rw-finding[data-severity="info"] { border-left-color: var(--rw-border); }
.rw-diagnosis-report .rw-finding[aria-selected="true"] { outline: 2px solid var(--rw-accent); outline-offset: -1px; background: var(--rw-bg2); }
.rw-diagnosis-report .rw-finding-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.rw-diagnosis-report .rw-badge { font-size: 0.85em; text-transform: uppercase; font-weight: 600; letter-spacing: 0.03em; }
.rw-diagnosis-report .rw-finding[data-severity="error"] .rw-badge { color: var(--rw-error); }
.rw-diagnosis-report .rw-finding[data-severity="warning"] .rw-badge { color: var(--rw-warn); }
.rw-diagnosis-report .rw-finding-title { font-weight: 600; }
.rw-diagnosis-report code { color: var(--rw-fg2); font-size: 0.9em; }
.rw-diagnosis-report .rw-evidence td, .rw-diagnosis-report .rw-evidence th { padding: 1px 12px 1px 0; font-weight: normal; }
.rw-diagnosis-report .rw-fix { margin: 4px 0; }
.rw-diagnosis-report .rw-reference { margin: 2px 0; font-size: 0.92em; }
.rw-diagnosis-report details summary { cursor: pointer; color: var(--rw-fg2); margin-top: 6px; }
`;

/**
 * Return the display text of one evidence value.
 * @param {any} value
 * @returns {string}
 */
function evidenceText(value) {
  if (value === null || value === undefined) {
    return "\u2013";
  }
  if (typeof value === "boolean") {
    return value ? "yes" : "no";
  }
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : formatNumber(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(evidenceText).join(", ")}]`;
  }
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([key, item]) => `${key}=${evidenceText(item)}`)
      .join(", ");
  }
  return String(value);
}

/**
 * Return the text of a finding's link button, such as "Show in MetricPanel (segment_by: activity)".
 * @param {Record<string, any>} view
 * @returns {string}
 */
function linkText(view) {
  const widget = String(view.widget || "view");
  const settings = Object.entries(view)
    .filter(([key]) => key !== "widget")
    .map(([key, value]) => `${key}: ${evidenceText(value)}`);
  return settings.length ? `Show in ${widget} (${settings.join(", ")})` : `Show in ${widget}`;
}

/**
 * Build the card of one finding; the button's click listener is bound to `signal`.
 * @param {FindingRecord} finding
 * @param {boolean} selected
 * @param {(key: string) => void} onSelect
 * @param {AbortSignal} signal
 * @returns {HTMLElement}
 */
function findingCard(finding, selected, onSelect, signal) {
  const card = h("article", {
    class: "rw-finding",
    "data-testid": "finding",
    "data-key": finding.key,
    "data-id": finding.id,
    "data-severity": finding.severity,
    "aria-selected": String(selected),
  });

  const head = h("div", { class: "rw-finding-head" });
  head.append(
    h("span", { class: "rw-badge", "data-testid": "finding-severity" }, finding.severity),
    h("span", { class: "rw-finding-title", "data-testid": "finding-title" }, finding.title),
    h("code", { "data-testid": "finding-id" }, finding.id),
  );
  card.append(head);

  const entries = Object.entries(finding.evidence || {});
  if (entries.length) {
    const table = h("table", { class: "rw-evidence", "data-testid": "finding-evidence" });
    for (const [name, value] of entries) {
      const row = h("tr", { "data-testid": "evidence-row", "data-name": name });
      row.append(h("th", {}, name), h("td", { class: "rw-num" }, evidenceText(value)));
      table.append(row);
    }
    card.append(table);
  }
  if (finding.fix) {
    card.append(h("p", { class: "rw-fix", "data-testid": "finding-fix" }, `Fix: ${finding.fix}`));
  }
  if (finding.reference) {
    card.append(h("p", { class: "rw-reference rw-muted", "data-testid": "finding-reference" }, finding.reference));
  }
  const view = finding.view || {};
  const button = h("button", { type: "button", "data-testid": "finding-link", "aria-pressed": String(selected) }, linkText(view));
  button.addEventListener("click", () => onSelect(finding.key), { signal });
  card.append(button);
  return card;
}

/**
 * @param {{model: WidgetModel, el: HTMLElement}} context
 * @returns {() => void} cleanup that removes every listener this view added
 */
function render({ model, el }) {
  /** @type {Array<() => void>} */
  const cleanups = [];
  const shell = createShell(el, "rw-diagnosis-report", "diagnosis-report");
  shell.root.append(h("style", {}, REPORT_CSS));

  const toolbar = h("div", { class: "rw-toolbar" });
  const summary = h("span", { "data-testid": "diagnosis-summary" });
  const severityLabel = h("label", {}, "Show");
  const severitySelect = h("select", { "data-testid": "diagnosis-min-severity" });
  for (const [value, text] of [
    ["info", "all findings"],
    ["warning", "warnings and errors"],
    ["error", "errors only"],
  ]) {
    severitySelect.append(h("option", { value }, text));
  }
  severityLabel.append(severitySelect);
  toolbar.append(summary, severityLabel);

  const list = h("div", { "data-testid": "diagnosis-list" });
  const selection = h("p", { class: "rw-muted", "data-testid": "diagnosis-selection" });
  const skippedBox = h("details", { "data-testid": "diagnosis-skipped" });
  shell.body.append(toolbar, list, selection, skippedBox);

  /** @param {string} key */
  const selectFinding = (key) => {
    model.set("selected_finding", model.get("selected_finding") === key ? "" : key);
    model.save_changes();
  };

  // Listeners of elements that a redraw replaces hang on this controller, so each redraw
  // and the cleanup remove them.
  let drawScope = new AbortController();
  cleanups.push(() => drawScope.abort());

  const draw = () => {
    drawScope.abort();
    drawScope = new AbortController();
    const signal = drawScope.signal;
    const findings = /** @type {FindingRecord[]} */ (model.get("findings") || []);
    const minSeverity = String(model.get("min_severity") || "info");
    const selected = String(model.get("selected_finding") || "");
    const limit = SEVERITIES.findIndex(([severity]) => severity === minSeverity);

    severitySelect.value = minSeverity;
    const counts = SEVERITIES.map(([severity]) => findings.filter((finding) => finding.severity === severity).length);
    summary.textContent = `${counts[0]} error(s), ${counts[1]} warning(s), ${counts[2]} info`;

    list.replaceChildren();
    let shown = 0;
    SEVERITIES.forEach(([severity, title], index) => {
      const members = findings.filter((finding) => finding.severity === severity);
      if (index > limit || members.length === 0) {
        return;
      }
      const group = h("section", { "data-testid": "diagnosis-group", "data-severity": severity });
      group.append(h("h4", {}, `${title} (${members.length})`));
      for (const finding of members) {
        group.append(findingCard(finding, finding.key === selected, selectFinding, signal));
      }
      list.append(group);
      shown += members.length;
    });
    if (shown === 0) {
      const what = minSeverity === "info" ? "No findings." : `No findings at ${minSeverity} level or above.`;
      list.append(h("p", { "data-testid": "diagnosis-empty" }, what));
    }

    const current = findings.find((finding) => finding.key === selected);
    if (current !== undefined) {
      const widget = String((current.view || {}).widget || "its view");
      const follow = hasKernel(model)
        ? `report.selected_view in Python names ${widget} and the settings that show the evidence.`
        : `following it to ${widget} needs the notebook with a running kernel.`;
      selection.textContent = `Selected ${current.key}; ${follow}`;
    } else {
      selection.textContent = findings.length ? "Click a finding's button to select it and its view." : "";
    }

    const skipped = /** @type {Array<[string, string]>} */ (model.get("skipped") || []);
    skippedBox.replaceChildren(h("summary", {}, `Checks that did not run (${skipped.length})`));
    skippedBox.hidden = skipped.length === 0;
    const skippedList = h("ul");
    for (const [check, reason] of skipped) {
      skippedList.append(h("li", { "data-testid": "skipped-check" }, `${check}: ${reason}`));
    }
    skippedBox.append(skippedList);
  };

  listenDom(
    severitySelect,
    "change",
    () => {
      model.set("min_severity", severitySelect.value);
      model.save_changes();
    },
    cleanups,
    shell,
  );
  for (const name of ["findings", "skipped", "min_severity", "selected_finding"]) {
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
