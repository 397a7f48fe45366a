// The timeline (rendering): the minimap, then one row per span, nested by parent, bars on a
// time axis over the range the minimap chose, the critical path as a band under the bars.
import { fmtMs, fmtTick, h, valueText } from "../../common.js";
import { mergeSegments } from "../critical-path/compute.js";
import {
  faultText,
  kindName,
  linkedFromText,
  linksText,
  overhangCause,
  overhangText,
} from "../details.js";
import { Minimap } from "../minimap/render.js";
import { FULL, barGeometry, isFull, project, rangeTicks, rangeTimes } from "../minimap/range.js";
import { deepestOpen, hiddenRows, shallowestFolded } from "./rows.js";

const INDENT_PX = 14;
/** Path segments closer than this share of the window are drawn as one band (sub-pixel gaps). */
const MERGE_FRACTION = 0.001;

function spanMatches(span, needle) {
  if (span.name.toLowerCase().includes(needle) || span.service.toLowerCase().includes(needle))
    return true;
  if (span.id === needle || span.status.message.toLowerCase().includes(needle)) return true;
  return span.attributes.some(
    ([k, v]) => k.toLowerCase().includes(needle) || valueText(v).toLowerCase().includes(needle),
  );
}

function httpClass(code) {
  return code >= 500 ? "s5" : code >= 400 ? "s4" : code >= 300 ? "s3" : "s2";
}

export class Timeline {
  /**
   * page: {model, colors, critical, overhangs, linked, select(id), setHash(partial)};
   * range: the initial time range; criticalOnly: show only the critical path's spans.
   */
  constructor(page, { range = FULL, criticalOnly = false } = {}) {
    this.page = page;
    this.model = page.model;
    this.range = range;
    this.criticalOnly = criticalOnly;
    this.rows = new Map();
    this.collapsed = new Set();
    this.matches = [];
    this.matchIndex = -1;
    this.minimap = new Minimap({
      model: this.model,
      colors: page.colors,
      critical: page.critical,
      onChange: (r) => this.setRange(r, { fromMinimap: true }),
    });
    this.minimap.setRange(range);
    this.element = this.render();
  }

  get duration() {
    return this.model.duration;
  }

  pct(time) {
    return project(time, this.range, this.duration);
  }

  spanTitle(span) {
    const lines = [
      `${span.name}`,
      `${span.service} · ${kindName(span.kind)} · ${fmtMs(span.duration)} at +${fmtMs(span.start)}`,
    ];
    if (span.httpStatus !== null) lines.push(`HTTP ${span.httpStatus}`);
    if (span.error) lines.push(`ERROR${span.status.message ? `: ${span.status.message}` : ""}`);
    if (span.fault) lines.push(faultText(span));
    const overhang = this.page.overhangs.get(span.id);
    if (overhang) lines.push(`${overhangText(overhang)}: scheduling or clock skew`);
    if (span.orphan) lines.push(`orphan: parent ${span.parentId} is not in this trace`);
    if (this.page.critical.has(span.id)) lines.push("on the critical path");
    return lines.join("\n");
  }

  render() {
    this.rangeLabel = h("span", { class: "range-label", id: "range-label" });
    this.resetButton = h(
      "button",
      {
        class: "small",
        type: "button",
        id: "reset-zoom",
        title: "Show the whole trace (Esc on the minimap)",
        onclick: () => this.setRange(FULL),
      },
      "⤢ Reset zoom",
    );
    this.criticalBox = h("input", {
      type: "checkbox",
      id: "critical-only",
      checked: this.criticalOnly,
      onchange: (e) => this.setCriticalOnly(e.target.checked),
    });
    const toolbar = h(
      "div",
      { class: "view-toolbar timeline-toolbar" },
      h(
        "label",
        {
          class: "check",
          title: "Hide every span that is not on the critical path",
        },
        this.criticalBox,
        " critical path only",
      ),
      h("span", { class: "spacer" }),
      this.rangeLabel,
      this.resetButton,
    );
    this.axisTicks = h("div", { class: "ticks", "aria-label": "time axis" });
    this.gridInner = h("div", { class: "inner" });
    const axis = this.renderAxis();
    const grid = h("div", { class: "gridlines", "aria-hidden": "true" }, this.gridInner);
    this.rowsEl = h(
      "div",
      { class: "rows", role: "tree", "aria-label": "spans" },
      grid,
      this.model.order.map((span) => this.renderRow(span)),
    );
    this.waterfall = h(
      "div",
      {
        class: "waterfall",
        id: "waterfall",
        tabindex: "0",
        "aria-label": "trace waterfall: arrow keys move between spans",
      },
      axis,
      this.rowsEl,
    );
    this.waterfall.addEventListener("keydown", (e) => this.onKey(e));
    this.drawRange();
    this.updateVisibility();
    return h(
      "div",
      { class: "view timeline-view", id: "view-timeline" },
      toolbar,
      this.minimap.element,
      this.waterfall,
    );
  }

