// The service graph's layout: callers left of their callees, in layers, by Sugiyama's method
// for directed graphs (Graphviz's dot, which Jaeger UI's graphs run through its plexus
// package, is one). Pure (no DOM; tests/js/graph-layout.test.mjs); graph/render.js draws it.
//
//   import { layoutGraph } from "/static/graph/layout.js";
//   const layout = layoutGraph(buildGraph(body.data, { services })); // graph/model.js
//
// Written here rather than taken from dagre, ELK or dot: the viewer has no build step and no
// runtime dependency, and a few services need only the textbook steps, each deterministic
// (the same links in any order give the same picture) and bounded (no loop waits for
// convergence, so cycles and self-calls cannot hang it):
//   1. cycles are broken by reversing the back edges a depth-first search finds;
//   2. each service's layer is its longest path from a root (a service nobody calls);
//   3. an edge across several layers passes through a virtual point in each layer between;
//   4. within a layer, services are ordered by the barycentre of their neighbours, sweeping
//      down and up a fixed number of times and keeping the order with the fewest crossings;
//   5. columns (each as wide as its widest name) and rows get coordinates; edges become
//      smooth paths, each with a place for its label.
// A self-call is a loop above its service.
import { compareNames } from "./model.js";

/** Sizes in px: node height, gaps between columns and rows, the self-loop, a label's box. */
export const GEOMETRY = {
  nodeHeight: 40,
  minNodeWidth: 110,
  nodePadding: 40, // the colour dot and room either side of the name
  layerGap: 240,
  rowGap: 80,
  loopHeight: 34,
  labelHeight: 46, // three lines of 12 px text
  labelGap: 8, // between a self-call's label and the service above
  margin: 24,
};
/** Down-and-up sweeps of the barycentre ordering. */
export const SWEEPS = 6;

/** A name's width at the page's 13 px sans-serif, roughly: the renderer measures for real. */
export function estimateTextWidth(text) {
  return 7.5 * Array.from(String(text)).length;
}

/** The DFS back edges of the graph (self-calls aside): a Set of edges to reverse. */
function backEdges(names, edges) {
  const successors = new Map(names.map((n) => [n, []]));
  const indegree = new Map(names.map((n) => [n, 0]));
  for (const edge of edges) {
    successors.get(edge.parent).push(edge);
    indegree.set(edge.child, indegree.get(edge.child) + 1);
  }
  for (const list of successors.values()) list.sort((x, y) => compareNames(x.child, y.child));
  const state = new Map(); // name -> 1 on the stack, 2 done
  const back = new Set();
  // Roots first, so that the edges out of them keep their direction; then any name a cycle
  // with no way in leaves unvisited, in name order.
  const starts = [...names.filter((n) => indegree.get(n) === 0), ...names];
  for (const start of starts) {
    if (state.has(start)) continue;
    state.set(start, 1);
    const stack = [{ name: start, next: 0 }];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const out = successors.get(top.name);
      if (top.next === out.length) {
        state.set(top.name, 2);
        stack.pop();
        continue;
      }
      const edge = out[top.next];
      top.next += 1;
      const seen = state.get(edge.child);
      if (seen === 1) back.add(edge);
      else if (!seen) {
        state.set(edge.child, 1);
        stack.push({ name: edge.child, next: 0 });
      }
    }
  }
  return back;
}

/** Each name's layer: its longest path from a root, over the edges as oriented (a DAG). */
function longestPathLayers(names, oriented) {
  const layer = new Map(names.map((n) => [n, 0]));
  const waiting = new Map(names.map((n) => [n, 0]));
  const out = new Map(names.map((n) => [n, []]));
  for (const { from, to } of oriented) {
    waiting.set(to, waiting.get(to) + 1);
    out.get(from).push(to);
  }
  const ready = names.filter((n) => waiting.get(n) === 0);
  for (let i = 0; i < ready.length; i += 1) {
    const name = ready[i];
    for (const to of out.get(name)) {
      layer.set(to, Math.max(layer.get(to), layer.get(name) + 1));
      waiting.set(to, waiting.get(to) - 1);
      if (waiting.get(to) === 0) ready.push(to);
    }
  }
  return layer;
}

/**
 * Crossings between the segments of adjacent layers, for the current order: two segments
 * cross when their ends are in opposite orders. Sorted by their upper end, that is the
 * inversions of the lower ends, counted with a Fenwick tree (Barth, Jünger and Mutzel's
 * bilayer cross count): O(s log s), where comparing every pair was too slow for a few
 * hundred services.
 */
function countCrossings(segmentsByLayer) {
  let crossings = 0;
  for (const segments of segmentsByLayer) {
    const sorted = segments
      .map(([a, b]) => [a.index, b.index])
      .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const size = Math.max(0, ...sorted.map(([, b]) => b)) + 1;
    const tree = new Array(size + 1).fill(0);
    sorted.forEach(([, b], seen) => {
      let atMost = 0; // segments so far whose lower end is at or before b
      for (let i = b + 1; i > 0; i -= i & -i) atMost += tree[i];
      crossings += seen - atMost;
      for (let i = b + 1; i <= size; i += i & -i) tree[i] += 1;
    });
  }
  return crossings;
}

