/**
 * The left sidebar: the active notebook's pipeline, its stages and their state, and the
 * buttons to export and run it. It renders a `PipelineModel` and runs commands; it holds
 * no state of its own besides which model it shows.
 */

import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { paintStage, stageColors } from './colors';
import { debugStatusNode, DebugStatuses } from './debug';
import { isDebugNotebook } from './debugtext';
import { el } from './dom';
import { isExecutedNotebook } from './executed';
import { FailureBoxes } from './failure';
import { RunHistory } from './history';
import { explainDetails } from './explain';
import { nb2pipeIcon } from './icons';
import { PipelineModel } from './model';
import { OutputBoxes } from './output';
import { ParamsForm } from './paramsform';
import { ISettings } from './settings';
import { settingsSummary, settingsTooltip } from './settingstext';
import {
  displayState,
  failureView,
  formatDuration,
  formatMetric,
  finishedJobText,
  progressText,
  STATE_LABELS
} from './format';
import { CommandIDs, IJob, IStageStatus, isJobFinished } from './tokens';
import { VerifySection } from './verify';
import { JobStageState, StageState } from './vocabulary';

export class Nb2pipeSidebar extends Widget {
  constructor(commands: CommandRegistry, debugging: DebugStatuses) {
    super();
    this._commands = commands;
    this._debugging = debugging;
    debugging.changed.connect(this._render, this);
    this.id = 'jp-nb2pipe-sidebar';
    this.addClass('jp-nb2pipe-sidebar');
    this.title.icon = nb2pipeIcon;
    // tooltip; side-bar tabs show icons only
    this.title.caption =
      "nb2pipe: the active notebook's pipeline — stages, state, runs";

    const heading = document.createElement('h2');
    heading.className = 'jp-nb2pipe-title';
    heading.textContent = 'nb2pipe';
    this._path = document.createElement('div');
    this._path.className = 'jp-nb2pipe-path';
    this._body = document.createElement('div');
    this._body.className = 'jp-nb2pipe-body';
    this._params = new ParamsForm(commands);
    this._history = new RunHistory(commands);
    this.node.append(
      heading,
      this._path,
      this._body,
      this._params.node,
      this._history.node
    );
    this.setModel(null);
  }

  /** The model shown (null: no active notebook). */
  get model(): PipelineModel | null {
    return this._model;
  }

  /** Show the pipeline of another notebook. */
  setModel(model: PipelineModel | null): void {
    if (this._model) {
      this._model.statusChanged.disconnect(this._render, this);
      this._model.jobChanged.disconnect(this._render, this);
      this._model.errorChanged.disconnect(this._render, this);
    }
    this._model = model;
    if (model) {
      model.statusChanged.connect(this._render, this);
      model.jobChanged.connect(this._render, this);
      model.errorChanged.connect(this._render, this);
    }
    this._params.setModel(model);
    this._history.setModel(model);
    this._verify.setPath(
      model && !isExecutedNotebook(model.path) ? model.path : null
    );
    this._path.textContent = model ? model.path : 'No active notebook';
    this._path.dataset.path = model ? model.path : '';
    this._render();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._model?.refresh();
  }

