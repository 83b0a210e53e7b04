/**
 * The settings dialog: a stage's settings (timeout, cell timeout, retries, memory,
 * allow-failure, kernel, env, secrets, track-env) or the pipeline-wide defaults.
 *
 * Every change is checked at once with settings.ts (export's grammar and words): a mistake is
 * said under the fields, its field is marked and Save is disabled; a value another cell of the
 * stage sets differently is named with its cell. Secrets are names only: the dialog never asks
 * for a value.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import {
  formToSettings,
  ISettings,
  ISettingsForm,
  keepFalseFlags,
  settingsToForm
} from './settings';

/** A kernelspec to choose: its name and what Lab calls it. */
export interface IKernelChoice {
  name: string;
  displayName: string;
}

/** What the dialog edits. */
export interface ISettingsRequest {
  /** The stage (null: the pipeline-wide defaults). */
  stage: string | null;
  /** The stage's first cell (1-based), where its settings are written. */
  cell?: number;
  settings: ISettings;
  kernels: IKernelChoice[];
  /** The clashes with the stage's other cells of what the dialog holds. */
  conflicts: (settings: ISettings) => string[];
}

const TEXT_FIELDS: {
  key: 'timeout' | 'cellTimeout' | 'retries' | 'memory';
  setting: string;
  label: string;
  placeholder: string;
}[] = [
  {
    key: 'timeout',
    setting: 'timeout',
    label: 'Timeout of the stage',
    placeholder: 'e.g. 30m (s, m or h)'
  },
  {
    key: 'cellTimeout',
    setting: 'cell-timeout',
    label: 'Timeout of each cell',
    placeholder: 'e.g. 5m'
  },
  {
    key: 'retries',
    setting: 'retries',
    label: 'Retries after a failure',
    placeholder: 'e.g. 2'
  },
  {
    key: 'memory',
    setting: 'memory',
    label: 'Memory limit',
    placeholder: 'e.g. 4GiB (MiB, GiB, ...)'
  }
];

/** The field a mistake is about, by the words it starts with (settings.formToSettings). */
const FIELD_OF_LABEL: Record<string, string | undefined> = {
  timeout: 'timeout',
  'cell timeout': 'cell-timeout',
  retries: 'retries',
  memory: 'memory',
  kernel: 'kernel',
  env: 'env',
  secrets: 'secret'
};

export class SettingsDialogBody extends Widget {
  constructor(request: ISettingsRequest, form: ISettingsForm) {
    super();
    this._request = request;
    this.addClass('jp-nb2pipe-dialog');
    this.addClass('jp-nb2pipe-settings-dialog');
    this.node.append(
      el(
        'p',
        'jp-nb2pipe-dialog-label',
        request.stage === null
          ? "Every stage runs with these unless it sets its own. Saved in the notebook's " +
              'metadata: save the notebook, and the next export or run uses them.'
          : `Saved on cell ${request.cell ?? 1}, the stage's first: save the notebook, and the ` +
              'next export or run uses them.'
      )
    );
    const grid = el('div', 'jp-nb2pipe-settings-grid');
    this.node.append(grid);
    for (const field of TEXT_FIELDS) {
      const input = this._input(
        field.setting,
        field.label,
        form[field.key],
        grid
      );
      input.placeholder = field.placeholder;
      this._text[field.key] = input;
    }
    this._allowFailure = this._checkbox(
      'allow-failure',
      'Allow failure: a failure skips the dependants, the run succeeds',
      form.allowFailure
    );
    this._kernel = this._kernelSelect(request.kernels, form.kernel);
    this._env = el('div', 'jp-nb2pipe-env-rows');
    this._envSection(form.env);
    this._secrets = this._input('secret', 'Secrets (names)', form.secrets);
    this._secrets.placeholder = 'e.g. API_TOKEN DB_PASSWORD';
    this.node.append(
      el(
        'p',
        'jp-nb2pipe-settings-note',
        'A secret is given to the stage from the environment or a .env file beside the ' +
          'notebook when it runs; its value is never asked for here nor written anywhere.'
      )
    );
    this._trackEnv = this._checkbox(
      'track-env',
      "Track the environment: a change of Python or of the stage's packages makes it stale",
      form.trackEnv
    );
    this._conflicts = el('ul', 'jp-nb2pipe-settings-conflicts');
    this._error = el('div', 'jp-nb2pipe-dialog-error');
    this._error.setAttribute('role', 'alert');
    this.node.append(this._error, this._conflicts);
    this.node.addEventListener('input', () => this._validate());
    this.node.addEventListener('change', () => this._validate());
    this._validate();
  }

  /** What the fields hold, as typed. */
  getValue(): ISettingsForm {
    const rows = Array.from(
      this._env.querySelectorAll<HTMLElement>('.jp-nb2pipe-env-row')
    );
    const value = (row: HTMLElement, which: string) =>
      row.querySelector<HTMLInputElement>(`input[data-env="${which}"]`)!.value;
    return {
      timeout: this._text.timeout!.value,
      cellTimeout: this._text.cellTimeout!.value,
      retries: this._text.retries!.value,
      memory: this._text.memory!.value,
      allowFailure: this._allowFailure.checked,
      kernel: this._kernel.value,
      env: rows.map(row => ({
        name: value(row, 'name'),
        value: value(row, 'value')
      })),
      secrets: this._secrets.value,
      trackEnv: this._trackEnv.checked
    };
  }

  protected onAfterAttach(): void {
    this._validate(); // the dialog's buttons exist now
  }

