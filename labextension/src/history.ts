/**
 * The sidebar's "History" section: the runs of the active notebook's pipeline
 * (`GET runs`), newest first — when, status, the parameters that differ from the defaults,
 * metrics, duration, "(no-op)" as `nb2pipe runs` marks it, and each stage's executed
 * notebook of that run. The runs of a sweep are one group, its trials sortable by a metric
 * (`sweepview`). Two runs ticked show their diff (`GET diff`, what `nb2pipe diff`
 * prints). It reloads when the model's status changes or a followed run finishes.
 */

import { CommandRegistry } from '@lumino/commands';

import { formatDuration } from './format';
import { requestAPI } from './handler';
import {
  changedFromDefaults,
  diffLines,
  formatAgo,
  formatAssignments,
  formatWhen,
  metricsOnce
} from './historyformat';
import { PipelineModel } from './model';
import { groupHistory, ITrialSort, trialText } from './sweepformat';
import { sweepGroupNode } from './sweepview';
import { CommandIDs, IRun, IRunDiff, IRunHistory } from './tokens';
import { el } from './dom';

/** How many runs the section shows. */
export const HISTORY_LIMIT = 20;

export class RunHistory {
  constructor(commands: CommandRegistry) {
    this._commands = commands;
    this.node = document.createElement('details');
    this.node.className = 'jp-nb2pipe-section jp-nb2pipe-history';
    this.node.open = true;
    this._summary = el('summary', 'jp-nb2pipe-section-title', 'History');
    this._list = el('ul', 'jp-nb2pipe-runs');
    this._diff = el('div', 'jp-nb2pipe-diff');
    this._diff.setAttribute('aria-live', 'polite');
    this.node.append(this._summary, this._list, this._diff);
    this.node.hidden = true;
  }

  readonly node: HTMLDetailsElement;

  /** Show the runs of another notebook's pipeline (null: none). */
  setModel(model: PipelineModel | null): void {
    this._model?.statusChanged.disconnect(this._onStatus, this);
    this._model?.jobChanged.disconnect(this._onJob, this);
    this._model = model;
    this._runs = [];
    this._runsText = '';
    this._selected = [];
    this._render();
    model?.statusChanged.connect(this._onStatus, this);
    model?.jobChanged.connect(this._onJob, this);
    this._onStatus();
  }

  /** Fetch the runs again (one request at a time; a call meanwhile fetches once more after). */
  async refresh(): Promise<void> {
    const model = this._model;
    if (!model?.status?.exists) {
      return;
    }
    if (this._loading) {
      this._again = true;
      return;
    }
    this._loading = true;
    try {
      const query = `path=${encodeURIComponent(model.path)}&limit=${HISTORY_LIMIT}`;
      const answer = await requestAPI<IRunHistory>(`runs?${query}`);
      if (model === this._model) {
        this._setRuns(answer.runs, answer.sweep_trials ?? {});
      }
    } catch (error) {
      this._showMessage(`Cannot read the run history: ${messageOf(error)}`);
    } finally {
      this._loading = false;
    }
    if (this._again) {
      this._again = false;
      await this.refresh();
    }
  }

  private _onStatus(): void {
    const exists = !!this._model?.status?.exists;
    this.node.hidden = !exists;
    if (exists) {
      void this.refresh();
    }
  }

  private _onJob(): void {
    const job = this._model?.job;
    if (job?.finished && job.id !== this._finishedJob) {
      this._finishedJob = job.id;
      void this.refresh();
    }
  }

  private _setRuns(runs: IRun[], sweepTrials: Record<string, number>): void {
    const text = JSON.stringify([runs, sweepTrials]);
    if (text === this._runsText) {
      return;
    }
    this._runsText = text;
    this._runs = runs;
    this._sweepTrials = sweepTrials;
    const ids = new Set(runs.map(run => run.id));
    this._selected = this._selected.filter(id => ids.has(id));
    this._render();
    void this._renderDiff();
  }

