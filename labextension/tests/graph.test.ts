/**
 * The pipeline graph's pure parts: nodes and edges from `GET status`, edge labels, the
 * failed-only filter, the layout key, elk's layered layout of a diamond, and the provisional
 * layout a large graph shows while elk works.
 */
import {
  buildGraph,
  edgeLabel,
  failedAndUpstream,
  layoutKey
} from '../src/graphdata';
import {
  cachedLayout,
  knownLayout,
  LARGE_GRAPH,
  layers,
  layoutGraph,
  midpoint,
  provisionalLayout
} from '../src/graphlayout';
import { IPipelineGraph } from '../src/graphdata';
import { explainRows } from '../src/explain';
import { IJob, IStageStatus, IStatus } from '../src/tokens';

function stage(name: string, extra: Partial<IStageStatus> = {}): IStageStatus {
  return {
    name,
    state: 'up-to-date',
    reasons: [],
    last_run: null,
    metrics: {},
    cells: [],
    params: [],
    ...extra
  } as IStageStatus;
}

/** load -> left, right -> report; left writes total.txt for report; right runs after left. */
function diamond(): IStatus {
  return {
    notebook: 'work/d.ipynb',
    pipeline: 'work/pipelines/d',
    exists: true,
    job: null,
    stages: [
      stage('load', {
        cells: [2],
        saves: [{ name: 'xs', to: ['left', 'right'] }],
        last_run: { outcome: 'ran', duration: 1.25 }
      }),
      stage('left', {
        cells: [3, 4],
        loads: [{ name: 'xs', from: 'load' }],
        outs: [{ path: 'total.txt', how: 'inferred' }]
      }),
      stage('right', {
        state: 'failed',
        loads: [{ name: 'xs', from: 'load' }],
        after: ['left']
      }),
      stage('report', {
        state: 'never-run',
        loads: [
          { name: 'biggest', from: 'right' },
          { name: 'xs', from: 'load' }
        ],
        deps: [
          { path: 'total.txt', from: ['left'], how: 'inferred' },
          { path: 'raw.csv', from: [], how: 'declared' }
        ]
      })
    ]
  };
}

describe('buildGraph', () => {
  it('has a node per stage with its state, duration and cells', () => {
    const graph = buildGraph(diamond(), null);
    expect(
      graph.nodes.map(n => [n.name, n.state, n.duration, n.cells])
    ).toEqual([
      ['load', 'up-to-date', '1.3 s', [2]],
      ['left', 'up-to-date', '', [3, 4]],
      ['right', 'failed', '', []],
      ['report', 'never-run', '', []]
    ]);
  });

  it('has one edge per pair of stages, naming the variables and files that flow', () => {
    const edges = buildGraph(diamond(), null).edges.map(e => [
      e.source,
      e.target,
      e.flows,
      e.after
    ]);
    expect(edges).toEqual([
      ['load', 'left', ['xs'], false],
      ['load', 'right', ['xs'], false],
      ['left', 'right', [], true],
      ['right', 'report', ['biggest'], false],
      ['load', 'report', ['xs'], false],
      ['left', 'report', ['total.txt'], false]
    ]);
  });

  it('shows a running job over the last status', () => {
    const job = {
      id: 'j',
      pipeline: 'p',
      status: 'running',
      run: null,
      stages: { left: { state: 'running' }, report: { state: 'pending' } },
      errors: [],
      summary: null,
      started: 0,
      finished: null
    } as unknown as IJob;
    const states = buildGraph(diamond(), job).nodes.map(n => n.state);
    expect(states).toEqual(['up-to-date', 'running', 'failed', 'queued']);
  });

  it('reads a status without flows (an older server) as stages without edges', () => {
    const status = diamond();
    status.stages = status.stages.map(s => stage(s.name));
    expect(buildGraph(status, null).edges).toEqual([]);
  });
});