  renderAxis() {
    const resizer = h("span", {
      class: "resizer",
      title: "Drag to resize the name column",
      "aria-hidden": "true",
    });
    resizer.addEventListener("pointerdown", (e) => this.startResize(e));
    const button = (title, action, text, onclick) =>
      h("button", { class: "small", type: "button", title, "data-action": action, onclick }, text);
    return h(
      "div",
      { class: "axis" },
      h(
        "div",
        { class: "name-h" },
        h("span", { class: "label" }, "Service & operation"),
        button("Collapse one level", "collapse-one", "−1", () => this.stepCollapse(true)),
        button("Expand one level", "expand-one", "+1", () => this.stepCollapse(false)),
        button("Collapse all", "collapse-all", "⊟ all", () => this.setAllCollapsed(true)),
        button("Expand all", "expand-all", "⊞ all", () => this.setAllCollapsed(false)),
        resizer,
      ),
      this.axisTicks,
    );
  }

  /** The axis ticks and grid lines of the current range. */
  drawAxis() {
    const { step, ticks } = rangeTicks(this.range, this.duration, 8);
    const { to } = rangeTimes(this.range, this.duration);
    const labels = [];
    const lines = [];
    for (const { time, percent } of ticks) {
      if (percent < -0.0001 || percent > 100.0001) continue;
      if (percent > 88 && percent < 99.9999) continue; // too close to the end label
      const cls = ["tick", percent <= 0.0001 ? "first" : "", percent >= 99.9999 ? "last" : ""];
      labels.push(h("span", { class: cls, style: { left: `${percent}%` } }, fmtTick(time, step)));
      lines.push(h("span", { class: "line", style: { left: `${percent}%` } }));
    }
    if (!ticks.some((t) => t.percent >= 99.9999 && t.percent <= 100.0001) && this.duration > 0) {
      labels.push(h("span", { class: "tick last", style: { left: "100%" } }, fmtMs(to)));
      lines.push(h("span", { class: "line", style: { left: "100%" } }));
    }
    this.axisTicks.replaceChildren(...labels);
    this.gridInner.replaceChildren(...lines);
  }