  private _render(): void {
    this._summary.textContent = this._runs.length
      ? `History (${this._runs.length} ${this._runs.length === 1 ? 'run' : 'runs'})`
      : 'History';
    this._list.replaceChildren();
    if (!this._runs.length) {
      this._list.append(
        el(
          'li',
          'jp-nb2pipe-empty',
          'No runs yet. Run the pipeline to see it here.'
        )
      );
      return;
    }
    this._list.append(
      el('li', 'jp-nb2pipe-hint', 'Tick two runs to compare them.')
    );
    const now = Date.now();
    for (const item of groupHistory(this._runs, this._sweepTrials)) {
      this._list.append(
        item.kind === 'run'
          ? this._renderRun(item.run, now)
          : sweepGroupNode(item, {
              renderRun: run => this._renderRun(run, now),
              sort: this._sweepSorts.get(item.id) ?? null,
              onSort: sort => this._sweepSorts.set(item.id, sort),
              open: !this._closedSweeps.has(item.id),
              onToggle: open =>
                open
                  ? this._closedSweeps.delete(item.id)
                  : this._closedSweeps.add(item.id)
            })
      );
    }
  }

  private _renderRun(run: IRun, now: number): HTMLElement {
    const item = el('li', 'jp-nb2pipe-run');
    item.dataset.run = run.id;
    item.dataset.status = run.status;
    const head = el('label', 'jp-nb2pipe-run-head');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'jp-nb2pipe-run-select';
    box.checked = this._selected.includes(run.id);
    box.setAttribute('aria-label', `Compare run ${run.id}`);
    box.addEventListener('change', () => this._toggle(run.id, box.checked));
    const when = el('span', 'jp-nb2pipe-run-when', formatAgo(run.started, now));
    when.title = `${formatWhen(run.started)} — run ${run.id}`;
    const status = el(
      'span',
      'jp-nb2pipe-run-status',
      run.status + (run.no_op ? ' (no-op)' : '')
    );
    head.append(box, when, status);
    const duration = formatDuration(run.duration);
    if (duration) {
      head.append(el('span', 'jp-nb2pipe-duration', duration));
    }
    item.append(head);
    item.append(this._paramsLine(run));
    const metrics = formatAssignments(metricsOnce(run.metrics));
    if (metrics) {
      item.append(el('div', 'jp-nb2pipe-run-metrics', metrics));
    }
    const notebooks = run.stages.filter(stage => stage.executed);
    if (notebooks.length) {
      const line = el('div', 'jp-nb2pipe-run-notebooks', 'Notebooks: ');
      for (const stage of notebooks) {
        line.append(this._notebookButton(run, stage.name, stage.executed!));
      }
      item.append(line);
    }
    return item;
  }

  private _paramsLine(run: IRun): HTMLElement {
    if (run.trial) {
      const line = el('div', 'jp-nb2pipe-run-params', trialText(run));
      line.title = `all parameters: ${formatAssignments(run.params) || '-'}`;
      return line;
    }
    const parameters = this._model?.status?.parameters ?? [];
    const changed = formatAssignments(
      changedFromDefaults(run.params, parameters)
    );
    const line = el(
      'div',
      'jp-nb2pipe-run-params',
      changed ? `params: ${changed}` : 'default parameters'
    );
    const sincePrevious = formatAssignments(run.changed_params);
    line.title =
      `all parameters: ${formatAssignments(run.params) || '-'}` +
      (sincePrevious ? `\nchanged since the run before: ${sincePrevious}` : '');
    return line;
  }

  private _notebookButton(run: IRun, stage: string, path: string): HTMLElement {
    const button = el(
      'button',
      'jp-nb2pipe-button jp-nb2pipe-run-notebook',
      stage
    ) as HTMLButtonElement;
    button.type = 'button';
    button.dataset.stage = stage;
    button.title = `Open the executed notebook of stage '${stage}' from run ${run.id}`;
    button.addEventListener('click', () => {
      void this._commands
        .execute(CommandIDs.openExecuted, { path })
        .catch(error => console.error(error));
    });
    return button;
  }