/** Orders each layer by the barycentre of its neighbours in the layer above or below. */
function orderLayers(layers, segmentsByLayer) {
  const renumber = (layer) => layer.forEach((v, i) => (v.index = i));
  layers.forEach(renumber);
  const sweep = (layer, neighbours) => {
    const keyed = layer.map((v) => {
      const others = neighbours(v);
      const bary = others.length
        ? others.reduce((sum, o) => sum + o.index, 0) / others.length
        : v.index;
      return { v, bary };
    });
    keyed.sort((x, y) => x.bary - y.bary || x.v.index - y.v.index);
    keyed.forEach(({ v }, i) => (layer[i] = v));
    renumber(layer);
  };
  let best = layers.map((layer) => [...layer]);
  let fewest = countCrossings(segmentsByLayer);
  for (let round = 0; round < SWEEPS && fewest > 0; round += 1) {
    for (let l = 1; l < layers.length; l += 1) sweep(layers[l], (v) => v.up);
    for (let l = layers.length - 2; l >= 0; l -= 1) sweep(layers[l], (v) => v.down);
    const crossings = countCrossings(segmentsByLayer);
    if (crossings < fewest) {
      fewest = crossings;
      best = layers.map((layer) => [...layer]);
    }
  }
  best.forEach((layer, l) => {
    layers[l] = layer;
    renumber(layer);
  });
  return fewest;
}

/** A point of a cubic Bézier curve at t. */
function bezierPoint(p0, p1, p2, p3, t) {
  const u = 1 - t;
  const at = (k) =>
    u * u * u * p0[k] + 3 * u * u * t * p1[k] + 3 * u * t * t * p2[k] + t * t * t * p3[k];
  return { x: at(0), y: at(1) };
}

const round1 = (value) => Math.round(value * 10) / 10;

/**
 * A smooth path through `points` ([x, y], left to right or right to left): each step a cubic
 * curve leaving and arriving horizontally, a straight line where the y does not change.
 */
export function smoothPath(points) {
  const [first, ...rest] = points;
  let d = `M${round1(first[0])},${round1(first[1])}`;
  let previous = first;
  for (const point of rest) {
    if (point[1] === previous[1]) d += ` L${round1(point[0])},${round1(point[1])}`;
    else {
      const mid = round1((previous[0] + point[0]) / 2);
      d +=
        ` C${mid},${round1(previous[1])} ${mid},${round1(point[1])}` +
        ` ${round1(point[0])},${round1(point[1])}`;
    }
    previous = point;
  }
  return d;
}

/**
 * Where everything goes. `graph`: {nodes, edges} from graph/model.js `buildGraph`; options:
 * `measure(name)` the width of a name in px (default estimateTextWidth), and any GEOMETRY
 * field. Returns {width, height, layers, crossings, nodes, edges}:
 *   node {node, x, y (its top left), width, height, layer, row, cx, cy (its centre)}
 *   edge {edge, kind: "forward" | "back" (drawn against the layers' direction, to break a
 *         cycle) | "self", path (SVG path data from the caller to the callee), label {x, y,
 *         align: "middle" | "above" | "below"}: where its label's box is centred, or sits
 *         above or below the point}
 */
