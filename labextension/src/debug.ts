/**
 * Debug a failed stage: `POST debug` writes its debug notebook (the run's parameters and inputs,
 * the stage's cells, the failing cell marked); the notebook opens as any notebook does, editable
 * and with a kernel, runs the cells above the failing cell, and stops there with it active and in
 * view. A debug notebook with the user's edits is overwritten only after asking.
 *
 * What happens is a status line per stage (`DebugStatuses`), which the sidebar shows under the
 * stage's failure box. Text from the server or a notebook goes in as text only.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Cell, CodeCell, MarkdownCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { el } from './dom';
import {
  changedWarning,
  raisedText,
  runningText,
  stoppedText
} from './debugtext';
import { requestAPI } from './handler';

/** `POST debug`: the debug notebook written for a stage. */
export interface IDebugNotebook {
  /** The notebook, relative to the server root. */
  notebook: string;
  /** 0-based index of the failing cell among the notebook's cells; null: the run did not fail. */
  failed_cell: number | null;
  /** The failing cell's exception, e.g. `ValueError: boom`. */
  error: string | null;
  run: string;
  restored: string[];
  /** Inputs that changed since the run and could not be restored. */
  changed: string[];
}

/** What the sidebar says about one stage's debugging. */
export interface IDebugStatus {
  /** working: still going; done: at the failing cell; failed: stopped early or not opened. */
  phase: 'working' | 'done' | 'failed';
  text: string;
  /** Inputs that changed since the run, as one line; null when none did. */
  warning: string | null;
}

/** The debugging status of each stage, by notebook and stage. */
export class DebugStatuses {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get(path: string, stage: string): IDebugStatus | undefined {
    return this._statuses.get(key(path, stage));
  }

  isWorking(path: string, stage: string): boolean {
    return this.get(path, stage)?.phase === 'working';
  }

  /** The status of the stage whose debug notebook is `notebook`, if it was debugged from here. */
  ofNotebook(notebook: string): IDebugStatus | undefined {
    const from = this._notebooks.get(notebook);
    return from ? this._statuses.get(from) : undefined;
  }

  set(
    path: string,
    stage: string,
    status: IDebugStatus,
    notebook?: string
  ): void {
    this._statuses.set(key(path, stage), status);
    if (notebook) {
      this._notebooks.set(notebook, key(path, stage));
    }
    this._changed.emit();
  }

  private _notebooks = new Map<string, string>(); // debug notebook -> key of its stage

  private _statuses = new Map<string, IDebugStatus>();
  private _changed = new Signal<this, void>(this);
}

function key(path: string, stage: string): string {
  return `${path}\n${stage}`;
}

/**
 * Write `stage`'s debug notebook, open it with a kernel and run it up to the failing cell.
 * `path` is the source notebook (or pipeline folder) relative to the server root.
 */
export async function debugStage(
  app: JupyterFrontEnd,
  statuses: DebugStatuses,
  path: string,
  stage: string
): Promise<void> {
  let warning: string | null = null;
  let notebook: string | undefined;
  const say = (phase: IDebugStatus['phase'], text: string) =>
    statuses.set(path, stage, { phase, text, warning }, notebook);
  say('working', `Debug: writing the debug notebook of '${stage}'…`);
  try {
    const written = await writeDebugNotebook(path, stage);
    if (written === null) {
      say(
        'failed',
        'Debug: cancelled; your edits of the debug notebook are kept.'
      );
      return;
    }
    warning = changedWarning(written.changed);
    notebook = written.notebook;
    say(
      'working',
      `Debug: opening ${written.notebook} and starting its kernel…`
    );
    const panel = await openWithKernel(app, written.notebook);
    const failed = written.failed_cell;
    const upTo = failed ?? panel.content.widgets.length;
    say('working', runningText(failed, upTo));
    const raised = await runCellsAbove(panel, upTo);
    if (raised) {
      say('failed', raisedText(raised.index, raised.error));
      return;
    }
    if (failed !== null) {
      await showCell(panel, failed);
    }
    say('done', stoppedText(failed, written.error));
  } catch (error) {
    say(
      'failed',
      `Debug: ${error instanceof Error ? error.message : String(error)}`
    );
  }
}