  private _toggle(id: string, on: boolean): void {
    this._selected = this._selected.filter(other => other !== id);
    if (on) {
      this._selected.push(id);
    }
    this._selected = this._selected.slice(-2); // a third tick replaces the oldest
    const boxes = this._list.querySelectorAll<HTMLInputElement>(
      '.jp-nb2pipe-run-select'
    );
    for (const box of Array.from(boxes)) {
      const run = box.closest<HTMLElement>('.jp-nb2pipe-run')?.dataset.run;
      box.checked = !!run && this._selected.includes(run);
    }
    void this._renderDiff();
  }

  /** The diff of the two ticked runs, older first; a hint while fewer are ticked. */
  private async _renderDiff(): Promise<void> {
    const model = this._model;
    const picked = this._runs.filter(run => this._selected.includes(run.id));
    if (!model || picked.length !== 2) {
      this._diff.replaceChildren();
      this._diffKey = '';
      return;
    }
    const [b, a] = picked; // newest first
    const key = `${a.id}..${b.id}`;
    if (key === this._diffKey) {
      return;
    }
    this._diffKey = key;
    const query =
      `path=${encodeURIComponent(model.path)}` +
      `&a=${encodeURIComponent(a.id)}&b=${encodeURIComponent(b.id)}`;
    try {
      const diff = await requestAPI<IRunDiff>(`diff?${query}`);
      if (key === this._diffKey) {
        this._diff.replaceChildren(diffTable(diff));
      }
    } catch (error) {
      this._diffKey = '';
      this._showMessage(`Cannot compare the runs: ${messageOf(error)}`);
    }
  }

  private _showMessage(text: string): void {
    this._diff.replaceChildren(el('div', 'jp-nb2pipe-error', text));
  }

  private _commands: CommandRegistry;
  private _model: PipelineModel | null = null;
  private _summary: HTMLElement;
  private _list: HTMLElement;
  private _diff: HTMLElement;
  private _runs: IRun[] = [];
  private _sweepTrials: Record<string, number> = {};
  /** The sort chosen for each sweep's trials, and the sweeps whose group was closed. */
  private _sweepSorts = new Map<string, ITrialSort | null>();
  private _closedSweeps = new Set<string>();
  private _runsText = '';
  private _selected: string[] = [];
  private _diffKey = '';
  private _finishedJob = '';
  private _loading = false;
  private _again = false;
}

/** What changed from run a to run b: params, metrics and outputs, one line each. */
function diffTable(diff: IRunDiff): HTMLElement {
  const box = el('div', 'jp-nb2pipe-diff-box');
  box.dataset.a = diff.a;
  box.dataset.b = diff.b;
  box.append(el('div', 'jp-nb2pipe-diff-title', `${diff.a} → ${diff.b}`));
  const lines = diffLines(diff);
  if (!lines.length) {
    box.append(
      el(
        'p',
        'jp-nb2pipe-hint',
        'The two runs have the same parameters, metrics and outputs.'
      )
    );
    return box;
  }
  let section = '';
  for (const line of lines) {
    if (line.section !== section) {
      section = line.section;
      box.append(el('div', 'jp-nb2pipe-diff-section', section));
    }
    const row = el('div', 'jp-nb2pipe-diff-row');
    row.dataset.section = line.section;
    row.dataset.name = line.name;
    row.append(el('span', 'jp-nb2pipe-diff-name', line.name));
    const values = el('span', 'jp-nb2pipe-diff-values');
    if (line.section === 'outputs') {
      values.title = `${line.a} → ${line.b}`; // content hashes: the path and how it changed suffice
    } else {
      values.append(
        el('span', 'jp-nb2pipe-diff-a', line.a),
        el('span', 'jp-nb2pipe-diff-arrow', ' → '),
        el('span', 'jp-nb2pipe-diff-b', line.b)
      );
    }
    values.append(el('span', 'jp-nb2pipe-diff-change', line.change));
    row.append(values);
    box.append(row);
  }
  return box;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