  renderRow(span) {
    const segments = this.page.critical.get(span.id) || [];
    const overhang = this.page.overhangs.get(span.id);
    const linking = this.page.linked.get(span.id) || [];
    const showService = !span.parent || span.parent.service !== span.service;
    const toggle = h(
      "button",
      {
        class: `toggle${span.children.length ? "" : " leaf"}`,
        type: "button",
        tabindex: "-1",
        "aria-label": span.children.length ? "collapse or expand children" : null,
        onclick: (event) => {
          event.stopPropagation();
          this.toggleCollapsed(span);
        },
      },
      "▾",
    );
    const title = this.spanTitle(span);
    const lane = h("div", { class: "lane", title });
    const row = h(
      "div",
      {
        class: [
          "row",
          span.error ? "error" : "",
          span.fault ? "fault" : "",
          overhang ? "overhang" : "",
          segments.length ? "critical" : "",
          span.orphan ? "orphan" : "",
        ],
        role: "treeitem",
        "aria-level": String(span.depth + 1),
        "aria-expanded": span.children.length ? "true" : null,
        tabindex: "-1",
        "data-span-id": span.id,
        "data-parent-span-id": span.parentId || null,
        "data-service": span.service,
        "data-depth": String(span.depth),
        "data-error": span.error ? "true" : null,
        "data-fault": span.fault ? "true" : null,
        "data-overhang-ns": overhang ? String(overhang.before + overhang.after) : null,
        "data-critical": segments.length ? "true" : null,
        "data-orphan": span.orphan ? "true" : null,
        "data-http-status": span.httpStatus ?? null,
        "data-links": span.links.length || null,
        "data-linked-from": linking.length || null,
        style: { "--svc": this.page.colors.get(span.service) },
        onclick: () => this.page.select(span.id),
      },
      h(
        "div",
        { class: "name", title },
        h("span", { class: "indent", style: { width: `${span.depth * INDENT_PX}px` } }),
        toggle,
        h("span", { class: "svc-dot", "aria-hidden": "true" }),
        span.error
          ? h("span", { class: "err-icon", title: "status ERROR", "aria-label": "error" }, "!")
          : null,
        span.fault
          ? h(
              "span",
              { class: "fault-icon", title: faultText(span), "aria-label": "injected fault" },
              "⚡",
            )
          : null,
        overhang
          ? h(
              "span",
              {
                class: "overhang-icon",
                title: `${overhangText(overhang)}. ${overhangCause(overhang)}`,
                "aria-label": "outside its parent",
              },
              "⇥",
            )
          : null,
        span.orphan
          ? h(
              "span",
              { class: "orphan-icon", title: `parent ${span.parentId} is missing` },
              "orphan",
            )
          : null,
        h(
          "span",
          { class: "label" },
          h("span", { class: "op" }, span.name),
          showService ? h("span", { class: "svc" }, span.service) : null,
          h("span", { class: "hidden-count" }),
        ),
        span.httpStatus !== null
          ? h(
              "span",
              {
                class: `http-status ${httpClass(span.httpStatus)}`,
                title: `HTTP ${span.httpStatus} (http.response.status_code)`,
              },
              String(span.httpStatus),
            )
          : null,
        span.links.length
          ? h(
              "span",
              { class: "link-mark out", title: linksText(span), "aria-label": "has links" },
              `↩${span.links.length > 1 ? span.links.length : ""}`,
            )
          : null,
        linking.length
          ? h(
              "span",
              {
                class: "link-mark in",
                title: linkedFromText(linking),
                "aria-label": "linked from other traces",
              },
              `↪${linking.length}`,
            )
          : null,
      ),
      lane,
    );
    row.toggleEl = toggle;
    row.lane = lane;
    this.rows.set(span.id, row);
    return row;
  }