/** `POST debug`; on a 409 (the notebook has edits) ask, then force. null: the user said no. */
async function writeDebugNotebook(
  path: string,
  stage: string
): Promise<IDebugNotebook | null> {
  const post = (force: boolean) =>
    requestAPI<IDebugNotebook>('debug', {
      method: 'POST',
      body: JSON.stringify({ path, stage, force })
    });
  try {
    return await post(false);
  } catch (error) {
    if (
      !(error instanceof ServerConnection.ResponseError) ||
      error.response.status !== 409
    ) {
      throw error;
    }
    const answer = await showDialog({
      title: 'Overwrite your edits?',
      body: `${error.message}. Write the debug notebook of '${stage}' again from the run?`,
      buttons: [
        Dialog.cancelButton({ label: 'Keep my edits' }),
        Dialog.warnButton({ label: 'Overwrite' })
      ]
    });
    return answer.button.accept ? post(true) : null;
  }
}

/** Open `path` as a notebook, with the kernel its metadata names, once that kernel is there. */
async function openWithKernel(
  app: JupyterFrontEnd,
  path: string
): Promise<NotebookPanel> {
  const open = openNotebook(app, path);
  if (open) {
    await reloadFromDisk(open);
  }
  const panel = (await app.commands.execute('docmanager:open', {
    path
  })) as NotebookPanel;
  if (!(panel instanceof NotebookPanel)) {
    throw new Error(`${path} did not open as a notebook`);
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  if (!panel.sessionContext.session?.kernel) {
    throw new Error(
      `${path} opened without a kernel; choose one and run it up to the marked cell`
    );
  }
  return panel;
}

/** The notebook panel already showing `path`, if any. */
function openNotebook(
  app: JupyterFrontEnd,
  path: string
): NotebookPanel | null {
  for (const widget of app.shell.widgets('main')) {
    if (widget instanceof NotebookPanel && widget.context.path === path) {
      return widget;
    }
  }
  return null;
}

/**
 * An open debug notebook shows what was written before: show the new one (asking first when
 * the tab has unsaved changes) and restart its kernel, so nothing of the last session is left.
 */
async function reloadFromDisk(panel: NotebookPanel): Promise<void> {
  await panel.context.ready;
  if (panel.context.model.dirty) {
    const answer = await showDialog({
      title: 'Reload the debug notebook?',
      body: `${panel.context.path} has unsaved changes in its tab. Reload it as just written, dropping them?`,
      buttons: [
        Dialog.cancelButton({ label: 'Keep the tab' }),
        Dialog.warnButton({ label: 'Reload' })
      ]
    });
    if (!answer.button.accept) {
      throw new Error(
        `kept the unsaved changes of the open ${panel.context.path}; save or close it, then Debug again`
      );
    }
  }
  await panel.context.revert();
  await panel.sessionContext.ready;
  await panel.sessionContext.session?.kernel?.restart();
}

/** Run the cells before `upTo` one by one; the first that raises, or null when none did. */
async function runCellsAbove(
  panel: NotebookPanel,
  upTo: number
): Promise<{ index: number; error: string } | null> {
  const notebook = panel.content;
  for (let index = 0; index < upTo; index++) {
    const cell: Cell = notebook.widgets[index];
    if (cell instanceof MarkdownCell) {
      cell.rendered = true;
      continue;
    }
    if (!(cell instanceof CodeCell)) {
      continue;
    }
    const reply = await CodeCell.execute(cell, panel.sessionContext);
    if (reply?.content.status === 'error') {
      return {
        index,
        error: `${reply.content.ename}: ${reply.content.evalue}`
      };
    }
    if (reply?.content.status === 'aborted' || !reply) {
      return { index, error: 'an interrupt (the kernel did not run it)' };
    }
  }
  return null;
}

/** Make cell `index` the active one, in command mode, and scroll it into view. */
async function showCell(panel: NotebookPanel, index: number): Promise<void> {
  const notebook = panel.content;
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  await notebook.scrollToCell(notebook.widgets[index], 'center');
}

/** The status line (and the changed-inputs warning) of a debugging, for the sidebar. */
export function debugStatusNode(status: IDebugStatus): HTMLElement {
  const box = el(
    'div',
    `jp-nb2pipe-debug-status jp-nb2pipe-debug-${status.phase}`
  );
  box.dataset.phase = status.phase;
  box.setAttribute('role', 'status');
  box.append(el('div', 'jp-nb2pipe-debug-text', status.text));
  if (status.warning) {
    box.append(
      el('div', 'jp-nb2pipe-warning jp-nb2pipe-debug-warning', status.warning)
    );
  }
  return box;
}
