/**
 * The pipeline graph as data (pure functions): nodes from the stages of `GET status`, edges
 * from what flows between them (variables, files, `after:`), the labels of the edges, the
 * stages the failed-only filter keeps, and a key that changes only when the layout must.
 */

import { displayState, formatDuration } from './format';
import { IJob, IStatus } from './tokens';
import { StageState } from './vocabulary';

/** One stage in the graph. */
export interface IGraphNode {
  name: string;
  /** As the sidebar shows it: a running job's view wins over the last status. */
  state: string;
  /** The last run's duration, e.g. `7.2 s`, or empty. */
  duration: string;
  /** 1-based numbers of the notebook cells the stage was cut from. */
  cells: number[];
}

/** What flows from `source` to `target`. */
export interface IGraphEdge {
  id: string;
  source: string;
  target: string;
  /** The variables and files that flow, in the order the target names them. */
  flows: string[];
  /** Whether an `after:` tag orders the two stages. */
  after: boolean;
}

export interface IPipelineGraph {
  nodes: IGraphNode[];
  edges: IGraphEdge[];
}

/** The graph of `status` while `job` runs (or not). */
export function buildGraph(status: IStatus, job: IJob | null): IPipelineGraph {
  const names = new Set(status.stages.map(stage => stage.name));
  const edges = new Map<string, IGraphEdge>();
  const edgeOf = (source: string, target: string): IGraphEdge | null => {
    if (!names.has(source) || source === target) {
      return null;
    }
    const id = `${source}\u2192${target}`;
    let edge = edges.get(id);
    if (!edge) {
      edge = { id, source, target, flows: [], after: false };
      edges.set(id, edge);
    }
    return edge;
  };
  const nodes = status.stages.map(stage => {
    for (const load of stage.loads ?? []) {
      addFlow(edgeOf(load.from, stage.name), load.name);
    }
    for (const dep of stage.deps ?? []) {
      for (const writer of dep.from) {
        addFlow(edgeOf(writer, stage.name), dep.path);
      }
    }
    for (const before of stage.after ?? []) {
      const edge = edgeOf(before, stage.name);
      if (edge) {
        edge.after = true;
      }
    }
    return {
      name: stage.name,
      state: displayState(stage, job),
      duration: formatDuration(stage.last_run?.duration),
      cells: stage.cells ?? []
    };
  });
  return { nodes, edges: [...edges.values()] };
}

function addFlow(edge: IGraphEdge | null, what: string): void {
  if (edge && !edge.flows.includes(what)) {
    edge.flows.push(what);
  }
}

/** An edge's label: what flows (at most `max` names, then "+N more"), or "after". */
export function edgeLabel(edge: IGraphEdge, max = 2): string {
  if (!edge.flows.length) {
    return edge.after ? 'after' : '';
  }
  const shown = edge.flows.slice(0, max).join(', ');
  const more = edge.flows.length - max;
  return more > 0 ? `${shown} +${more} more` : shown;
}

/**
 * The stages the failed-only filter shows: the failed ones and every stage that leads to them
 * (their upstream, through any edge). Empty when no stage failed.
 */
export function failedAndUpstream(graph: IPipelineGraph): Set<string> {
  const upstreamOf = new Map<string, string[]>();
  for (const edge of graph.edges) {
    upstreamOf.set(edge.target, [
      ...(upstreamOf.get(edge.target) ?? []),
      edge.source
    ]);
  }
  const kept = new Set<string>();
  const todo = graph.nodes
    .filter(node => node.state === StageState.FAILED)
    .map(node => node.name);
  while (todo.length) {
    const name = todo.pop()!;
    if (!kept.has(name)) {
      kept.add(name);
      todo.push(...(upstreamOf.get(name) ?? []));
    }
  }
  return kept;
}

/**
 * What the layout depends on: the stages, the edges and the labels' text. States and durations
 * are not in it, so a run recolours the graph without laying it out again.
 */
export function layoutKey(graph: IPipelineGraph): string {
  return JSON.stringify([
    graph.nodes.map(node => node.name),
    graph.edges.map(edge => [edge.id, edgeLabel(edge)])
  ]);
}
