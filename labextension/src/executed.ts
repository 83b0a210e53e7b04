/**
 * Open a stage's executed notebook (`<pipeline>/runs/<run>/<stage>.ipynb`) read-only and without
 * a kernel (readonly.ts), at its failing cell when it has one.
 *
 * The failing cell: the cell whose `metadata.title` is the title the runner reported
 * (e.g. `diabetes_kale.ipynb cell 10`) if that cell shows an error; else the first cell with
 * an error output (papermill keeps the traceback there); else the titled cell.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { NotebookPanel } from '@jupyterlab/notebook';

/** The parts of an nbformat cell the search reads. */
export interface IExecutedCell {
  cell_type?: string;
  metadata?: { title?: unknown; [key: string]: unknown };
  outputs?: { output_type?: string }[];
}

/** Index of the failing cell, or -1. */
export function findFailingCell(
  cells: IExecutedCell[],
  title?: string | null
): number {
  const hasError = (c: IExecutedCell) =>
    (c.outputs ?? []).some(o => o.output_type === 'error');
  const titled = title ? cells.findIndex(c => c.metadata?.title === title) : -1;
  if (titled >= 0 && hasError(cells[titled])) {
    return titled;
  }
  const failed = cells.findIndex(hasError);
  return failed >= 0 ? failed : titled;
}

/** True for a notebook a run wrote (`<pipeline>/runs/<run-id>/<stage>.ipynb`). */
export function isExecutedNotebook(path: string): boolean {
  return (
    /(^|\/)runs\/\d{8}-\d{6}-[0-9a-f]{4}\/[^/]+\.ipynb$/.test(path) ||
    /(^|\/)\.nb2pipe\//.test(path)
  );
}

/** Why a path may be invisible to the contents API. */
export function hiddenFolderHint(path: string): string {
  const hidden = path
    .split('/')
    .slice(0, -1)
    .find(part => part.startsWith('.'));
  return hidden
    ? ` It is inside the hidden folder '${hidden}', which the Jupyter server does not serve by ` +
        'default; start JupyterLab with --ContentsManager.allow_hidden=True to open it.'
    : '';
}

/** Open `path` read-only in a notebook tab with no kernel, activate its failing cell and scroll to it. */
export async function openExecutedNotebook(
  app: JupyterFrontEnd,
  path: string,
  cellTitle?: string | null
): Promise<NotebookPanel> {
  try {
    await app.serviceManager.contents.get(path, { content: false });
  } catch (error) {
    const status = (error as { response?: Response }).response?.status;
    if (status === 404) {
      throw new Error(
        `cannot open '${path}': the server did not find it.${hiddenFolderHint(path)}`
      );
    }
    throw error;
  }
  // imported here: it loads @jupyterlab/apputils, which the unit tests of this module do without
  const { makeReadOnly, NO_KERNEL } = await import('./readonly');
  const panel = (await app.commands.execute('docmanager:open', {
    path,
    factory: 'Notebook',
    kernelPreference: NO_KERNEL
  })) as NotebookPanel;
  await panel.context.ready;
  makeReadOnly(panel);
  await panel.revealed;
  const notebook = panel.content;
  const cells = Array.from(notebook.model?.cells ?? []).map(
    c => c.toJSON() as IExecutedCell
  );
  const index = findFailingCell(cells, cellTitle);
  if (index >= 0 && index < notebook.widgets.length) {
    const cell = notebook.widgets[index];
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    notebook.deselectAll();
    cell.addClass('jp-nb2pipe-failing-cell');
    await notebook.scrollToCell(cell, 'center');
  }
  app.shell.activateById(panel.id);
  return panel;
}
