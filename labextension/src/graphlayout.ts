/**
 * The layered layout of the pipeline graph, by elkjs. Stages flow left to right; edges are
 * routed as polylines. Edge labels are not given to elk (each label would be a node more to
 * place): the view puts them at the middle of their edge.
 *
 * Large graphs get elk's cheaper settings (`LARGE_OPTIONS`), and a layout is computed once per
 * set of stages and edges (`cachedLayout`); `benchmarks/bench_lab.py` measures 1,000 stages in
 * the browser.
 *
 * Even so, elk takes seconds at 1,000 stages (its long edges become chains of dummy nodes), and
 * none of its options brings that under a second (LONGEST_PATH layering, other edge routings
 * or node placements: as slow or slower; dagre: slower still). So elk runs in a web worker
 * (`elkInstance`), where it does not freeze the page, and a large graph is first drawn at once
 * by `provisionalLayout`: each stage in the layer of its longest path from a source, straight
 * edges, every one pointing right. The view moves the nodes when elk's layout arrives.
 */

import ELK, { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import workerSource from 'elkjs/lib/elk-worker.min.js?raw';

import { IPipelineGraph } from './graphdata';

export interface IPoint {
  x: number;
  y: number;
}

export interface IBox extends IPoint {
  width: number;
  height: number;
}

export interface IGraphLayout {
  width: number;
  height: number;
  nodes: Map<string, IBox>;
  /** Each edge's path, from its source to its target. */
  edges: Map<string, IPoint[]>;
}

/** Node height (px); the width follows the name (`nodeWidth`). */
export const NODE_HEIGHT = 48;

/** A node wide enough for its name (monospace-ish estimate), within bounds. */
export function nodeWidth(name: string): number {
  return Math.min(280, Math.max(170, 40 + 9 * name.length));
}

/** At or above this many stages, elk's cheaper settings are used. */
export const LARGE_GRAPH = 200;

const BASE_OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'RIGHT',
  'elk.edgeRouting': 'POLYLINE',
  'elk.spacing.nodeNode': '24',
  'elk.layered.spacing.nodeNodeBetweenLayers': '90',
  'elk.layered.spacing.edgeNodeBetweenLayers': '20',
  'elk.padding': '[top=16,left=16,bottom=16,right=16]'
};

// Within a layer, stages keep the pipeline's order (no crossing minimisation), nodes are
// placed by elk's simple strategy, and the graph is laid out as one piece: at this size that
// reads as well, and elk lays 1,000 stages out several times faster (see bench_lab.py).
const LARGE_OPTIONS: Record<string, string> = {
  'elk.separateConnectedComponents': 'false',
  'elk.layered.thoroughness': '1',
  'elk.layered.crossingMinimization.strategy': 'NONE',
  'elk.layered.crossingMinimization.greedySwitch.type': 'OFF',
  'elk.layered.nodePlacement.strategy': 'SIMPLE',
  'elk.layered.compaction.postCompaction.strategy': 'NONE'
};

/** Layouts already computed, by `layoutKey`: a graph opened again is drawn at once. */
const CACHE_SIZE = 8;
const cache = new Map<string, Promise<IGraphLayout>>();
const done = new Map<string, IGraphLayout>();

/** elk's layout of the graph whose `layoutKey` is `key`, if it is already computed. */
export function knownLayout(key: string): IGraphLayout | undefined {
  return cache.has(key) ? done.get(key) : undefined;
}

/** The layout of `graph`, whose `layoutKey` is `key`: computed once, then remembered. */
export function cachedLayout(
  graph: IPipelineGraph,
  key: string
): Promise<IGraphLayout> {
  let layout = cache.get(key);
  if (!layout) {
    layout = layoutGraph(graph);
    layout.then(
      result => cache.has(key) && done.set(key, result),
      () => cache.delete(key)
    );
    cache.set(key, layout);
    if (cache.size > CACHE_SIZE) {
      const oldest = cache.keys().next().value!;
      cache.delete(oldest);
      done.delete(oldest);
    }
  }
  return layout;
}

let elk: Promise<InstanceType<typeof ELK>> | null = null;

/**
 * elk in a web worker made from a blob URL (the extension is a module-federated bundle: the
 * worker's own URL is not known). Where no worker can start (no `Worker`, as in the jest tests,
 * or a page that forbids blob workers), elk's bundled build lays out on the main thread.
 */
function elkInstance(): Promise<InstanceType<typeof ELK>> {
  elk ??= (async () => {
    if (typeof Worker !== 'undefined' && workerSource) {
      try {
        const url = URL.createObjectURL(
          new Blob([workerSource], { type: 'text/javascript' })
        );
        return new ELK({ workerFactory: () => new Worker(url) });
      } catch {
        // fall through: the main thread
      }
    }
    const bundled = await import('elkjs/lib/elk.bundled.js');
    return new bundled.default();
  })();
  return elk;
}