describe('edgeLabel', () => {
  const edge = (flows: string[], after = false) => ({
    id: 'a→b',
    source: 'a',
    target: 'b',
    flows,
    after
  });
  it('names what flows, at most two, then how many more', () => {
    expect(edgeLabel(edge(['xs']))).toBe('xs');
    expect(edgeLabel(edge(['xs', 'data/raw.csv']))).toBe('xs, data/raw.csv');
    expect(edgeLabel(edge(['a', 'b', 'c', 'd']))).toBe('a, b +2 more');
  });
  it('says "after" for an ordering where nothing flows', () => {
    expect(edgeLabel(edge([], true))).toBe('after');
    expect(edgeLabel(edge(['xs'], true))).toBe('xs');
  });
});

describe('failedAndUpstream', () => {
  it('keeps the failed stages and every stage leading to them', () => {
    const kept = failedAndUpstream(buildGraph(diamond(), null));
    expect([...kept].sort()).toEqual(['left', 'load', 'right']);
  });
  it('is empty when nothing failed', () => {
    const status = diamond();
    status.stages[2].state = 'stale';
    expect(failedAndUpstream(buildGraph(status, null)).size).toBe(0);
  });
});

describe('layoutKey', () => {
  it('changes with the edges, not with states or durations', () => {
    const before = layoutKey(buildGraph(diamond(), null));
    const rerun = diamond();
    rerun.stages[2].state = 'up-to-date';
    rerun.stages[1].last_run = { outcome: 'ran', duration: 3 };
    expect(layoutKey(buildGraph(rerun, null))).toBe(before);
    const changed = diamond();
    changed.stages[3].deps = [];
    expect(layoutKey(buildGraph(changed, null))).not.toBe(before);
  });
});

describe('layoutGraph', () => {
  it('lays a diamond out in layers, left to right, with a path per edge', async () => {
    const graph = buildGraph(diamond(), null);
    const layout = await layoutGraph(graph);
    const x = (name: string) => layout.nodes.get(name)!.x;
    expect(x('load')).toBeLessThan(x('left'));
    expect(x('left')).toBeLessThan(x('right'));
    expect(x('right')).toBeLessThan(x('report'));
    expect([...layout.edges.keys()].sort()).toEqual(
      graph.edges.map(e => e.id).sort()
    );
    for (const path of layout.edges.values()) {
      expect(path.length).toBeGreaterThanOrEqual(2);
    }
  });

  it('lays a large pipeline out with the cheaper settings, still in layers', async () => {
    const status = diamond();
    status.stages = Array.from({ length: LARGE_GRAPH + 10 }, (_, i) =>
      stage(`s${i}`, i ? { loads: [{ name: `x${i}`, from: `s${i - 1}` }] } : {})
    );
    const layout = await layoutGraph(buildGraph(status, null));
    expect(layout.nodes.size).toBe(LARGE_GRAPH + 10);
    expect(layout.nodes.get('s1')!.x).toBeGreaterThan(
      layout.nodes.get('s0')!.x
    );
  });

  it('computes the layout of a set of stages and edges once', async () => {
    const graph = buildGraph(diamond(), null);
    const key = layoutKey(graph);
    const first = cachedLayout(graph, key);
    expect(cachedLayout(buildGraph(diamond(), null), key)).toBe(first);
    expect((await first).nodes.size).toBe(4);
    expect(knownLayout(key)).toBe(await first);
    expect(knownLayout('not laid out')).toBeUndefined();
  });

  it('puts a label at the middle of its path', () => {
    expect(
      midpoint([
        { x: 0, y: 0 },
        { x: 10, y: 0 },
        { x: 10, y: 10 }
      ])
    ).toEqual({ x: 10, y: 0 });
    expect(
      midpoint([
        { x: 0, y: 0 },
        { x: 4, y: 0 }
      ])
    ).toEqual({ x: 2, y: 0 });
  });
});

