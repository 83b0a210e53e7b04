/**
 * An executed notebook opened to be read: it starts no kernel and cannot start one, its cells
 * cannot be edited, its toolbar says so, and an edit that still gets through (a cell deleted or
 * moved from the keyboard) is undone at once with a message: the file is what the run wrote.
 */

import { Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { el } from './dom';

/**
 * The kernel preference (ISessionContext.IKernelPreference) to open an executed notebook with:
 * none, and none on request. `docmanager:open` takes it as `kernelPreference`.
 */
export const NO_KERNEL = {
  shouldStart: false,
  canStart: false,
  autoStartDefault: false
};

export const READ_ONLY_CLASS = 'jp-nb2pipe-read-only';

export const REFUSED =
  'This executed notebook is read-only: it is what a pipeline run wrote. Your change was undone; ' +
  'edit the source notebook instead.';

/** Make `panel` read-only (once; later calls do nothing). */
export function makeReadOnly(panel: NotebookPanel): void {
  if (panel.hasClass(READ_ONLY_CLASS)) {
    return;
  }
  panel.addClass(READ_ONLY_CLASS);
  const model = panel.context.model;
  model.readOnly = true;
  const notebook = panel.content;
  const lockCells = () => {
    for (const cell of notebook.widgets) {
      cell.readOnly = true;
    }
  };
  lockCells();
  notebook.model?.cells.changed.connect(lockCells);
  const label = el(
    'span',
    'jp-nb2pipe-read-only-label',
    'Read-only: written by a pipeline run'
  );
  label.title = REFUSED;
  panel.toolbar.insertItem(0, 'nb2pipe-read-only', new Widget({ node: label }));
  let reverting = false;
  model.contentChanged.connect(() => {
    if (!model.dirty || reverting || panel.isDisposed) {
      return;
    }
    reverting = true;
    void panel.context
      .revert()
      .then(lockCells)
      .finally(() => {
        reverting = false;
      });
    Notification.warning(REFUSED, { autoClose: 8000 });
  });
}
