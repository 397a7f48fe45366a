// The minimap above the timeline (rendering): every span as a thin line over the whole trace,
// and the window of the time range the timeline shows. Drag across it to choose a range, drag
// the window to move it; the timeline reads the range (as Jaeger UI's SpanGraph/ViewingLayer).
import { fmtMs, fmtTick, h, niceTicks } from "../../common.js";
import { FULL, isFull, panRange, rangeFromPixels } from "./range.js";

const HEIGHT = 56;
const CLICK_PX = 3; // a press that moves less is a click, not a drag

export class Minimap {
  /** model, colors (ServiceColors), critical (Map), onChange(range) when a drag ends. */
  constructor({ model, colors, critical, onChange }) {
    this.model = model;
    this.colors = colors;
    this.critical = critical;
    this.onChange = onChange;
    this.range = FULL;
    this.canvas = h("canvas", { class: "mm-canvas", height: HEIGHT, "aria-hidden": "true" });
    this.window = h("div", { class: "mm-window", id: "minimap-window" });
    this.shadeLeft = h("div", { class: "mm-shade left" });
    this.shadeRight = h("div", { class: "mm-shade right" });
    this.selection = h("div", { class: "mm-selection", hidden: true });
    this.strip = h(
      "div",
      {
        class: "mm-strip",
        id: "minimap",
        role: "slider",
        tabindex: "0",
        "aria-label": "trace minimap: drag to choose the time range the timeline shows",
        title: "Drag to zoom the timeline to a time range; drag the window to move it",
      },
      this.canvas,
      this.shadeLeft,
      this.shadeRight,
      this.window,
      this.selection,
    );
    this.strip.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.strip.addEventListener("keydown", (e) => this.keyDown(e));
    const { step, ticks } = niceTicks(model.duration, 6);
    this.element = h(
      "div",
      { class: "minimap" },
      this.strip,
      h(
        "div",
        { class: "mm-ticks", "aria-hidden": "true" },
        ticks
          .filter((t) => t <= model.duration * 0.93 || t === 0)
          .map((t) =>
            h(
              "span",
              { style: { left: `${(100 * t) / Math.max(model.duration, 1)}%` } },
              fmtTick(t, step),
            ),
          ),
        h("span", { class: "end" }, fmtMs(model.duration)),
      ),
    );
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(this.strip);
  }

  setRange(range) {
    this.range = range;
    const left = `${100 * range.start}%`;
    const width = `${100 * (range.end - range.start)}%`;
    Object.assign(this.window.style, { left, width });
    this.shadeLeft.style.width = left;
    this.shadeRight.style.left = `${100 * range.end}%`;
    this.window.hidden = isFull(range);
    this.strip.setAttribute("aria-valuetext", isFull(range) ? "whole trace" : this.label(range));
    this.strip.dataset.range = `${range.start}-${range.end}`;
  }

  label(range) {
    const d = this.model.duration;
    return `${fmtMs(range.start * d)} – ${fmtMs(range.end * d)}`;
  }

  /** One line per span, in the timeline's row order; the critical path drawn darker. */
  draw() {
    const width = this.strip.clientWidth;
    if (!width) return;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(HEIGHT * ratio);
    const ctx = this.canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, HEIGHT);
    const spans = this.model.order;
    const rowH = Math.min(6, HEIGHT / Math.max(spans.length, 1));
    const lineH = Math.max(1, rowH - (rowH > 3 ? 1 : 0));
    const scale = width / Math.max(this.model.duration, 1);
    spans.forEach((span, i) => {
      ctx.fillStyle = span.error ? "#c62828" : this.colors.get(span.service);
      ctx.globalAlpha = this.critical.has(span.id) ? 1 : 0.55;
      ctx.fillRect(span.start * scale, i * rowH, Math.max(1, span.duration * scale), lineH);
    });
    ctx.globalAlpha = 1;
  }

  pointerDown(event) {
    if (event.button !== 0) return;
    event.preventDefault(); // no text selection while dragging; it also keeps focus away, so:
    this.strip.focus({ preventScroll: true }); // its keys (Esc, ←/→) work right after a drag
    const box = this.strip.getBoundingClientRect();
    const x0 = event.clientX - box.left;
    const at = x0 / box.width;
    const inWindow = !isFull(this.range) && at >= this.range.start && at <= this.range.end;
    const startRange = this.range;
    this.strip.setPointerCapture?.(event.pointerId);
    let moved = false;
    const move = (e) => {
      const x = e.clientX - box.left;
      if (Math.abs(x - x0) >= CLICK_PX) moved = true;
      if (!moved) return;
      if (inWindow) {
        this.setRange(panRange(startRange, (x - x0) / box.width));
      } else {
        const r = rangeFromPixels(x0, x, box.width);
        this.selection.hidden = false;
        Object.assign(this.selection.style, {
          left: `${100 * r.start}%`,
          width: `${100 * (r.end - r.start)}%`,
        });
      }
    };
    const up = (e) => {
      this.strip.removeEventListener("pointermove", move);
      this.strip.removeEventListener("pointerup", up);
      this.strip.removeEventListener("pointercancel", up);
      this.selection.hidden = true;
      if (!moved) return;
      const x = e.clientX - box.left;
      const range = inWindow
        ? panRange(startRange, (x - x0) / box.width)
        : rangeFromPixels(x0, x, box.width);
      this.setRange(range);
      this.onChange(range);
    };
    this.strip.addEventListener("pointermove", move);
    this.strip.addEventListener("pointerup", up);
    this.strip.addEventListener("pointercancel", up);
  }

  /** ←/→ move a zoomed window by a tenth of its width; Esc shows the whole trace again. */
  keyDown(event) {
    if (isFull(this.range)) return;
    const width = this.range.end - this.range.start;
    let range = null;
    if (event.key === "ArrowLeft") range = panRange(this.range, -width / 10);
    if (event.key === "ArrowRight") range = panRange(this.range, width / 10);
    if (event.key === "Escape") range = FULL;
    if (!range) return;
    event.preventDefault();
    event.stopPropagation();
    this.setRange(range);
    this.onChange(range);
  }
}
