/**
 * The pipeline's structure drawn on a notebook: every code cell in a stage gets a chip with
 * the stage name and a left border in the stage's colour; parameters / setup / skip cells
 * get a grey chip naming their role.
 *
 * Live: the decoration is recomputed (debounced) when cells are added, removed or moved,
 * when any cell's metadata changes, and when a markdown cell's source changes (headings
 * name the stages of an untagged notebook). A stage chip also carries its stage's state
 * (`data-state`, an icon before the name, the state in its tooltip), set by `setChipStates`.
 */

import { Cell, ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';
import { IDisposable } from '@lumino/disposable';

import { cellInput } from './cellmeta';
import { chipStates, chipTitle, IChipState } from './chipstate';
import { paintStage, stageColor, stageColors } from './colors';
import { isExecutedNotebook } from './executed';
import type { PipelineModel } from './model';
import type { PipelineModels } from './registry';
import { describeCells, ICellStage } from './tags';

export const STAGED_CLASS = 'jp-nb2pipe-staged';
export const ROLE_CLASS = 'jp-nb2pipe-role';
export const CHIP_CLASS = 'jp-nb2pipe-chip';

const chipStatesOf = new WeakMap<NotebookPanel, Map<string, IChipState>>();
const structureOf = new WeakMap<NotebookPanel, NotebookStructure>();

/** Show the stages' states on the chips of `panel` (kept until the next call). */
export function setChipStates(
  panel: NotebookPanel,
  states: Map<string, IChipState>
): void {
  chipStatesOf.set(panel, states);
  structureOf.get(panel)?.update();
}

/** Keep the active notebook's chips in step with its pipeline model (the sidebar's). */
export function followChipStates(
  models: PipelineModels,
  tracker: INotebookTracker
): void {
  let followed: PipelineModel | null = null;
  const apply = () => {
    const panel = tracker.currentWidget;
    if (panel && followed && !followed.isDisposed) {
      setChipStates(panel, chipStates(followed.status, followed.job));
    }
  };
  const follow = (model: PipelineModel | null) => {
    followed?.statusChanged.disconnect(apply);
    followed?.jobChanged.disconnect(apply);
    followed = model;
    model?.statusChanged.connect(apply);
    model?.jobChanged.connect(apply);
    apply();
  };
  models.currentChanged.connect((_, model) => follow(model));
  follow(models.current);
}

export class NotebookStructure implements IDisposable {
  constructor(panel: NotebookPanel, onChipClick?: (cell: Cell) => void) {
    this._panel = panel;
    this._onChipClick = onChipClick;
    if (isExecutedNotebook(panel.context.path)) {
      // A run's output: its cells are one stage's code, not a notebook to cut into stages.
      this._isDisposed = true;
      return;
    }
    structureOf.set(panel, this);
    panel.context.ready.then(() => this._connect()).catch(() => undefined);
    panel.disposed.connect(() => this.dispose());
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Recompute every cell's decoration now. */
  update(): void {
    if (this._isDisposed) {
      return;
    }
    const notebook = this._panel.content;
    const models = notebook.model ? Array.from(notebook.model.cells) : [];
    const stages = describeCells(models.map(cellInput));
    const colors = stageColors(
      stages.map(s => s.stage).filter((s): s is string => !!s)
    );
    const states = chipStatesOf.get(this._panel);
    notebook.widgets.forEach((cell, i) => {
      // Widgets and models line up; if they do not (mid-update), the next update fixes it.
      const stage = cell.model === models[i] ? stages[i] : null;
      const state = stage?.stage ? states?.get(stage.stage) : undefined;
      decorate(cell, stage, this._onChipClick, colors, state);
    });
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    window.clearTimeout(this._timer);
    const model = this._panel.content.model;
    if (model) {
      model.cells.changed.disconnect(this._onCellsChanged, this);
      for (const cell of model.cells) {
        this._unwatch(cell);
      }
    }
  }

  private _connect(): void {
    const model = this._panel.content.model;
    if (this._isDisposed || !model) {
      return;
    }
    model.cells.changed.connect(this._onCellsChanged, this);
    for (const cell of model.cells) {
      this._watch(cell);
    }
    this.update();
  }

  private _onCellsChanged(
    _: unknown,
    change: IObservableList.IChangedArgs<ICellModel>
  ): void {
    // A removed cell's model may be gone already (undefined or disposed): nothing to unwatch.
    for (const cell of change.oldValues) {
      if (cell && !cell.isDisposed) {
        this._unwatch(cell);
      }
    }
    for (const cell of change.newValues) {
      if (cell) {
        this._watch(cell);
      }
    }
    this._schedule();
  }

  private _watch(cell: ICellModel): void {
    cell.metadataChanged.connect(this._schedule, this);
    cell.contentChanged.connect(this._onContentChanged, this);
  }

  private _unwatch(cell: ICellModel): void {
    cell.metadataChanged.disconnect(this._schedule, this);
    cell.contentChanged.disconnect(this._onContentChanged, this);
  }

  private _onContentChanged(cell: ICellModel): void {
    if (cell.type === 'markdown') {
      this._schedule();
    }
  }

  private _schedule(): void {
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => this.update(), 50);
  }

  private _panel: NotebookPanel;
  private _onChipClick?: (cell: Cell) => void;
  private _timer = 0;
  private _isDisposed = false;
}

/** Show (or clear) the chip and border of one cell. */
export function decorate(
  cell: Cell,
  stage: ICellStage | null,
  onChipClick?: (cell: Cell) => void,
  colors?: Map<string, string>,
  state?: IChipState
): void {
  const node = cell.node;
  const code = cell.model.type === 'code';
  const label =
    !code || !stage
      ? null
      : (stage.stage ?? (stage.role === 'none' ? null : stage.role));
  let chip = node.querySelector<HTMLElement>(`:scope > .${CHIP_CLASS}`);
  if (!label || !stage) {
    chip?.remove();
    node.classList.remove(STAGED_CLASS, ROLE_CLASS, 'jp-nb2pipe-inferred');
    node.style.removeProperty('--jp-nb2pipe-stage-color');
    node.style.removeProperty('--jp-nb2pipe-stage-text');
    delete node.dataset.nb2pipeStage;
    delete node.dataset.nb2pipeRole;
    return;
  }
  if (!chip) {
    chip = document.createElement('div');
    chip.className = CHIP_CLASS;
    chip.addEventListener('click', () => onChipClick?.(cell));
    node.append(chip); // last child: PanelLayout inserts widgets by index, before it
  }
  if (stage.stage !== null && state) {
    chip.dataset.state = state.state;
  } else {
    delete chip.dataset.state;
  }
  const staged = stage.stage !== null;
  node.classList.toggle(STAGED_CLASS, staged);
  node.classList.toggle(ROLE_CLASS, !staged);
  node.classList.toggle('jp-nb2pipe-inferred', stage.inferred);
  node.dataset.nb2pipeRole = stage.role;
  if (staged) {
    node.dataset.nb2pipeStage = stage.stage!;
    paintStage(node, colors?.get(stage.stage!) ?? stageColor(stage.stage!));
  } else {
    delete node.dataset.nb2pipeStage;
    node.style.removeProperty('--jp-nb2pipe-stage-color');
    node.style.removeProperty('--jp-nb2pipe-stage-text');
  }
  chip.textContent = label;
  chip.setAttribute('role', 'button');
  chip.title = staged
    ? chipTitle(stage.stage!, state) +
      (stage.inferred
        ? ' (from the heading above; no cell has a stage tag)'
        : '') +
      (stage.starts ? '' : ', continued from the cells above') +
      ' — click to change'
    : `${stage.role} cell: not part of any stage — click to set a stage`;
  chip.setAttribute('aria-label', chip.title);
}
