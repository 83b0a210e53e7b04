/**
 * Dialogs of the cell tools: choose a stage, declare input / output files.
 *
 * Validation is inline: the input carries the stage-name `pattern`, so the dialog's own
 * check (`:invalid`) disables the accept button, and a message under the input says why.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { paintStage, stageColors } from './colors';
import { validateStageName } from './tags';

/** What the stage dialog asks for. */
export type StageChoice = { action: 'set'; name: string } | { action: 'clear' };

const REMOVE_STAGE = 'Remove Stage';

let counter = 0;

/** Body of the stage dialog: the notebook's stages as buttons, and a name input. */
export class StageDialogBody extends Widget {
  constructor(existing: string[], current: string | null) {
    super();
    this.addClass('jp-nb2pipe-dialog');
    this.addClass('jp-nb2pipe-stage-dialog');
    const listId = `jp-nb2pipe-stages-${++counter}`;

    if (existing.length > 0) {
      const label = document.createElement('div');
      label.className = 'jp-nb2pipe-dialog-label';
      label.textContent = 'Stages in this notebook:';
      const choices = document.createElement('div');
      choices.className = 'jp-nb2pipe-stage-choices';
      const colors = stageColors(existing);
      for (const name of existing) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'jp-nb2pipe-stage-choice';
        button.dataset.stage = name;
        button.textContent = name;
        paintStage(button, colors.get(name)!);
        button.addEventListener('click', () => {
          this._input.value = name;
          this._input.dispatchEvent(new Event('input', { bubbles: true }));
          this._input.focus();
        });
        choices.append(button);
      }
      this.node.append(label, choices);
    }

    const inputLabel = document.createElement('label');
    inputLabel.className = 'jp-nb2pipe-dialog-label';
    inputLabel.textContent = existing.length
      ? 'Or a new stage:'
      : 'Stage name:';
    this._input = document.createElement('input');
    this._input.className = 'jp-mod-styled jp-nb2pipe-stage-input';
    this._input.type = 'text';
    this._input.required = true;
    // The same rule as STAGE_NAME_RE; `-` escaped for the `v` flag browsers compile patterns with.
    this._input.pattern = '[a-z_][a-z0-9_\\-]{0,63}';
    this._input.placeholder = 'e.g. train';
    this._input.spellcheck = false;
    this._input.setAttribute('list', listId);
    this._input.value = current ?? '';
    const datalist = document.createElement('datalist');
    datalist.id = listId;
    for (const name of existing) {
      const option = document.createElement('option');
      option.value = name;
      datalist.append(option);
    }
    inputLabel.append(this._input);

    this._error = document.createElement('div');
    this._error.className = 'jp-nb2pipe-dialog-error';
    this._error.setAttribute('role', 'alert');
    this._input.addEventListener('input', () => this._validate());
    this.node.append(inputLabel, datalist, this._error);
  }

  /** The stage name typed or chosen. */
  getValue(): string {
    return this._input.value.trim();
  }

  /** The input (focused when the dialog opens). */
  get inputNode(): HTMLInputElement {
    return this._input;
  }

  private _validate(): void {
    const value = this._input.value.trim();
    const error = value === '' ? null : validateStageName(value);
    this._error.textContent = error ?? '';
    this._input.classList.toggle('jp-nb2pipe-invalid', !!error);
  }

  private _input: HTMLInputElement;
  private _error: HTMLDivElement;
}

/** Ask which stage the selected cells belong to. Null when cancelled. */
export async function askStage(
  existing: string[],
  current: string | null
): Promise<StageChoice | null> {
  const body = new StageDialogBody(existing, current);
  const buttons = [Dialog.cancelButton()];
  if (current) {
    buttons.push(
      Dialog.warnButton({
        label: REMOVE_STAGE,
        accept: false,
        caption: 'Remove the stage tag'
      })
    );
  }
  buttons.push(Dialog.okButton({ label: 'Set Stage' }));
  const result = await showDialog({
    title: 'Set the stage of the cell',
    body,
    buttons,
    focusNodeSelector: '.jp-nb2pipe-stage-input'
  });
  if (result.button.label === REMOVE_STAGE) {
    return { action: 'clear' };
  }
  if (!result.button.accept || result.value === null) {
    return null;
  }
  const error = validateStageName(result.value);
  if (error) {
    throw new Error(error);
  }
  return { action: 'set', name: result.value };
}

/** Body of the files dialog: the declared paths (removable) and a new path. */
export class FilesDialogBody extends Widget {
  constructor(kind: 'in' | 'out', paths: string[]) {
    super();
    this.addClass('jp-nb2pipe-dialog');
    this.addClass('jp-nb2pipe-files-dialog');
    this._paths = [...paths];
    this._list = document.createElement('ul');
    this._list.className = 'jp-nb2pipe-file-list';
    const label = document.createElement('label');
    label.className = 'jp-nb2pipe-dialog-label';
    label.textContent =
      kind === 'in'
        ? 'Add a file or folder the stage reads (relative to the notebook):'
        : 'Add a file or folder the stage writes (relative to the notebook):';
    this._input = document.createElement('input');
    this._input.className = 'jp-mod-styled jp-nb2pipe-path-input';
    this._input.type = 'text';
    this._input.spellcheck = false;
    this._input.placeholder =
      kind === 'in' ? 'data/raw.csv' : 'models/model.pkl';
    this._input.addEventListener('input', () => this._validate());
    label.append(this._input);
    this._error = document.createElement('div');
    this._error.className = 'jp-nb2pipe-dialog-error';
    this._error.setAttribute('role', 'alert');
    this.node.append(this._list, label, this._error);
    this._render();
  }

  /** The paths to declare: the kept ones plus the one typed. */
  getValue(): string[] {
    const typed = this._input.value.trim();
    return typed && !this._paths.includes(typed)
      ? [...this._paths, typed]
      : [...this._paths];
  }

  private _render(): void {
    this._list.replaceChildren();
    if (this._paths.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'jp-nb2pipe-file-empty';
      empty.textContent = 'None declared yet.';
      this._list.append(empty);
    }
    for (const path of this._paths) {
      const item = document.createElement('li');
      item.className = 'jp-nb2pipe-file';
      const text = document.createElement('code');
      text.textContent = path;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'jp-nb2pipe-file-remove';
      remove.title = `Remove '${path}'`;
      remove.textContent = '×';
      remove.addEventListener('click', () => {
        this._paths = this._paths.filter(p => p !== path);
        this._render();
      });
      item.append(text, remove);
      this._list.append(item);
    }
  }

  private _validate(): void {
    const value = this._input.value.trim();
    let error = '';
    if (value.startsWith('/')) {
      error = 'give a path relative to the notebook, not an absolute one';
    }
    this._error.textContent = error;
    this._input.classList.toggle('jp-mod-error', !!error);
  }

  private _paths: string[];
  private _list: HTMLUListElement;
  private _input: HTMLInputElement;
  private _error: HTMLDivElement;
}

/** Ask for the input (`in`) or output (`out`) files of a cell. Null when cancelled. */
export async function askFiles(
  kind: 'in' | 'out',
  paths: string[]
): Promise<string[] | null> {
  const result = await showDialog({
    title: kind === 'in' ? 'Declare input files' : 'Declare output files',
    body: new FilesDialogBody(kind, paths),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
    focusNodeSelector: '.jp-nb2pipe-path-input'
  });
  return result.button.accept ? result.value : null;
}
