/**
 * The "Run After Stages…" dialog: the notebook's other stages as checkboxes, checked when the
 * cell's stage runs after them; a choice that makes a cycle is said under the list and cannot
 * be saved.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { afterProblem } from './after';
import { paintStage, stageColors } from './colors';

export class AfterDialogBody extends Widget {
  constructor(stage: string, stages: string[], after: Map<string, string[]>) {
    super();
    this._stage = stage;
    this._stages = stages;
    this._after = after;
    this.addClass('jp-nb2pipe-dialog');
    this.addClass('jp-nb2pipe-after-dialog');
    const label = document.createElement('div');
    label.className = 'jp-nb2pipe-dialog-label';
    const others = stages.filter(name => name !== stage);
    label.textContent = others.length
      ? `Run stage '${stage}' after:`
      : `'${stage}' is the only stage of this notebook.`;
    const list = document.createElement('div');
    list.className = 'jp-nb2pipe-after-choices';
    const colors = stageColors(stages);
    const current = after.get(stage) ?? [];
    for (const name of others) {
      const row = document.createElement('label');
      row.className = 'jp-nb2pipe-after-choice';
      paintStage(row, colors.get(name)!);
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.dataset.stage = name;
      box.checked = current.includes(name);
      box.addEventListener('change', () => this._validate());
      const text = document.createElement('span');
      text.textContent = name;
      row.append(box, text);
      list.append(row);
      this._boxes.push(box);
    }
    this._error = document.createElement('div');
    this._error.className = 'jp-nb2pipe-dialog-error';
    this._error.setAttribute('role', 'alert');
    this.node.append(label, list, this._error);
  }

  /** The stages checked. */
  getValue(): string[] {
    return this._boxes.filter(b => b.checked).map(b => b.dataset.stage!);
  }

  private _validate(): void {
    this._error.textContent =
      afterProblem(this._stage, this.getValue(), this._stages, this._after) ??
      '';
  }

  private _stage: string;
  private _stages: string[];
  private _after: Map<string, string[]>;
  private _boxes: HTMLInputElement[] = [];
  private _error: HTMLDivElement;
}

/** Ask which stages `stage` runs after. Null when cancelled; throws a choice that is refused. */
export async function askAfter(
  stage: string,
  stages: string[],
  after: Map<string, string[]>
): Promise<string[] | null> {
  const result = await showDialog({
    title: 'Run the stage after other stages',
    body: new AfterDialogBody(stage, stages, after),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })]
  });
  if (!result.button.accept || result.value === null) {
    return null;
  }
  const problem = afterProblem(stage, result.value, stages, after);
  if (problem) {
    throw new Error(problem);
  }
  return result.value;
}
