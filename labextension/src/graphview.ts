/**
 * The pipeline graph of one notebook, a main-area widget ("Pipeline: NAME"): a node per stage
 * (its colour as an accent, its state and last duration), edges labelled with what flows,
 * running stages animated, a failed-only filter and a details pane that explains the selected
 * stage. It follows the same `PipelineModel` as the sidebar, so it is live while a run goes.
 *
 * 1. Each status or job change builds the graph (`graphdata.ts`).
 * 2. When the stages or edges changed (`layoutKey`), elk lays it out again and the DOM is
 *    rebuilt; otherwise only the nodes' states and durations are updated in place. A large
 *    graph that elk has not laid out yet is drawn at once in its provisional layout
 *    (`provisionalLayout`), and its nodes move when elk's layout arrives: `data-layout` says
 *    which is shown (`provisional`, `final`), `data-layouts` counts elk's layouts drawn.
 * 3. The failed-only filter hides every stage that neither failed nor leads to a failure
 *    (positions stay as laid out).
 */

import { Widget } from '@lumino/widgets';

import { paintStage, stageColors } from './colors';
import { el } from './dom';
import { renderExplain } from './explain';
import { STATE_LABELS } from './format';
import {
  buildGraph,
  edgeLabel,
  failedAndUpstream,
  IGraphNode,
  IPipelineGraph,
  layoutKey
} from './graphdata';
import {
  cachedLayout,
  IGraphLayout,
  knownLayout,
  LARGE_GRAPH,
  midpoint,
  provisionalLayout
} from './graphlayout';
import { PipelineModel } from './model';

const SVG = 'http://www.w3.org/2000/svg';
let views = 0;

export class PipelineGraphView extends Widget {
  constructor(options: PipelineGraphView.IOptions) {
    super();
    this._model = options.model;
    this._onReveal = options.onReveal;
    this._arrowId = `jp-nb2pipe-arrow-${++views}`;
    this.addClass('jp-nb2pipe-graph');
    this.node.dataset.path = this._model.path;

    const toolbar = el('div', 'jp-nb2pipe-graph-toolbar');
    const filter = el('label', 'jp-nb2pipe-graph-filter');
    this._failedOnly = document.createElement('input');
    this._failedOnly.type = 'checkbox';
    this._failedOnly.className = 'jp-nb2pipe-graph-failed-only';
    this._failedOnly.addEventListener('change', () => this._applyFilter());
    filter.append(
      this._failedOnly,
      document.createTextNode(' Failed only (and what leads to them)')
    );
    this._note = el('span', 'jp-nb2pipe-graph-note');
    this._note.setAttribute('aria-live', 'polite');
    toolbar.append(filter, this._note);

    const main = el('div', 'jp-nb2pipe-graph-main');
    this._scroll = el('div', 'jp-nb2pipe-graph-scroll');
    this._canvas = el('div', 'jp-nb2pipe-graph-canvas');
    this._scroll.append(this._canvas);
    this._details = el('aside', 'jp-nb2pipe-graph-details');
    this._details.setAttribute('aria-label', 'Stage details');
    main.append(this._scroll, this._details);
    this.node.append(toolbar, main);
    this._showDetails();

    this._model.statusChanged.connect(this._update, this);
    this._model.jobChanged.connect(this._update, this);
    this._update();
  }

  get model(): PipelineModel {
    return this._model;
  }

  /** The stage whose details show, or null. */
  get selected(): string | null {
    return this._selected;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.statusChanged.disconnect(this._update, this);
    this._model.jobChanged.disconnect(this._update, this);
    super.dispose();
  }

  private _update(): void {
    const status = this._model.status;
    if (this.isDisposed) {
      return;
    }
    if (!status || !status.exists) {
      this._canvas.replaceChildren(
        el(
          'p',
          'jp-nb2pipe-empty',
          status
            ? 'This notebook has no pipeline yet. Export it to see its graph.'
            : 'Loading…'
        )
      );
      this._key = '';
      return;
    }
    const graph = buildGraph(status, this._model.job);
    this._graph = graph;
    const key = layoutKey(graph);
    if (key !== this._key) {
      this._key = key;
      void this._relayout(graph, key);
    } else if (this._nodes.size) {
      this._recolour(graph);
    }
  }