  /** A row's bar, path band, overhang hatching and event marks in the current range. */
  drawLane(span, lane) {
    const bar = barGeometry(span.start, span.end, this.range, this.duration);
    const segments = this.page.critical.get(span.id) || [];
    const overhang = this.page.overhangs.get(span.id);
    const parts = [];
    if (!bar.visible) {
      // Outside the zoomed range: an arrow at the edge it lies beyond.
      const before = span.end < rangeTimes(this.range, this.duration).from;
      parts.push(
        h(
          "span",
          { class: `offscreen ${before ? "left" : "right"}`, title: "outside the chosen range" },
          before ? "◂" : "▸",
        ),
      );
    } else {
      parts.push(
        h("div", {
          class: `bar${bar.cutStart ? " cut-start" : ""}${bar.cutEnd ? " cut-end" : ""}`,
          style: { left: `${bar.left}%`, width: `${bar.width}%` },
        }),
      );
    }
    const windowNs = (this.range.end - this.range.start) * this.duration;
    if (segments.length) {
      const band = mergeSegments(segments, windowNs * MERGE_FRACTION)
        .map((seg) => barGeometry(seg.start, seg.end, this.range, this.duration))
        .filter((g) => g.visible && g.width > 0)
        .map((g) => h("span", { class: "cp-seg", style: { left: `${g.left}%`, width: `${g.width}%` } }));
      if (bar.visible) {
        parts.push(
          h(
            "span",
            {
              class: "cp-band",
              style: { left: `${bar.left}%`, width: `${bar.width}%` },
              "aria-hidden": "true",
            },
          ),
        );
      }
      parts.push(...band);
    }
    if (overhang && bar.visible) {
      const pieces = [];
      if (overhang.before) pieces.push([span.start, span.start + overhang.before]);
      if (overhang.after) pieces.push([span.end - overhang.after, span.end]);
      for (const [from, to] of pieces) {
        const g = barGeometry(from, to, this.range, this.duration);
        if (g.visible)
          parts.push(
            h("span", { class: "overhang-seg", style: { left: `${g.left}%`, width: `${g.width}%` } }),
          );
      }
    }
    for (const event of span.events) {
      const time = Math.min(Math.max(event.time, span.start), span.end);
      const p = this.pct(time);
      if (p < 0 || p > 100) continue;
      parts.push(
        h("span", {
          class: `event-mark${event.name === "exception" ? " exception" : ""}`,
          style: { left: `${p}%` },
          title: `${event.name} at +${fmtMs(event.offset)}`,
        }),
      );
    }
    if (bar.visible) {
      parts.push(
        h(
          "span",
          { class: "dur", style: { left: `calc(${bar.left + bar.width}% + 4px)` } },
          fmtMs(span.duration),
          overhang
            ? h(
                "span",
                {
                  class: "overhang-note",
                  title: `${overhangText(overhang)}. ${overhangCause(overhang)}`,
                },
                `⇥ ${fmtMs(overhang.before + overhang.after)} outside parent`,
              )
            : null,
        ),
      );
    }
    lane.replaceChildren(...parts);
  }

  drawRange() {
    this.drawAxis();
    for (const span of this.model.order) this.drawLane(span, this.rows.get(span.id).lane);
    const zoomed = !isFull(this.range);
    const { from, to } = rangeTimes(this.range, this.duration);
    this.rangeLabel.textContent = zoomed
      ? `showing ${fmtMs(from)} – ${fmtMs(to)} of ${fmtMs(this.duration)}`
      : `whole trace, ${fmtMs(this.duration)} · drag on the minimap to zoom`;
    this.resetButton.hidden = !zoomed;
    this.waterfall.dataset.range = `${this.range.start}-${this.range.end}`;
  }

  setRange(range, { fromMinimap = false } = {}) {
    this.range = range;
    if (!fromMinimap) this.minimap.setRange(range);
    this.drawRange();
    this.page.setHash({ range: isFull(range) ? null : range });
  }

  setCriticalOnly(on) {
    this.criticalOnly = on;
    this.criticalBox.checked = on;
    this.updateVisibility();
    this.page.setHash({ critical: on });
  }

  updateVisibility() {
    const { hidden, folded } = hiddenRows(this.model.order, this.collapsed, {
      criticalOnly: this.criticalOnly,
      critical: this.page.critical,
    });
    for (const span of this.model.order) {
      const row = this.rows.get(span.id);
      row.hidden = hidden.has(span.id);
      if (!span.children.length) continue;
      const isFolded = folded.has(span.id);
      row.toggleEl.textContent = isFolded ? "▸" : "▾";
      row.setAttribute("aria-expanded", isFolded ? "false" : "true");
      const count = row.querySelector(".hidden-count");
      count.replaceChildren();
      if (isFolded) {
        count.append(`+${span.descendants}`);
        if (span.descendantErrors) {
          count.append(
            " ",
            h(
              "span",
              { class: "hidden-errors", title: "hidden spans with status ERROR" },
              `⚠ ${span.descendantErrors}`,
            ),
          );
        }
      }
    }
    this.waterfall.dataset.visibleRows = String(this.model.order.length - hidden.size);
  }

  toggleCollapsed(span, collapse = !this.collapsed.has(span.id)) {
    if (!span.children.length) return;
    if (collapse) this.collapsed.add(span.id);
    else this.collapsed.delete(span.id);
    this.updateVisibility();
  }