  private _render(): void {
    const model = this._model;
    const body = this._body;
    body.replaceChildren();
    if (!model || model.isDisposed) {
      return;
    }
    if (this._renderDebugNotebook(model.path)) {
      return;
    }
    if (isExecutedNotebook(model.path)) {
      body.append(
        el(
          'p',
          'jp-nb2pipe-empty jp-nb2pipe-executed-note',
          'This is an executed notebook written by a pipeline run; it is not exported. ' +
            'Open its source notebook to see the pipeline.'
        )
      );
      return;
    }
    if (model.error) {
      const error = el('div', 'jp-nb2pipe-error');
      error.append(el('span', 'jp-nb2pipe-error-text', model.error));
      if (model.errorIsDismissable) {
        const dismiss = el(
          'button',
          'jp-mod-styled jp-nb2pipe-dismiss',
          'Dismiss'
        ) as HTMLButtonElement;
        dismiss.type = 'button';
        dismiss.title = 'Hide this message';
        dismiss.addEventListener('click', () => model.dismissError());
        error.append(dismiss);
      }
      body.append(error);
    }
    const status = model.status;
    if (!status) {
      if (!model.error) {
        body.append(el('div', 'jp-nb2pipe-loading', 'Loading…'));
      }
      return;
    }
    const running = model.isRunning;
    if (!status.exists) {
      body.append(
        el(
          'p',
          'jp-nb2pipe-empty',
          'This notebook has no pipeline yet. Export it to cut it into stages.'
        ),
        this._button(
          'Export',
          'jp-nb2pipe-export',
          CommandIDs.exportPipeline,
          {},
          running,
          true
        ),
        this._defaultsRow(undefined)
      );
      this._renderJob(model.job);
      return;
    }
    body.append(el('div', 'jp-nb2pipe-pipeline', status.pipeline));
    if (status.source_in_sync === false) {
      const banner = el('div', 'jp-nb2pipe-banner');
      banner.append(
        el(
          'span',
          '',
          status.export_error
            ? `The notebook changed since the last export. ${status.export_error}`
            : 'The notebook changed since the last export; the stages show what it changes.'
        ),
        this._button(
          'Re-export',
          'jp-nb2pipe-reexport',
          CommandIDs.exportPipeline,
          {},
          running
        )
      );
      body.append(banner);
    }
    for (const warning of model.warnings) {
      body.append(el('div', 'jp-nb2pipe-warning', warning));
    }
    const actions = el('div', 'jp-nb2pipe-actions');
    actions.append(
      this._button(
        'Run stale',
        'jp-nb2pipe-run-stale',
        CommandIDs.runStale,
        {},
        running,
        true
      ),
      this._button(
        'Run all',
        'jp-nb2pipe-run-all',
        CommandIDs.runAll,
        {},
        running
      )
    );
    if (running) {
      actions.append(
        this._button(
          model.isCancelling ? 'Cancelling…' : 'Cancel',
          'jp-nb2pipe-cancel',
          CommandIDs.cancelRun,
          {},
          model.isCancelling
        )
      );
    }
    actions.append(
      this._button(
        'Graph',
        'jp-nb2pipe-show-graph',
        CommandIDs.showGraph,
        {},
        false
      ),
      this._button(
        'Refresh',
        'jp-nb2pipe-refresh',
        CommandIDs.refreshStatus,
        {},
        false
      )
    );
    body.append(actions);
    this._renderJob(model.job, model.isCancelling);

    const list = el('ul', 'jp-nb2pipe-stages');
    const colors = stageColors(status.stages.map(stage => stage.name));
    for (const stage of status.stages) {
      list.append(this._renderStage(stage, model.job, running, colors));
    }
    body.append(list, this._defaultsRow(status.defaults), this._verify.node);
    const runningStages = status.stages
      .filter(stage => displayState(stage, model.job) === StageState.RUNNING)
      .map(stage => stage.name);
    this._outputs.settle(new Set(runningStages)); // scroll the output boxes back
  }

  /** A debug notebook: what it is and how its debugging went, instead of a pipeline. */
  private _renderDebugNotebook(path: string): boolean {
    const status = this._debugging.ofNotebook(path);
    if (!status && !isDebugNotebook(path)) {
      return false;
    }
    this._body.append(
      el(
        'p',
        'jp-nb2pipe-empty jp-nb2pipe-debug-note',
        "This is a debug notebook written by nb2pipe debug: a failed stage with its run's " +
          'parameters and inputs. Fix the cell here, copy the fix to the source notebook ' +
          '(or nb2pipe debug --apply), then run the pipeline again.'
      )
    );
    if (status) {
      this._body.append(debugStatusNode(status));
    }
    return true;
  }

  /** A failed stage's Debug button, and how its debugging goes. */
  private _debugPart(
    path: string,
    stage: string,
    running: boolean
  ): HTMLElement {
    const part = el('div', 'jp-nb2pipe-debug');
    const status = this._debugging.get(path, stage);
    const button = this._button(
      'Debug',
      'jp-nb2pipe-debug-stage',
      CommandIDs.debugStage,
      { stage },
      running || status?.phase === 'working'
    );
    // While the pipeline runs, the history may not hold this failure yet.
    button.title = running
      ? 'Debug is available once the running pipeline ends'
      : `Open the debug notebook of '${stage}' with a kernel and run it up to the failing cell`;
    part.append(button);
    if (status) {
      part.append(debugStatusNode(status));
    }
    return part;
  }

