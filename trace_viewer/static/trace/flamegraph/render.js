// The flame graph view (rendering): the icicle flamegraph/layout.js lays out, the root on top.
// Click a node to zoom into it, a node above the focus (or "Reset") to zoom out; the bar
// under the graph tells the hovered node's numbers and opens its slowest span in the timeline.
import { fmtMs, h } from "../../common.js";
import { findNode, flameLayout, flameTree } from "./layout.js";

const ROW_PX = 22;
const LABEL_MIN_PX = 36;

export class FlamegraphView {
  /** page: {model, colors, select, showView, setHash}; focus: a node key to zoom into. */
  constructor(page, { focus = null } = {}) {
    this.page = page;
    this.tree = flameTree(page.model);
    this.focus = findNode(this.tree, focus) ? focus : null;
    this.graph = h("div", { class: "flame", id: "flamegraph", role: "group" });
    this.info = h("div", { class: "flame-info", id: "flame-info", "aria-live": "polite" });
    this.crumbs = h("span", { class: "flame-crumbs" });
    this.resetButton = h(
      "button",
      { type: "button", class: "small", id: "flame-reset", onclick: () => this.zoom(null) },
      "⤢ Reset zoom",
    );
    this.element = h(
      "div",
      { class: "view flamegraph-view", id: "view-flamegraph" },
      h(
        "div",
        { class: "view-toolbar" },
        this.crumbs,
        h("span", { class: "spacer" }),
        h(
          "span",
          { class: "muted" },
          "Spans of one operation under one parent merge into one node: width is their total " +
            "time. Click to zoom.",
        ),
        this.resetButton,
      ),
      this.graph,
      this.info,
    );
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(this.graph);
  }

  zoom(key) {
    this.focus = key && key !== this.tree.key ? key : null;
    this.page.setHash({ focus: this.focus });
    this.draw();
  }

  nodeText(node) {
    if (!node.service) return `whole trace · ${fmtMs(this.page.model.duration)}`;
    const parts = [
      `${node.service} · ${node.name}${node.count > 1 ? ` ×${node.count}` : ""}`,
      `total ${fmtMs(node.total)}`,
      `self ${fmtMs(node.self)}`,
    ];
    if (node.errors) parts.push(`${node.errors} error${node.errors > 1 ? "s" : ""}`);
    if (node.squeezed)
      parts.push("its children ran concurrently (or outlived it): drawn scaled to fit");
    return parts.join(" · ");
  }

  showInfo(node) {
    if (!node) {
      this.info.replaceChildren(h("span", { class: "muted" }, "Hover a node for its numbers."));
      return;
    }
    const slowest = node.spanIds
      .map((id) => this.page.model.byId.get(id))
      .sort((a, b) => b.duration - a.duration)[0];
    this.info.replaceChildren(
      h("span", {}, this.nodeText(node)),
      slowest
        ? h(
            "a",
            {
              href: `#span=${slowest.id}`,
              class: "open-span",
              onclick: (e) => {
                e.preventDefault();
                this.page.showView("timeline");
                this.page.select(slowest.id);
              },
            },
            node.count > 1 ? " → slowest in the timeline" : " → in the timeline",
          )
        : null,
    );
  }

  draw() {
    const width = this.graph.clientWidth || 1000;
    const items = flameLayout(this.tree, { focus: this.focus, minWidth: 1 / width });
    const depth = Math.max(...items.map((i) => i.depth)) + 1;
    this.graph.style.height = `${depth * ROW_PX}px`;
    this.graph.replaceChildren(
      ...items.map(({ node, x0, x1, ancestor }) => {
        const px = (x1 - x0) * width;
        const spans = node.spanIds.map((id) => this.page.model.byId.get(id));
        const fault = spans.some((s) => s.fault);
        const el = h(
          "div",
          {
            class: [
              "flame-node",
              ancestor ? "ancestor" : "",
              node.errors ? "error" : "",
              fault ? "fault" : "",
              node.squeezed ? "squeezed" : "",
              node.service ? "" : "virtual",
            ],
            "data-key": node.key,
            "data-name": node.name,
            "data-service": node.service,
            "data-count": String(node.count),
            "data-total-ns": String(node.total),
            style: {
              left: `${100 * x0}%`,
              width: `${100 * (x1 - x0)}%`,
              top: `${node.depth * ROW_PX}px`,
              "--svc": node.service ? this.page.colors.get(node.service) : "#8c959f",
            },
            title: this.nodeText(node),
            tabindex: "0",
            onclick: () => this.zoom(ancestor ? node.key : node.key === this.focus ? null : node.key),
            onkeydown: (e) => e.key === "Enter" && this.zoom(node.key),
            onmouseenter: () => this.showInfo(node),
            onfocus: () => this.showInfo(node),
          },
          px >= LABEL_MIN_PX
            ? h(
                "span",
                { class: "flame-label" },
                fault ? "⚡ " : "",
                node.name,
                node.count > 1 ? ` ×${node.count}` : "",
                h("span", { class: "flame-dur" }, ` ${fmtMs(node.total)}`),
              )
            : null,
        );
        return el;
      }),
    );
    const focused = findNode(this.tree, this.focus);
    this.resetButton.hidden = !focused;
    const path = [];
    if (focused) {
      let node = this.tree;
      path.push(node);
      for (const index of focused.key.split(".").slice(1)) {
        node = node.children[Number(index)];
        path.push(node);
      }
    }
    this.crumbs.replaceChildren(
      ...(focused
        ? path.flatMap((node, i) => [
            i ? " › " : "",
            h(
              "button",
              { type: "button", class: "link", onclick: () => this.zoom(node.key) },
              node.name,
            ),
          ])
        : [h("span", { class: "muted" }, "whole trace")]),
    );
    this.showInfo(focused);
  }
}