  setAllCollapsed(collapse) {
    this.collapsed.clear();
    if (collapse)
      for (const span of this.model.order) if (span.children.length) this.collapsed.add(span.id);
    this.updateVisibility();
  }

  stepCollapse(collapse) {
    const { hidden } = hiddenRows(this.model.order, this.collapsed, {
      criticalOnly: this.criticalOnly,
      critical: this.page.critical,
    });
    const ids = collapse
      ? deepestOpen(this.model.order, this.collapsed, hidden)
      : shallowestFolded(this.model.order, this.collapsed, hidden);
    for (const id of ids) {
      if (collapse) this.collapsed.add(id);
      else this.collapsed.delete(id);
    }
    this.updateVisibility();
  }

  /** Mark a span's row selected, its ancestors expanded (and shown, if filtered out). */
  reveal(span, { scroll = true, focus = true } = {}) {
    for (const row of this.rowsEl.querySelectorAll(".row.selected")) row.classList.remove("selected");
    if (!span) return;
    let changed = false;
    for (let p = span.parent; p; p = p.parent) changed = this.collapsed.delete(p.id) || changed;
    if (this.criticalOnly && !this.page.critical.has(span.id)) {
      this.criticalOnly = false;
      this.criticalBox.checked = false;
      this.page.setHash({ critical: false });
      changed = true;
    }
    if (changed) this.updateVisibility();
    const row = this.rows.get(span.id);
    row.classList.add("selected");
    if (scroll) row.scrollIntoView({ block: "nearest" });
    if (focus) row.focus({ preventScroll: true });
  }

  findSpans(query) {
    const needle = query.trim().toLowerCase();
    this.matches = needle ? this.model.order.filter((s) => spanMatches(s, needle)) : [];
    this.matchIndex = -1;
    const matched = new Set(this.matches.map((s) => s.id));
    for (const [id, row] of this.rows) {
      row.classList.toggle("match", matched.has(id));
      row.classList.toggle("dim", Boolean(needle) && !matched.has(id));
    }
    return needle ? this.matches.length : null;
  }

  nextMatch(step) {
    if (!this.matches.length) return;
    const n = this.matches.length;
    this.matchIndex = (((this.matchIndex + step) % n) + n) % n;
    this.page.select(this.matches[this.matchIndex].id, { focus: false });
  }

  visibleOrder() {
    return this.model.order.filter((s) => !this.rows.get(s.id).hidden);
  }

  onKey(event) {
    if (event.target.closest("input, textarea, select")) return;
    const selected = this.page.selected;
    const current = selected ? this.model.byId.get(selected) : null;
    const visible = this.visibleOrder();
    const index = current ? visible.indexOf(current) : -1;
    const go = (span) => {
      if (!span) return;
      event.preventDefault();
      this.page.select(span.id);
    };
    switch (event.key) {
      case "ArrowDown":
      case "j":
        go(visible[Math.min(index + 1, visible.length - 1)]);
        break;
      case "ArrowUp":
      case "k":
        go(visible[Math.max(index - 1, 0)]);
        break;
      case "ArrowLeft":
        if (!current) return;
        event.preventDefault();
        if (current.children.length && !this.collapsed.has(current.id))
          this.toggleCollapsed(current, true);
        else if (current.parent) this.page.select(current.parent.id);
        break;
      case "ArrowRight":
        if (current && current.children.length) {
          event.preventDefault();
          this.toggleCollapsed(current, false);
        }
        break;
      default:
    }
  }

  startResize(event) {
    event.preventDefault();
    const app = document.getElementById("app");
    const handle = event.currentTarget;
    const left = this.waterfall.getBoundingClientRect().left;
    const total = this.waterfall.clientWidth;
    handle.classList.add("dragging");
    const move = (e) => {
      const px = Math.min(Math.max(e.clientX - left, 160), total - 200);
      app.style.setProperty("--name-col", `${px}px`);
    };
    const up = () => {
      handle.classList.remove("dragging");
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      try {
        localStorage.setItem("trace-viewer.name-col", app.style.getPropertyValue("--name-col"));
      } catch {
        /* storage unavailable */
      }
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }
}