  private _renderJob(job: IJob | null, cancelling = false): void {
    if (!job) {
      return;
    }
    const box = el('div', `jp-nb2pipe-progress jp-nb2pipe-job-${job.status}`);
    box.dataset.status = job.status;
    if (cancelling) {
      box.dataset.cancelling = 'true';
      box.append(
        el('span', 'jp-nb2pipe-spinner', ''),
        el('span', '', 'Cancelling — stopping the running stages…')
      );
    } else if (!isJobFinished(job)) {
      const current = Object.entries(job.stages).filter(
        ([, s]) => s.state === JobStageState.RUNNING
      );
      const text = current.length
        ? current.map(([name, s]) => `${name}: ${progressText(s)}`).join(', ')
        : 'starting…';
      box.append(
        el('span', 'jp-nb2pipe-spinner', ''),
        el('span', '', `Running — ${text}`)
      );
    } else {
      box.append(el('span', '', finishedJobText(job)));
    }
    this._body.append(box);
  }

  private _renderStage(
    stage: IStageStatus,
    job: IJob | null,
    running: boolean,
    colors: Map<string, string>
  ): HTMLElement {
    const state = displayState(stage, job);
    const progress =
      job && !isJobFinished(job) ? job.stages[stage.name] : undefined;
    const item = el('li', `jp-nb2pipe-stage jp-nb2pipe-state-${state}`);
    item.dataset.stage = stage.name;
    item.dataset.state = state;
    paintStage(item, colors.get(stage.name)!);

    const head = el('div', 'jp-nb2pipe-stage-head');
    const shown = STATE_LABELS[state] ?? { icon: '?', label: state };
    const icon = el('span', 'jp-nb2pipe-state-icon', shown.icon);
    icon.title = shown.label;
    const name = el('span', 'jp-nb2pipe-stage-name', stage.name);
    name.title = stage.cells.length
      ? `${stage.name}: notebook cells ${stage.cells.join(', ')}`
      : stage.name;
    const label = el(
      'span',
      'jp-nb2pipe-state-label',
      state === StageState.RUNNING
        ? `running ${progressText(progress)}`
        : shown.label
    );
    const run = this._button(
      'Run',
      'jp-nb2pipe-run-stage',
      CommandIDs.runStage,
      { stage: stage.name },
      running
    );
    run.title = `Run stage '${stage.name}' (even if up to date)`;
    head.append(icon, name, run, this._settingsButton(stage));
    const line = el('div', 'jp-nb2pipe-stage-state');
    line.append(label);
    const duration = formatDuration(stage.last_run?.duration);
    if (duration && state !== StageState.RUNNING) {
      const d = el('span', 'jp-nb2pipe-duration', duration);
      d.title = 'duration of the last run';
      line.append(d);
    }
    item.append(head, line, ...stageSettings(stage));

    item.append(...stageReasons(stage, state), ...stageMetrics(stage));

    if (state === StageState.RUNNING) {
      item.append(this._outputs.box(stage.name, progress?.output)); // output.ts
    } else if (state === StageState.FAILED) {
      item.append(
        this._failures.box(stage.name, failureView(stage, job)),
        this._debugPart(this._model!.path, stage.name, running)
      );
    } else if (stage.last_run?.notebook) {
      const open = this._button(
        'Open output',
        'jp-nb2pipe-open-output',
        CommandIDs.openExecuted,
        { path: stage.last_run.notebook },
        false
      );
      open.title = `Open the executed notebook of the last run (read-only): ${stage.last_run.notebook}`;
      head.append(open);
    }
    item.append(
      explainDetails(stage, this._explained.has(stage.name), open => {
        if (open) {
          this._explained.add(stage.name);
        } else {
          this._explained.delete(stage.name);
        }
      })
    );
    return item;
  }

  /** The stage's settings dialog (settingscommands.ts): it edits the notebook, never a run. */
  private _settingsButton(stage: IStageStatus): HTMLButtonElement {
    const button = this._button(
      '⚙',
      'jp-nb2pipe-stage-settings-button',
      CommandIDs.editStageSettings,
      { stage: stage.name, cells: stage.cells },
      false
    );
    button.title = `Settings of stage '${stage.name}': timeout, retries, memory, kernel, env, secrets`;
    button.setAttribute('aria-label', `Settings of stage ${stage.name}`);
    return button;
  }