describe('explainRows', () => {
  it('says what `nb2pipe explain` says: loads, saves, reads, writes, params, after', () => {
    const [, left, right, report] = diamond().stages;
    expect(explainRows({ ...left, params: ['n'] })).toEqual([
      { kind: 'loads', text: "xs from stage 'load'" },
      { kind: 'writes', text: 'total.txt (inferred)' },
      { kind: 'params', text: 'n' }
    ]);
    expect(explainRows(right)).toContainEqual({
      kind: 'after',
      text: "'left'"
    });
    expect(explainRows(report)).toContainEqual({
      kind: 'reads',
      text: "total.txt from 'left' (inferred)"
    });
    expect(explainRows(report)).toContainEqual({
      kind: 'reads',
      text: 'raw.csv (declared)'
    });
    expect(explainRows(diamond().stages[0])).toEqual([
      { kind: 'saves', text: "xs for 'left', 'right'" }
    ]);
  });
});

/** bench_lab.py's shape: chains of 10 from one root, every tenth stage also fed by the chain
 * before (given in a shuffled stage order). */
function chains(count: number): IPipelineGraph {
  const name = (i: number) => `s${String(i).padStart(4, '0')}`;
  const status = diamond();
  status.stages = Array.from({ length: count }, (_, i) => {
    const loads = i
      ? [{ name: 'x', from: name(i % 10 === 1 ? 0 : i - 1) }]
      : [];
    if (i % 10 === 5 && i >= 20) {
      loads.push({ name: 'y', from: name(i - 10) });
    }
    return stage(name(i), { loads });
  }).reverse();
  return buildGraph(status, null);
}

describe('layers', () => {
  it('puts each stage at the length of its longest path from a source', () => {
    const layer = layers(buildGraph(diamond(), null));
    expect(Object.fromEntries(layer)).toEqual({
      load: 0,
      left: 1,
      right: 2,
      report: 3
    });
  });

  it('sends every edge to a later layer, at scale and in any stage order', () => {
    const graph = chains(1000);
    const layer = layers(graph);
    expect(layer.size).toBe(1000);
    for (const edge of graph.edges) {
      expect(layer.get(edge.target)!).toBeGreaterThan(layer.get(edge.source)!);
    }
    // the longest path: s0025 is fed by s0015 (layer 5), so in layer 6
    expect(layer.get('s0015')).toBe(5);
    expect(layer.get('s0025')).toBe(6);
  });

  it('places the stages of a cycle after the others', () => {
    const graph: IPipelineGraph = {
      nodes: ['a', 'b', 'c'].map(name => ({
        name,
        state: 'stale',
        duration: '',
        cells: []
      })),
      edges: [
        { id: 'a-b', source: 'a', target: 'b', flows: [], after: true },
        { id: 'b-c', source: 'b', target: 'c', flows: [], after: true },
        { id: 'c-b', source: 'c', target: 'b', flows: [], after: true }
      ]
    };
    const layer = layers(graph);
    expect(layer.get('a')).toBe(0);
    expect(new Set([layer.get('b'), layer.get('c')])).toEqual(new Set([1, 2]));
  });
});

describe('provisionalLayout', () => {
  it('is a layered drawing: every edge goes right, no two stages overlap', () => {
    const graph = chains(300);
    const layout = provisionalLayout(graph);
    expect(layout.nodes.size).toBe(300);
    expect([...layout.edges.keys()].sort()).toEqual(
      graph.edges.map(e => e.id).sort()
    );
    for (const edge of graph.edges) {
      const source = layout.nodes.get(edge.source)!;
      const target = layout.nodes.get(edge.target)!;
      expect(target.x).toBeGreaterThan(source.x + source.width);
      const [start, end] = layout.edges.get(edge.id)!;
      expect(start).toEqual({
        x: source.x + source.width,
        y: source.y + source.height / 2
      });
      expect(end).toEqual({ x: target.x, y: target.y + target.height / 2 });
    }
    const boxes = [...layout.nodes.values()];
    const seen = new Set(boxes.map(box => `${box.x},${box.y}`));
    expect(seen.size).toBe(boxes.length);
    for (const box of boxes) {
      expect(box.x + box.width).toBeLessThanOrEqual(layout.width);
      expect(box.y + box.height).toBeLessThanOrEqual(layout.height);
    }
  });
});
