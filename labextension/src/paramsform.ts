/**
 * The sidebar's "Parameters" section: the pipeline's parameters (`status.parameters`) with
 * their types and defaults, in inputs that fit the type (number, text, checkbox; lists and
 * dicts as JSON). "Run with these values" checks every value in the page, then runs the
 * command `nb2pipe:run-with-params` with the typed values that differ from the defaults
 * (`POST runs` with `params`, after saving unsaved edits); the notebook is not edited. "Reset to defaults" puts params.yaml's values back.
 */

import { CommandRegistry } from '@lumino/commands';

import { el } from './dom';
import { parseParamValue, paramText } from './historyformat';
import { PipelineModel } from './model';
import { CommandIDs, IParameter } from './tokens';

export class ParamsForm {
  constructor(commands: CommandRegistry) {
    this._commands = commands;
    this.node = document.createElement('details');
    this.node.className = 'jp-nb2pipe-section jp-nb2pipe-params';
    const summary = el('summary', 'jp-nb2pipe-section-title', 'Parameters');
    this._fields = el('div', 'jp-nb2pipe-param-fields');
    this._error = el('div', 'jp-nb2pipe-params-error');
    this._error.setAttribute('role', 'alert');
    this._run = button('Run with these values', 'jp-nb2pipe-params-run');
    this._run.classList.add('jp-mod-accept');
    this._run.addEventListener('click', () => void this._submit());
    const reset = button('Reset to defaults', 'jp-nb2pipe-params-reset');
    reset.addEventListener('click', () => this._reset());
    const actions = el('div', 'jp-nb2pipe-actions');
    actions.append(this._run, reset);
    this.node.append(summary, this._fields, this._error, actions);
    this.node.hidden = true;
  }

  readonly node: HTMLDetailsElement;

  /** Show the parameters of another notebook's pipeline (null: none). */
  setModel(model: PipelineModel | null): void {
    this._model?.statusChanged.disconnect(this._onStatus, this);
    this._model?.jobChanged.disconnect(this._onJob, this);
    this._model = model;
    this._parametersText = '';
    model?.statusChanged.connect(this._onStatus, this);
    model?.jobChanged.connect(this._onJob, this);
    this._onStatus();
  }

  /** The typed values of the form, or the first problem (naming the parameter). */
  values(): { values: Record<string, unknown> } | { error: string } {
    const values: Record<string, unknown> = {};
    let first = '';
    for (const param of this._parameters) {
      const input = this._inputs.get(param.name)!;
      const text =
        input.type === 'checkbox' ? String(input.checked) : input.value;
      const parsed = parseParamValue(param, text);
      const error = this._fields.querySelector<HTMLElement>(
        `[data-param="${CSS.escape(param.name)}"] .jp-nb2pipe-param-error`
      )!;
      error.textContent = parsed.ok ? '' : parsed.error;
      input.setAttribute('aria-invalid', String(!parsed.ok));
      if (parsed.ok) {
        values[param.name] = parsed.value;
      } else {
        first ||= parsed.error;
      }
    }
    return first ? { error: first } : { values };
  }

  private _onStatus(): void {
    const parameters = this._model?.status?.parameters ?? [];
    this.node.hidden = !this._model?.status?.exists || !parameters.length;
    const text = JSON.stringify(parameters);
    if (text !== this._parametersText) {
      this._parametersText = text;
      this._parameters = parameters;
      this._renderFields();
    }
    this._onJob();
  }

  private _onJob(): void {
    this._run.disabled = !this._model || this._model.isRunning;
  }

  private _renderFields(): void {
    this._fields.replaceChildren();
    this._inputs.clear();
    this._error.textContent = '';
    for (const param of this._parameters) {
      const id = `jp-nb2pipe-param-${param.name}`;
      const row = el('div', 'jp-nb2pipe-param');
      row.dataset.param = param.name;
      row.dataset.type = param.type;
      const label = el('label', 'jp-nb2pipe-param-name', param.name);
      label.setAttribute('for', id);
      const type = el('span', 'jp-nb2pipe-param-type', param.type);
      type.title = param.stages.length
        ? `read by ${param.stages.join(', ')}`
        : 'read by no stage';
      const input = inputFor(param);
      input.id = id;
      input.classList.add('jp-nb2pipe-param-input');
      this._inputs.set(param.name, input);
      row.append(label, input, type, el('div', 'jp-nb2pipe-param-error'));
      this._fields.append(row);
    }
    this._reset();
  }

  private _reset(): void {
    for (const param of this._parameters) {
      setValue(this._inputs.get(param.name)!, param, param.default);
    }
    const errors = this._fields.querySelectorAll('.jp-nb2pipe-param-error');
    for (const error of Array.from(errors)) {
      error.textContent = '';
    }
    for (const input of this._inputs.values()) {
      input.removeAttribute('aria-invalid');
    }
    this._error.textContent = '';
  }

  private async _submit(): Promise<void> {
    const model = this._model;
    if (!model) {
      return;
    }
    const read = this.values();
    if ('error' in read) {
      this._error.textContent = read.error;
      return;
    }
    this._error.textContent = '';
    const overrides: Record<string, any> = {}; // JSON values, typed
    for (const param of this._parameters) {
      const value = read.values[param.name];
      if (JSON.stringify(value) !== JSON.stringify(param.default)) {
        overrides[param.name] = value;
      }
    }
    // saves unsaved edits first, like Run stale; a refused run shows in the sidebar
    await this._commands.execute(CommandIDs.runWithParams, {
      params: overrides
    });
  }

  private _commands: CommandRegistry;
  private _model: PipelineModel | null = null;
  private _parameters: IParameter[] = [];
  private _parametersText = '';
  private _inputs = new Map<string, HTMLInputElement>();
  private _fields: HTMLElement;
  private _error: HTMLElement;
  private _run: HTMLButtonElement;
}

function inputFor(param: IParameter): HTMLInputElement {
  const input = document.createElement('input');
  if (param.type === 'bool') {
    input.type = 'checkbox';
  } else if (param.type === 'int' || param.type === 'float') {
    input.type = 'number';
    input.step = param.type === 'int' ? '1' : 'any';
  } else {
    input.type = 'text';
    input.spellcheck = false;
  }
  return input;
}

function setValue(
  input: HTMLInputElement,
  param: IParameter,
  value: unknown
): void {
  if (input.type === 'checkbox') {
    input.checked = value === true;
  } else {
    input.value = paramText(param.type, value);
  }
}

function button(text: string, className: string): HTMLButtonElement {
  const node = el(
    'button',
    `jp-mod-styled jp-nb2pipe-button ${className}`,
    text
  ) as HTMLButtonElement;
  node.type = 'button';
  return node;
}