export function layoutGraph(graph, { measure = estimateTextWidth, ...sizes } = {}) {
  const g = { ...GEOMETRY, ...sizes };
  const names = graph.nodes.map((n) => n.name);
  const nodeByName = new Map(graph.nodes.map((n) => [n.name, n]));
  const between = graph.edges.filter((e) => !e.self);
  const selfEdges = graph.edges.filter((e) => e.self);
  const back = backEdges(names, between);
  const oriented = between.map((edge) =>
    back.has(edge)
      ? { edge, from: edge.child, to: edge.parent, reversed: true }
      : { edge, from: edge.parent, to: edge.child, reversed: false },
  );
  const layerOf = longestPathLayers(names, oriented);
  const layerCount = names.length ? Math.max(...layerOf.values()) + 1 : 0;

  // Vertices: the services and a virtual point per layer an edge crosses.
  const vertex = new Map(
    names.map((name) => [
      name,
      { name, node: nodeByName.get(name), layer: layerOf.get(name), up: [], down: [], index: 0 },
    ]),
  );
  const layers = Array.from({ length: layerCount }, () => []);
  for (const name of names) layers[layerOf.get(name)].push(vertex.get(name));
  const segmentsByLayer = Array.from({ length: Math.max(layerCount - 1, 0) }, () => []);
  for (const o of oriented) {
    o.chain = [vertex.get(o.from)];
    for (let l = layerOf.get(o.from) + 1; l < layerOf.get(o.to); l += 1) {
      const dummy = { name: null, node: null, layer: l, up: [], down: [], index: 0 };
      layers[l].push(dummy);
      o.chain.push(dummy);
    }
    o.chain.push(vertex.get(o.to));
    for (let i = 1; i < o.chain.length; i += 1) {
      const [a, b] = [o.chain[i - 1], o.chain[i]];
      a.down.push(b);
      b.up.push(a);
      segmentsByLayer[a.layer].push([a, b]);
    }
  }
  const crossings = orderLayers(layers, segmentsByLayer);

  // Coordinates: a column per layer as wide as its widest name, each layer's rows centred
  // against the tallest layer.
  const loopRoom = selfEdges.length ? g.loopHeight + g.labelHeight + g.labelGap : 0;
  const rowGap = Math.max(g.rowGap, loopRoom);
  const pitch = g.nodeHeight + rowGap;
  const widthOf = (v) =>
    v.node ? Math.max(g.minNodeWidth, Math.ceil(measure(v.name) + g.nodePadding)) : 0;
  const columns = [];
  let x = g.margin;
  for (const layer of layers) {
    const width = Math.max(0, ...layer.map(widthOf));
    columns.push({ x, width });
    x += width + g.layerGap;
  }
  const rows = Math.max(0, ...layers.map((layer) => layer.length));
  let top = g.margin + g.labelHeight / 2;
  // Room above the self-calls' loops and labels, where a service with one is in the top row.
  const offsetOf = (layer) => ((rows - layer.length) * pitch) / 2;
  for (const edge of selfEdges) {
    const v = vertex.get(edge.parent);
    top = Math.max(top, g.margin + loopRoom - offsetOf(layers[v.layer]) - v.index * pitch);
  }
  for (const [l, layer] of layers.entries()) {
    const offset = offsetOf(layer);
    for (const v of layer) {
      // Every service of a column as wide as the column: the arrows into it end in a line.
      v.width = v.node ? columns[l].width : 0;
      v.x = columns[l].x;
      v.y = top + offset + v.index * pitch;
      v.cy = v.y + g.nodeHeight / 2;
    }
  }
  const width = layerCount ? x - g.layerGap + g.margin : 0;
  const height = layerCount ? top + rows * pitch - rowGap + g.labelHeight / 2 + g.margin : 0;

  // Edges. Two edges between the same two services (a call each way) leave and arrive apart,
  // their labels one above and one below.
  const pairs = new Map();
  for (const o of oriented) {
    const key = [o.from, o.to].sort(compareNames).join("\u0000");
    pairs.set(key, [...(pairs.get(key) || []), o]);
  }
  const edges = [];
  for (const group of pairs.values()) {
    group.forEach((o, i) => {
      const shift = group.length > 1 ? (i === 0 ? -1 : 1) * (g.nodeHeight / 3) : 0;
      const align = group.length > 1 ? (i === 0 ? "above" : "below") : "middle";
      const points = [];
      for (const [k, v] of o.chain.entries()) {
        const column = columns[v.layer];
        const y = v.cy + shift;
        if (k > 0) points.push([v.node ? v.x : column.x, y]);
        if (k < o.chain.length - 1)
          points.push([v.node ? v.x + v.width : column.x + column.width, y]);
      }
      // The label sits in the gap next to the callee: the last gap, or the first when the
      // edge is drawn backwards.
      const at = o.reversed ? 0 : points.length - 2;
      const [p, q] = [points[at], points[at + 1]];
      const mid = (p[0] + q[0]) / 2;
      const point = bezierPoint(p, [mid, p[1]], [mid, q[1]], q, 0.5);
      if (o.reversed) points.reverse();
      edges.push({
        edge: o.edge,
        kind: o.reversed ? "back" : "forward",
        path: smoothPath(points),
        label: { x: round1(point.x), y: round1(point.y), align },
      });
    });
  }
  for (const edge of selfEdges) {
    const v = vertex.get(edge.parent);
    const [left, right, rise] = [v.x + v.width * 0.3, v.x + v.width * 0.7, v.y - g.loopHeight];
    const path =
      `M${round1(left)},${round1(v.y)} C${round1(v.x)},${round1(rise)}` +
      ` ${round1(v.x + v.width)},${round1(rise)} ${round1(right)},${round1(v.y)}`;
    // The curve's top is three quarters of the way up its control points.
    const label = {
      x: round1(v.x + v.width / 2),
      y: round1(v.y - 0.75 * g.loopHeight),
      align: "above",
    };
    edges.push({ edge, kind: "self", path, label });
  }
  edges.sort(
    (x, y) =>
      compareNames(x.edge.parent, y.edge.parent) || compareNames(x.edge.child, y.edge.child),
  );

  const nodes = [...vertex.values()]
    .map((v) => ({
      node: v.node,
      x: round1(v.x),
      y: round1(v.y),
      width: v.width,
      height: g.nodeHeight,
      layer: v.layer,
      row: v.index,
      cx: round1(v.x + v.width / 2),
      cy: round1(v.cy),
    }))
    .sort((a, b) => compareNames(a.node.name, b.node.name));
  return {
    width: Math.ceil(width),
    height: Math.ceil(height),
    layers: layerCount,
    crossings,
    nodes,
    edges,
  };
}
