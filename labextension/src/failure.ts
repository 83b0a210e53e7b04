/**
 * The failure box of a failed stage: the exception first (`ValueError: boom`), then the stage and
 * the cell, then the executed notebook's path as a link that opens it (read-only, no kernel), and
 * the traceback behind a "details" toggle. A long path wraps only after a `/` (a <wbr> there),
 * never inside a name. All text goes in as text, never as HTML.
 */

import { el } from './dom';
import { IFailureView } from './format';

/** A path cut after each `/`: where it may wrap. */
export function pathPieces(path: string): string[] {
  return path.split(/(?<=\/)/).filter(piece => piece !== '');
}

/** Builds failure boxes, and remembers which tracebacks the user opened across redraws. */
export class FailureBoxes {
  constructor(open: (path: string, cell: string | null) => void) {
    this._open = open;
  }

  box(stage: string, view: IFailureView): HTMLElement {
    const key = `${stage}\n${view.traceback ?? ''}`;
    const box = failureBox(stage, view, this._open);
    const details = box.querySelector('details');
    if (details) {
      details.open = this._opened.has(key);
      details.addEventListener('toggle', () => {
        if (details.open) {
          this._opened.add(key);
        } else {
          this._opened.delete(key);
        }
      });
    }
    return box;
  }

  private _open: (path: string, cell: string | null) => void;
  private _opened = new Set<string>();
}

export function failureBox(
  stage: string,
  view: IFailureView,
  open: (path: string, cell: string | null) => void
): HTMLElement {
  const box = el('div', 'jp-nb2pipe-stage-error');
  box.title = view.message;
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', `failure of stage ${stage}`);
  const where = el('div', 'jp-nb2pipe-error-where');
  where.append(el('span', 'jp-nb2pipe-error-stage', `stage ${stage}`));
  if (view.cell) {
    where.append(', ', el('span', 'jp-nb2pipe-error-cell', view.cell));
  }
  box.append(el('div', 'jp-nb2pipe-error-exception', view.exception), where);
  if (view.notebook) {
    const path = view.notebook;
    const link = el(
      'button',
      'jp-nb2pipe-open-executed jp-nb2pipe-error-path'
    ) as HTMLButtonElement;
    link.type = 'button';
    link.title = `Open ${path} (read-only, no kernel)`;
    link.dataset.path = path;
    for (const piece of pathPieces(path)) {
      link.append(
        document.createTextNode(piece),
        document.createElement('wbr')
      );
    }
    link.addEventListener('click', () => open(path, view.openCell));
    box.append(link);
  }
  if (view.traceback) {
    const details = el('details', 'jp-nb2pipe-error-details');
    details.append(
      el('summary', '', 'Traceback'),
      el('pre', 'jp-nb2pipe-error-traceback', view.traceback)
    );
    box.append(details);
  }
  return box;
}