/** Lay out `graph` with elk: a box per stage, a path per edge. */
export async function layoutGraph(
  graph: IPipelineGraph
): Promise<IGraphLayout> {
  const layouter = await elkInstance();
  const large = graph.nodes.length >= LARGE_GRAPH;
  const input: ElkNode = {
    id: 'root',
    layoutOptions: large ? { ...BASE_OPTIONS, ...LARGE_OPTIONS } : BASE_OPTIONS,
    children: graph.nodes.map(node => ({
      id: node.name,
      width: nodeWidth(node.name),
      height: NODE_HEIGHT
    })),
    edges: graph.edges.map((edge): ElkExtendedEdge => ({
      id: edge.id,
      sources: [edge.source],
      targets: [edge.target]
    }))
  };
  const result = await layouter.layout(input);
  const nodes = new Map<string, IBox>();
  for (const child of result.children ?? []) {
    nodes.set(child.id, {
      x: child.x ?? 0,
      y: child.y ?? 0,
      width: child.width ?? 0,
      height: child.height ?? 0
    });
  }
  const edges = new Map<string, IPoint[]>();
  for (const edge of result.edges ?? []) {
    const section = edge.sections?.[0];
    if (section) {
      edges.set(edge.id, [
        section.startPoint,
        ...(section.bendPoints ?? []),
        section.endPoint
      ]);
    }
  }
  return {
    width: result.width ?? 0,
    height: result.height ?? 0,
    nodes,
    edges
  };
}

/**
 * Each stage's layer: the length of its longest path from a source (a stage nothing flows
 * into is in layer 0), so every edge goes to a later layer. Stages on a cycle (a pipeline has
 * none) come after all the others.
 */
export function layers(graph: IPipelineGraph): Map<string, number> {
  const incoming = new Map(graph.nodes.map(node => [node.name, 0]));
  const outgoing = new Map<string, string[]>(
    graph.nodes.map(node => [node.name, []])
  );
  for (const edge of graph.edges) {
    if (incoming.has(edge.source) && incoming.has(edge.target)) {
      incoming.set(edge.target, incoming.get(edge.target)! + 1);
      outgoing.get(edge.source)!.push(edge.target);
    }
  }
  const layer = new Map<string, number>();
  const ready = graph.nodes
    .map(node => node.name)
    .filter(name => !incoming.get(name));
  for (const name of ready) {
    layer.set(name, 0);
  }
  for (let i = 0; i < ready.length; i++) {
    const from = layer.get(ready[i])!;
    for (const target of outgoing.get(ready[i])!) {
      layer.set(target, Math.max(layer.get(target) ?? 0, from + 1));
      const left = incoming.get(target)! - 1;
      incoming.set(target, left);
      if (!left) {
        ready.push(target);
      }
    }
  }
  const placed = new Set(ready);
  let last = Math.max(-1, ...ready.map(name => layer.get(name)!));
  for (const node of graph.nodes) {
    if (!placed.has(node.name)) {
      layer.set(node.name, ++last);
    }
  }
  return layer;
}

/**
 * A layered drawing computed at once, shown while elk lays a large graph out: stages in the
 * columns of their `layers`, in the pipeline's order within a column; each edge a straight
 * line from the right side of its source to the left side of its target (always rightwards).
 * Spacing as elk's.
 */
export function provisionalLayout(graph: IPipelineGraph): IGraphLayout {
  const layerOf = layers(graph);
  const columns: string[][] = [];
  for (const node of graph.nodes) {
    (columns[layerOf.get(node.name)!] ??= []).push(node.name);
  }
  const padding = 16;
  const gap = Number(BASE_OPTIONS['elk.layered.spacing.nodeNodeBetweenLayers']);
  const spacing = Number(BASE_OPTIONS['elk.spacing.nodeNode']);
  const nodes = new Map<string, IBox>();
  let x = padding;
  let height = 0;
  for (const column of columns) {
    if (!column) {
      continue;
    }
    const width = Math.max(...column.map(nodeWidth));
    column.forEach((name, row) => {
      nodes.set(name, {
        x,
        y: padding + row * (NODE_HEIGHT + spacing),
        width: nodeWidth(name),
        height: NODE_HEIGHT
      });
    });
    height = Math.max(
      height,
      column.length * (NODE_HEIGHT + spacing) - spacing
    );
    x += width + gap;
  }
  const edges = new Map<string, IPoint[]>();
  for (const edge of graph.edges) {
    const source = nodes.get(edge.source);
    const target = nodes.get(edge.target);
    if (source && target) {
      edges.set(edge.id, [
        { x: source.x + source.width, y: source.y + NODE_HEIGHT / 2 },
        { x: target.x, y: target.y + NODE_HEIGHT / 2 }
      ]);
    }
  }
  return {
    width: x - gap + padding,
    height: height + 2 * padding,
    nodes,
    edges
  };
}

/** The point halfway along a path (where its label goes). */
export function midpoint(path: IPoint[]): IPoint {
  if (path.length < 2) {
    return path[0] ?? { x: 0, y: 0 };
  }
  const lengths = path
    .slice(1)
    .map((p, i) => Math.hypot(p.x - path[i].x, p.y - path[i].y));
  let left = lengths.reduce((a, b) => a + b, 0) / 2;
  for (let i = 0; i < lengths.length; i++) {
    if (left <= lengths[i] || i === lengths.length - 1) {
      const t = lengths[i] ? Math.min(1, left / lengths[i]) : 0;
      return {
        x: path[i].x + t * (path[i + 1].x - path[i].x),
        y: path[i].y + t * (path[i + 1].y - path[i].y)
      };
    }
    left -= lengths[i];
  }
  return path[path.length - 1];
}