  /** The pipeline-wide settings, and the button that edits them (settingscommands.ts). */
  private _defaultsRow(defaults: ISettings | undefined): HTMLElement {
    const row = el('div', 'jp-nb2pipe-defaults-row');
    const summary = settingsSummary(defaults);
    const text = el(
      'span',
      'jp-nb2pipe-defaults-summary',
      `Pipeline defaults: ${summary || 'none'}`
    );
    text.title = settingsTooltip(defaults);
    const button = this._button(
      'Defaults…',
      'jp-nb2pipe-defaults',
      CommandIDs.editDefaults,
      {},
      false
    );
    button.title =
      "Pipeline defaults: settings every stage runs with unless it sets its own (saved in the notebook's metadata)";
    row.append(text, button);
    return row;
  }

  private _button(
    text: string,
    className: string,
    command: string,
    args: Record<string, any>,
    disabled: boolean,
    primary = false
  ): HTMLButtonElement {
    const button = el(
      'button',
      `jp-mod-styled jp-nb2pipe-button ${className}`,
      text
    ) as HTMLButtonElement;
    if (primary) {
      button.classList.add('jp-mod-accept');
    }
    button.type = 'button';
    button.disabled = disabled;
    button.addEventListener('click', () => {
      void this._commands
        .execute(command, args)
        .catch(error => console.error(error));
    });
    return button;
  }

  private _commands: CommandRegistry;
  private _debugging: DebugStatuses;
  private _outputs = new OutputBoxes();
  private _failures = new FailureBoxes((path, cell) => {
    void this._commands
      .execute(CommandIDs.openExecuted, { path, cell })
      .catch(error => console.error(error));
  });
  private _verify = new VerifySection();
  private _model: PipelineModel | null = null;
  private _path: HTMLDivElement;
  private _body: HTMLDivElement;
  private _params: ParamsForm;
  private _history: RunHistory;
  private _explained = new Set<string>(); // stages whose Explain section is open
}

/** The reasons a stage is not up to date, as a list (none: nothing). */
function stageReasons(stage: IStageStatus, state: string): HTMLElement[] {
  // A failed stage shows its error below; its "last run failed: ..." reason would repeat it.
  // One that failed in the running job has the status's reasons from before the run: none shown.
  const shownReasons =
    state === StageState.FAILED
      ? stage.state === StageState.FAILED
        ? stage.reasons.filter(r => !r.startsWith('last run failed'))
        : []
      : stage.reasons;
  const explained: string[] = [
    StageState.STALE,
    StageState.FAILED,
    StageState.CANCELLED
  ];
  if (!explained.includes(state) || !shownReasons.length) {
    return [];
  }
  const reasons = el('ul', 'jp-nb2pipe-reasons');
  for (const reason of shownReasons) {
    reasons.append(el('li', 'jp-nb2pipe-reason', reason));
  }
  return [reasons];
}

/** A short line of the settings the stage runs with, e.g. "timeout 30m · ↻2" (none: nothing). */
function stageSettings(stage: IStageStatus): HTMLElement[] {
  const summary = settingsSummary(stage.settings);
  if (!summary) {
    return [];
  }
  const line = el('div', 'jp-nb2pipe-stage-settings', summary);
  line.title =
    'Settings the stage runs with (its own over the pipeline defaults):\n' +
    settingsTooltip(stage.settings);
  return [line];
}

/** The stage's metrics, as name and value pairs (none: nothing). */
function stageMetrics(stage: IStageStatus): HTMLElement[] {
  const metrics = Object.entries(stage.metrics ?? {});
  if (!metrics.length) {
    return [];
  }
  const box = el('div', 'jp-nb2pipe-metrics');
  for (const [key, value] of metrics) {
    const metric = el('span', 'jp-nb2pipe-metric');
    metric.append(
      el('span', 'jp-nb2pipe-metric-name', key),
      el('span', 'jp-nb2pipe-metric-value', formatMetric(value))
    );
    box.append(metric);
  }
  return [box];
}