  private _validate(): void {
    for (const marked of Array.from(
      this.node.querySelectorAll('.jp-mod-error')
    )) {
      marked.classList.remove('jp-mod-error');
    }
    this._conflicts.replaceChildren();
    let problem = '';
    try {
      const settings = formToSettings(this.getValue());
      for (const line of this._request.conflicts(settings)) {
        this._conflicts.append(el('li', 'jp-nb2pipe-settings-conflict', line));
      }
    } catch (error) {
      problem = (error as Error).message;
    }
    this._error.textContent = problem;
    this._showErrorAt(problem);
    const save = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (save) {
      save.disabled = !!problem;
    }
  }

  /** Mark the field the mistake is about and say it right under that field. */
  private _showErrorAt(problem: string): void {
    if (!problem) {
      this.node.append(this._error, this._conflicts);
      return;
    }
    const key = FIELD_OF_LABEL[problem.split(':')[0]];
    const marked =
      (key && this.node.querySelector(`[data-setting="${key}"]`)) ||
      this._secrets; // an env name also given as a secret
    marked.classList.add('jp-mod-error');
    const row =
      marked.closest('.jp-nb2pipe-settings-grid') ??
      marked.closest('label') ??
      marked;
    row.after(this._error);
    this._error.scrollIntoView?.({ block: 'nearest' });
  }

  private _input(
    setting: string,
    label: string,
    value: string,
    parent: HTMLElement = this.node
  ): HTMLInputElement {
    const row = el('label', 'jp-nb2pipe-dialog-label', label);
    const input = el('input', 'jp-mod-styled') as HTMLInputElement;
    input.type = 'text';
    input.spellcheck = false;
    input.dataset.setting = setting;
    input.value = value;
    row.append(input);
    parent.append(row);
    return input;
  }

  private _checkbox(
    setting: string,
    label: string,
    checked: boolean
  ): HTMLInputElement {
    const row = el('label', 'jp-nb2pipe-settings-check');
    const box = el('input', '') as HTMLInputElement;
    box.type = 'checkbox';
    box.dataset.setting = setting;
    box.checked = checked;
    row.append(box, el('span', '', label));
    this.node.append(row);
    return box;
  }

  private _kernelSelect(
    kernels: IKernelChoice[],
    current: string
  ): HTMLSelectElement {
    const row = el('label', 'jp-nb2pipe-dialog-label', 'Kernel');
    const select = el('select', 'jp-mod-styled') as HTMLSelectElement;
    select.dataset.setting = 'kernel';
    const choices = [{ name: '', displayName: "The pipeline's kernel" }];
    choices.push(...kernels);
    if (current && !kernels.some(k => k.name === current)) {
      choices.push({
        name: current,
        displayName: `${current} (not installed)`
      });
    }
    for (const choice of choices) {
      const option = el('option', '', choice.displayName) as HTMLOptionElement;
      option.value = choice.name;
      select.append(option);
    }
    select.value = current;
    row.append(select);
    this.node.append(row);
    return select;
  }

  private _envSection(rows: { name: string; value: string }[]): void {
    const add = el(
      'button',
      'jp-mod-styled jp-nb2pipe-env-add',
      'Add variable'
    ) as HTMLButtonElement;
    add.type = 'button';
    add.addEventListener('click', () => {
      this._envRow('', '').querySelector('input')?.focus();
    });
    this.node.append(
      el(
        'div',
        'jp-nb2pipe-dialog-label',
        'Environment variables (an empty value passes the caller’s through)'
      ),
      this._env,
      add
    );
    for (const row of rows) {
      this._envRow(row.name, row.value);
    }
  }

  private _envRow(name: string, value: string): HTMLElement {
    const row = el('div', 'jp-nb2pipe-env-row');
    const field = (which: string, text: string, label: string) => {
      const input = el('input', 'jp-mod-styled') as HTMLInputElement;
      input.type = 'text';
      input.spellcheck = false;
      input.dataset.env = which;
      input.value = text;
      input.placeholder = label;
      input.setAttribute('aria-label', `environment variable ${label}`);
      return input;
    };
    const remove = el(
      'button',
      'jp-nb2pipe-file-remove jp-nb2pipe-env-remove',
      '×'
    ) as HTMLButtonElement;
    remove.type = 'button';
    remove.setAttribute('aria-label', 'remove this variable');
    remove.addEventListener('click', () => {
      row.remove();
      this._validate();
    });
    row.dataset.setting = 'env';
    row.append(
      field('name', name, 'name'),
      field('value', value, 'value'),
      remove
    );
    this._env.append(row);
    return row;
  }

  private _request: ISettingsRequest;
  private _text: Partial<Record<string, HTMLInputElement>> = {};
  private _allowFailure: HTMLInputElement;
  private _kernel: HTMLSelectElement;
  private _env: HTMLElement;
  private _secrets: HTMLInputElement;
  private _trackEnv: HTMLInputElement;
  private _conflicts: HTMLElement;
  private _error: HTMLElement;
}

/** Ask for settings; null when cancelled. A value Enter sent past a mistake opens the dialog
 * again with what was typed and the mistake said, so nothing wrong is ever written. */
export async function askSettings(
  request: ISettingsRequest
): Promise<ISettings | null> {
  let form = settingsToForm(request.settings);
  for (;;) {
    const result = await showDialog({
      title:
        request.stage === null
          ? 'Pipeline defaults'
          : `Settings of stage '${request.stage}'`,
      body: new SettingsDialogBody(request, form),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    form = result.value;
    try {
      return keepFalseFlags(request.settings, formToSettings(form));
    } catch {
      continue;
    }
  }
}
