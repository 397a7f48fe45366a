// The statistics view (rendering): the table statistics/compute.js builds, sortable by any
// column, the heaviest self time first. A row opens its slowest span in the timeline.
import { fmtMs, h, serviceChip } from "../../common.js";
import { COLUMNS, sortStatistics, traceStatistics } from "./compute.js";

const DEFAULT_SORT = { column: "selfTotal", direction: "desc" };

/** "selfTotal.desc" → {column, direction}; the default for anything else. */
export function parseSort(text) {
  const [column, direction] = String(text || "").split(".");
  if (!COLUMNS.some((c) => c.key === column) || !["asc", "desc"].includes(direction))
    return DEFAULT_SORT;
  return { column, direction };
}

export class StatisticsView {
  /** page: {model, colors, critical, overhangs, select, showView, setHash}. */
  constructor(page, { sort = null, by = null } = {}) {
    this.page = page;
    this.sort = parseSort(sort);
    this.groupBy = by === "service" ? "service" : "operation";
    this.table = h("table", { class: "stats", id: "stats-table" });
    this.groupSelect = h(
      "select",
      {
        id: "stats-group",
        "aria-label": "group by",
        onchange: (e) => {
          this.groupBy = e.target.value;
          this.page.setHash({ by: this.groupBy === "service" ? "service" : null });
          this.draw();
        },
      },
      h("option", { value: "operation" }, "service and operation"),
      h("option", { value: "service" }, "service"),
    );
    this.groupSelect.value = this.groupBy;
    this.element = h(
      "div",
      { class: "view statistics-view", id: "view-statistics" },
      h(
        "div",
        { class: "view-toolbar" },
        h("label", {}, "Group by ", this.groupSelect),
        h(
          "span",
          { class: "muted" },
          "Self time: a span's time not covered by its children (children clipped to it, " +
            "overlaps counted once). Click a heading to sort; a row opens its slowest span.",
        ),
      ),
      h("div", { class: "stats-scroll" }, this.table),
    );
    this.draw();
  }

  draw() {
    const model = this.page.model;
    const rows = sortStatistics(
      traceStatistics(model, { groupBy: this.groupBy, critical: this.page.critical }),
      this.sort.column,
      this.sort.direction,
    );
    const columns = COLUMNS.filter((c) => this.groupBy === "operation" || c.key !== "operation");
    const heaviest = Math.max(...rows.map((r) => r.selfTotal), 1);
    const overhanging = new Set(this.page.overhangs.keys());
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((c) => {
          const sorted = this.sort.column === c.key;
          return h(
            "th",
            {
              scope: "col",
              class: c.numeric ? "num" : "",
              "aria-sort": sorted
                ? this.sort.direction === "asc"
                  ? "ascending"
                  : "descending"
                : null,
            },
            h(
              "button",
              {
                type: "button",
                class: "sort",
                "data-column": c.key,
                title: `Sort by ${c.label.toLowerCase()}`,
                onclick: () => this.sortBy(c),
              },
              c.label,
              sorted ? (this.sort.direction === "asc" ? " ▲" : " ▼") : "",
            ),
          );
        }),
      ),
    );
    const cell = (row, c) => {
      const value = row[c.key];
      if (c.key === "service") return serviceChip(value, this.page.colors);
      if (c.key === "operation") return value;
      if (c.key === "selfPercent") return `${value.toFixed(1)} %`;
      if (c.key === "errors") return value ? h("span", { class: "error" }, String(value)) : "0";
      if (c.duration) return fmtMs(value);
      return String(value);
    };
    const body = h(
      "tbody",
      {},
      rows.map((row, i) =>
        h(
          "tr",
          {
            class: [i === 0 ? "top" : "", row.errors ? "has-error" : ""],
            "data-key": row.key,
            "data-service": row.service,
            "data-operation": row.operation ?? null,
            "data-self-ns": String(row.selfTotal),
            "data-count": String(row.count),
            tabindex: "0",
            title: `Open the slowest ${row.operation ?? row.service} span in the timeline`,
            onclick: () => this.open(row),
            onkeydown: (e) => e.key === "Enter" && this.open(row),
          },
          columns.map((c) =>
            h(
              "td",
              {
                class: [
                  c.numeric ? "num" : "",
                  c.key === "selfTotal" ? "self" : "",
                  c.key === "operation" ? "op" : "",
                ],
                "data-column": c.key,
                style:
                  c.key === "selfTotal"
                    ? { "--share": `${(100 * row.selfTotal) / heaviest}%` }
                    : null,
              },
              cell(row, c),
              c.key === "operation" && row.spanIds.some((id) => overhanging.has(id))
                ? h(
                    "span",
                    {
                      class: "overhang-icon",
                      title:
                        "some of these spans run outside their parent (scheduling or clock " +
                        "skew): their parent's self time counts them only up to its end",
                    },
                    " ⇥",
                  )
                : null,
            ),
          ),
        ),
      ),
    );
    this.table.replaceChildren(head, body);
    this.table.dataset.sort = `${this.sort.column}.${this.sort.direction}`;
  }

  sortBy(column) {
    const same = this.sort.column === column.key;
    const direction = same
      ? this.sort.direction === "desc"
        ? "asc"
        : "desc"
      : column.numeric
        ? "desc"
        : "asc";
    this.sort = { column: column.key, direction };
    const text = `${column.key}.${direction}`;
    this.page.setHash({ sort: text === "selfTotal.desc" ? null : text });
    this.draw();
  }

  open(row) {
    this.page.showView("timeline");
    this.page.select(row.slowest);
  }
}
