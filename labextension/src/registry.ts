/**
 * One `PipelineModel` per open notebook; `current` follows the active notebook.
 *
 * A model is created when its notebook first becomes current, refreshed when the notebook
 * is saved, replaced when the notebook is renamed, and disposed with the notebook.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { isExecutedNotebook } from './executed';
import { PipelineModel } from './model';

export class PipelineModels implements IDisposable {
  constructor(
    tracker: INotebookTracker,
    options: PipelineModels.IOptions = {}
  ) {
    this._tracker = tracker;
    this._isActive = options.isActive ?? (() => true);
    this._pollInterval = options.pollInterval ?? 1000;
    tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  /** The model of the active notebook, or null. */
  get current(): PipelineModel | null {
    return this._current;
  }

  /** The active notebook, or null. */
  get currentPanel(): NotebookPanel | null {
    return this._tracker.currentWidget;
  }

  get currentChanged(): ISignal<this, PipelineModel | null> {
    return this._currentChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Status refresh interval (ms) of every model. */
  set pollInterval(ms: number) {
    this._pollInterval = ms;
    for (const model of this._models.values()) {
      model.pollInterval = ms;
    }
  }

  /** The model of `panel`, created on first use. */
  modelOf(panel: NotebookPanel): PipelineModel {
    let model = this._models.get(panel);
    if (!model || model.path !== panel.context.path) {
      model?.dispose();
      model = new PipelineModel({
        path: panel.context.path,
        pollInterval: this._pollInterval,
        isActive: () => this._current === model && this._isActive()
      });
      if (!this._models.has(panel)) {
        this._watch(panel);
      }
      this._models.set(panel, model);
      if (!isExecutedNotebook(model.path)) {
        model.startPolling();
      }
    }
    return model;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const model of this._models.values()) {
      model.dispose();
    }
    this._models.clear();
    Signal.clearData(this);
  }

  private _watch(panel: NotebookPanel): void {
    panel.context.saveState.connect((_, state) => {
      if (state === 'completed') {
        void this._models.get(panel)?.refresh();
      }
    });
    panel.context.pathChanged.connect(() => {
      if (this._tracker.currentWidget === panel) {
        this._onCurrentChanged();
      }
    });
    panel.disposed.connect(() => {
      this._models.get(panel)?.dispose();
      this._models.delete(panel);
    });
  }

  private _onCurrentChanged(): void {
    const panel = this._tracker.currentWidget;
    const model = panel ? this.modelOf(panel) : null;
    if (model === this._current) {
      return;
    }
    this._current = model;
    this._currentChanged.emit(model);
    if (model && !isExecutedNotebook(model.path)) {
      void model.refresh();
    }
  }

  private _tracker: INotebookTracker;
  private _isActive: () => boolean;
  private _pollInterval: number;
  private _models = new Map<NotebookPanel, PipelineModel>();
  private _current: PipelineModel | null = null;
  private _isDisposed = false;
  private _currentChanged = new Signal<this, PipelineModel | null>(this);
}

export namespace PipelineModels {
  export interface IOptions {
    /** Status polling pauses while this returns false (the sidebar is hidden). */
    isActive?: () => boolean;
    pollInterval?: number;
  }
}
