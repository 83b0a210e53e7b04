/**
 * The layered layout of the pipeline graph, by elkjs (its bundled build: no web worker). Stages
 * flow left to right; edges are routed as polylines. Edge labels are not given to elk (each
 * label would be a node more to place): the view puts them at the middle of their edge.
 *
 * Large graphs get elk's cheaper settings (`LARGE_OPTIONS`), and a layout is computed once per
 * set of stages and edges (`cachedLayout`); `benchmarks/bench_lab.py` measures 1,000 stages in
 * the browser.
 */

import ELK, { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk.bundled.js';

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

/** The layout of `graph`, whose `layoutKey` is `key`: computed once, then remembered. */
export function cachedLayout(
  graph: IPipelineGraph,
  key: string
): Promise<IGraphLayout> {
  let layout = cache.get(key);
  if (!layout) {
    layout = layoutGraph(graph);
    layout.catch(() => cache.delete(key));
    cache.set(key, layout);
    if (cache.size > CACHE_SIZE) {
      cache.delete(cache.keys().next().value!);
    }
  }
  return layout;
}

let elk: InstanceType<typeof ELK> | null = null;

/** Lay out `graph`: a box per stage, a path per edge. */
export async function layoutGraph(
  graph: IPipelineGraph
): Promise<IGraphLayout> {
  elk ??= new ELK();
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
  const result = await elk.layout(input);
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