  private async _relayout(graph: IPipelineGraph, key: string): Promise<void> {
    const provisional = graph.nodes.length >= LARGE_GRAPH && !knownLayout(key);
    if (provisional) {
      // elk takes seconds at this size (in its worker): show the stages now
      this._draw(graph, provisionalLayout(graph), false);
      this.node.dataset.layout = 'provisional';
      this._recolour(this._graph ?? graph);
    }
    let layout: IGraphLayout;
    try {
      layout = await cachedLayout(graph, key);
    } catch (error) {
      this._note.textContent = `The graph could not be laid out: ${String(error)}`;
      return;
    }
    if (key !== this._key || this.isDisposed) {
      return; // a newer graph is being laid out
    }
    this._draw(graph, layout, provisional);
    this.node.dataset.layout = 'final';
    this.node.dataset.layouts = String(++this._layouts);
    this._recolour(this._graph ?? graph);
  }

  /**
   * Build the DOM of a laid-out graph: edges (SVG), their labels, the nodes. With `move`, the
   * nodes already drawn (the same stages, provisionally placed) stay in the page and only
   * move: their state, selection and focus are kept.
   */
  private _draw(
    graph: IPipelineGraph,
    layout: IGraphLayout,
    move: boolean
  ): void {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'jp-nb2pipe-graph-edges');
    svg.setAttribute('width', String(layout.width));
    svg.setAttribute('height', String(layout.height));
    svg.setAttribute('aria-hidden', 'true');
    svg.append(arrowMarker(this._arrowId));
    const parts = document.createDocumentFragment();
    this._edges = [];
    for (const edge of graph.edges) {
      const points = layout.edges.get(edge.id);
      if (!points) {
        continue;
      }
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute(
        'd',
        points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ')
      );
      path.setAttribute(
        'class',
        `jp-nb2pipe-graph-edge${edge.flows.length ? '' : ' jp-nb2pipe-graph-edge-after'}`
      );
      path.setAttribute('marker-end', `url(#${this._arrowId})`);
      svg.append(path);
      const label = el('div', 'jp-nb2pipe-graph-edge-label', edgeLabel(edge));
      const at = midpoint(points);
      label.style.left = `${at.x}px`;
      label.style.top = `${at.y}px`;
      label.dataset.source = edge.source;
      label.dataset.target = edge.target;
      label.title = edge.flows.length
        ? `${edge.source} → ${edge.target}: ${edge.flows.join(', ')}`
        : `${edge.target} runs after ${edge.source}`;
      parts.append(label);
      this._edges.push({
        source: edge.source,
        target: edge.target,
        path,
        label
      });
    }
    const colors = stageColors(graph.nodes.map(node => node.name));
    const drawn = move ? new Map(this._nodes) : new Map<string, HTMLElement>();
    const nodes = document.createDocumentFragment();
    this._nodes.clear();
    for (const node of graph.nodes) {
      const box = layout.nodes.get(node.name);
      if (box) {
        let view = drawn.get(node.name);
        if (view) {
          this._nodes.set(node.name, view);
        } else {
          view = this._nodeView(node, colors.get(node.name)!);
          nodes.append(view);
        }
        Object.assign(view.style, {
          left: `${box.x}px`,
          top: `${box.y}px`,
          width: `${box.width}px`,
          height: `${box.height}px`
        });
      }
    }
    this._canvas.style.width = `${layout.width}px`;
    this._canvas.style.height = `${layout.height}px`;
    if (move && this._svg?.parentNode === this._canvas) {
      for (const [name, view] of drawn) {
        if (!this._nodes.has(name)) {
          view.remove();
        }
      }
      this._canvas
        .querySelectorAll(':scope > .jp-nb2pipe-graph-edge-label')
        .forEach(label => label.remove());
      this._svg.replaceWith(svg, parts);
      this._canvas.append(nodes);
    } else {
      this._canvas.replaceChildren(svg, parts, nodes);
    }
    this._svg = svg;
  }

  private _nodeView(node: IGraphNode, color: string): HTMLElement {
    const view = el('button', 'jp-nb2pipe-graph-node') as HTMLButtonElement;
    view.type = 'button';
    view.dataset.stage = node.name;
    view.classList.toggle('jp-mod-selected', node.name === this._selected);
    paintStage(view, color);
    const name = el('span', 'jp-nb2pipe-graph-node-name', node.name);
    const state = el('span', 'jp-nb2pipe-graph-node-state');
    state.append(
      el('span', 'jp-nb2pipe-state-icon'),
      el('span', 'jp-nb2pipe-state-label'),
      el('span', 'jp-nb2pipe-duration')
    );
    view.append(name, state);
    view.addEventListener('click', () => {
      const current = this._graph?.nodes.find(n => n.name === node.name);
      this._select(node.name);
      this._onReveal(current ?? node);
    });
    this._nodes.set(node.name, view);
    return view;
  }

  /** Show each node's state and duration; keep the filter and the details pane in step. */
  private _recolour(graph: IPipelineGraph): void {
    for (const node of graph.nodes) {
      const view = this._nodes.get(node.name);
      if (!view) {
        continue;
      }
      const shown = STATE_LABELS[node.state] ?? {
        icon: '?',
        label: node.state
      };
      if (view.dataset.state !== node.state) {
        view.classList.remove(`jp-nb2pipe-state-${view.dataset.state}`);
        view.classList.add(`jp-nb2pipe-state-${node.state}`);
        view.dataset.state = node.state;
      }
      const [icon, label, duration] = Array.from(
        view.lastElementChild!.children
      ) as HTMLElement[];
      if (
        label.textContent === shown.label &&
        duration.textContent === node.duration
      ) {
        continue; // nothing to redraw: a run changes a few stages at a time
      }
      icon.textContent = shown.icon;
      label.textContent = shown.label;
      duration.textContent = node.duration;
      duration.title = node.duration ? 'duration of the last run' : '';
      view.title = `${node.name}: ${shown.label}${node.duration ? `, last run ${node.duration}` : ''}. Click to show its cells and details.`;
    }
    this._applyFilter();
    this._showDetails();
  }

  private _applyFilter(): void {
    const graph = this._graph;
    const on = this._failedOnly.checked;
    const kept = on && graph ? failedAndUpstream(graph) : null;
    for (const [name, view] of this._nodes) {
      view.hidden = !!kept && !kept.has(name);
    }
    for (const edge of this._edges) {
      const hidden =
        !!kept && !(kept.has(edge.source) && kept.has(edge.target));
      edge.label.hidden = hidden;
      edge.path.style.display = hidden ? 'none' : '';
    }
    this.node.dataset.failedOnly = String(on);
    this._note.textContent =
      kept && !kept.size ? 'No stage failed: nothing to show.' : '';
  }

  private _select(name: string): void {
    this._selected = name;
    for (const [stage, view] of this._nodes) {
      view.classList.toggle('jp-mod-selected', stage === name);
      view.setAttribute('aria-pressed', String(stage === name));
    }
    this._showDetails();
  }

  /** The details pane: the selected stage's state and what flows in and out of it. */
  private _showDetails(): void {
    const stage = this._model.status?.stages.find(
      s => s.name === this._selected
    );
    const node = this._graph?.nodes.find(n => n.name === this._selected);
    if (!stage || !node) {
      this._details.replaceChildren(
        el(
          'p',
          'jp-nb2pipe-graph-hint',
          'Select a stage to see what it loads, saves, reads and writes; its cells show in the notebook.'
        )
      );
      return;
    }
    const heading = el('h3', 'jp-nb2pipe-graph-details-name', stage.name);
    const shown = STATE_LABELS[node.state]?.label ?? node.state;
    const state = el(
      'p',
      'jp-nb2pipe-graph-details-state',
      node.duration ? `${shown} · last run ${node.duration}` : shown
    );
    const cells = el(
      'p',
      'jp-nb2pipe-graph-details-cells',
      stage.cells.length ? `notebook cells ${stage.cells.join(', ')}` : ''
    );
    this._details.replaceChildren(heading, state, cells, renderExplain(stage));
  }

  private _model: PipelineModel;
  private _onReveal: (node: IGraphNode) => void;
  private _arrowId: string;
  private _failedOnly: HTMLInputElement;
  private _note: HTMLElement;
  private _scroll: HTMLElement;
  private _canvas: HTMLElement;
  private _details: HTMLElement;
  private _graph: IPipelineGraph | null = null;
  private _key = '';
  private _layouts = 0;
  private _svg: SVGSVGElement | null = null;
  private _selected: string | null = null;
  private _nodes = new Map<string, HTMLElement>();
  private _edges: {
    source: string;
    target: string;
    path: SVGPathElement;
    label: HTMLElement;
  }[] = [];
}

/** The arrow head at the end of every edge. */
function arrowMarker(id: string): SVGElement {
  const defs = document.createElementNS(SVG, 'defs');
  const marker = document.createElementNS(SVG, 'marker');
  const attributes: Record<string, string> = {
    id,
    viewBox: '0 0 10 10',
    refX: '10',
    refY: '5',
    markerWidth: '7',
    markerHeight: '7',
    orient: 'auto-start-reverse'
  };
  for (const [key, value] of Object.entries(attributes)) {
    marker.setAttribute(key, value);
  }
  const head = document.createElementNS(SVG, 'path');
  head.setAttribute('d', 'M 0 0 L 10 5 L 0 10 z');
  head.setAttribute('class', 'jp-nb2pipe-graph-arrow');
  marker.append(head);
  defs.append(marker);
  return defs;
}

export namespace PipelineGraphView {
  export interface IOptions {
    model: PipelineModel;
    /** A node was clicked: show the stage's cells in its notebook. */
    onReveal: (node: IGraphNode) => void;
  }
}
