/**
 * Shared types and names of the nb2pipe lab extension.
 *
 * The REST types mirror nb2pipe/server/handlers.py and nb2pipe/server/jobs.py
 * (`<baseUrl>/nb2pipe/...`); command ids are spelled once, in `CommandIDs`. The words for
 * states, outcomes and statuses come from `vocabulary.ts`, generated from nb2pipe/vocabulary.py.
 */

import type { ISettings } from './settings';
import { JOB_FINISHED, JobStatus, StageState } from './vocabulary';

export { JobStatus, StageState };

/** Settings of the `nb2pipe:plugin` plugin (see schema/plugin.json). */
export interface INb2pipeSettings {
  /** How often (ms) the sidebar refreshes pipeline status while it is visible. */
  pollInterval: number;
}

/** Every command of the extension. */
export namespace CommandIDs {
  // cell tools (cell toolbar, cell context menu)
  export const setStage = 'nb2pipe:set-stage';
  export const toggleParameters = 'nb2pipe:toggle-parameters';
  export const toggleSetup = 'nb2pipe:toggle-setup';
  export const toggleSkip = 'nb2pipe:toggle-skip';
  export const toggleMetrics = 'nb2pipe:toggle-metrics';
  export const declareInputs = 'nb2pipe:declare-inputs';
  export const declareOutputs = 'nb2pipe:declare-outputs';
  export const setAfter = 'nb2pipe:set-after';
  // settings (settingscommands.ts): a stage's, the pipeline-wide defaults
  export const editStageSettings = 'nb2pipe:edit-stage-settings';
  export const editDefaults = 'nb2pipe:edit-pipeline-defaults';
  // pipeline of the active notebook (sidebar, command palette)
  export const exportPipeline = 'nb2pipe:export-pipeline';
  export const runStale = 'nb2pipe:run-stale';
  export const runAll = 'nb2pipe:run-all';
  export const runStage = 'nb2pipe:run-stage';
  export const runWithParams = 'nb2pipe:run-with-params';
  export const cancelRun = 'nb2pipe:cancel-run';
  export const refreshStatus = 'nb2pipe:refresh-status';
  export const openExecuted = 'nb2pipe:open-executed';
  export const debugStage = 'nb2pipe:debug-stage';
  // the pipeline graph (graphcommands.ts)
  export const showGraph = 'nb2pipe:show-graph';
}

/**
 * The arguments each command takes, as JSON schemas (a command's `describedBy`), so that
 * `app.commands.describedBy(id)` tells callers what to pass.
 */
export namespace CommandArgs {
  /** The command reads no arguments. */
  export const none = { args: { type: 'object', properties: {} } };
  /** The cell toolbar's `nb2pipe:set-stage` button shows the icon only. */
  export const setStage = {
    args: {
      type: 'object',
      properties: {
        toolbar: {
          type: 'boolean',
          description: 'shown in the cell toolbar: an icon and no label'
        }
      }
    }
  };
  export const runStage = {
    args: {
      type: 'object',
      properties: {
        stage: { type: 'string', description: 'the stage to run' }
      },
      required: ['stage']
    }
  };
  export const runWithParams = {
    args: {
      type: 'object',
      properties: {
        params: {
          type: 'object',
          description:
            'parameter values over params.yaml, typed (0.5 a float, 3 an int)'
        }
      },
      required: ['params']
    }
  };
  export const debugStage = {
    args: {
      type: 'object',
      properties: {
        stage: {
          type: 'string',
          description:
            'the failed stage: its debug notebook opens, run up to the failing cell'
        }
      },
      required: ['stage']
    }
  };
  export const openExecuted = {
    args: {
      type: 'object',
      properties: {
        path: {
          type: 'string',
          description: 'the executed notebook, relative to the server root'
        },
        cell: {
          type: 'string',
          description: 'the title of the cell to open it at (the failing cell)'
        }
      },
      required: ['path']
    }
  };
}

/** A stage that failed (nb2pipe.errors.StageError): where, what, and the notebook to open. */
export interface IStageError {
  stage: string;
  /** Exception type and value, e.g. `ValueError`, `boom`. */
  ename: string;
  evalue: string;
  /** `ValueError: boom` (or `failed` when nothing is known). */
  exception: string;
  /** Title of the failing cell, e.g. `analysis.ipynb cell 5`. */
  cell: string | null;
  /** The stage script, relative to the server root. */
  script: string | null;
  /** The executed notebook, relative to the server root. */
  notebook: string | null;
  /** The failing cell's traceback as plain text (absent from older servers). */
  traceback?: string | null;
  /** The one-line message the CLI prints. */
  message: string;
}

/** The last recorded run of a stage (`.nb2pipe/last.json`). */
export interface ILastRun {
  outcome: string;
  duration?: number | null;
  error?: string | null;
  /** Executed notebook, relative to the server root. */
  notebook?: string | null;
  /** A failed last run: its error. */
  stage_error?: IStageError | null;
  run?: string;
  finished?: string;
}

/** One stage in `GET status`. */
export interface IStageStatus {
  name: string;
  state: StageState;
  /** Why the stage is not up to date, e.g. `param changed: alpha 1.0 → 0.5`. */
  reasons: string[];
  last_run: ILastRun | null;
  metrics: Record<string, unknown>;
  /** 1-based numbers of the notebook cells the stage was cut from. */
  cells: number[];
  params: string[];
  /** What flows in and out (what `nb2pipe explain` prints); absent from older servers. */
  loads?: { name: string; from: string }[];
  saves?: { name: string; to: string[] }[];
  /** Files read, relative to the wdir; `from`: the stages writing each. */
  deps?: { path: string; from: string[]; how: string }[];
  outs?: { path: string; how: string }[];
  /** Stages named by `after:`: an order where nothing flows. */
  after?: string[];
  /** The settings the stage runs with (own over the defaults); absent from older servers. */
  settings?: ISettings;
}

/** `GET status?path=NOTEBOOK`. */
export interface IStatus {
  notebook: string | null;
  pipeline: string;
  exists: boolean;
  /** False when the notebook changed since export; absent when there is no pipeline. */
  source_in_sync?: boolean | null;
  /**
   * Why the saved notebook cannot be exported, or null. While the notebook is out of sync
   * and exportable, `stages` are what it makes stale (as after a re-export).
   */
  export_error?: string | null;
  stages: IStageStatus[];
  job: IJob | null;
  /** The pipeline's parameters (absent when there is no pipeline). */
  parameters?: IParameter[];
  /** The pipeline-wide settings (absent when there is no pipeline or from older servers). */
  defaults?: ISettings;
}

/** `POST export`. */
export interface IExportResult {
  pipeline: string;
  stages: string[];
  written: string[];
  warnings: string[];
}

/** Body of `POST runs`. */
export interface IRunRequest {
  path: string;
  stages?: string[];
  force?: boolean;
  downstream?: boolean;
  params?: Record<string, unknown>;
}

/** Progress of one stage inside a job. */
export interface IJobStage {
  /** pending, running, cancelled, or the runner's outcome (`Outcome`: ran, up to date, ...). */
  state: string;
  /** Running: index of the code cell being executed (1-based); failed: title of the failing cell. */
  cell?: number | string | null;
  cells?: number | null;
  duration?: number | null;
  error?: string | null;
  /** Executed notebook, relative to the server root. */
  notebook?: string | null;
  metrics?: Record<string, unknown> | null;
  started?: string | number | null;
  /** Running: the source notebook's number of the cell in progress (null: a cell nb2pipe added). */
  notebook_cell?: number | null;
  /** Running: where that cell is among the stage's own cells (1-based), and how many it has. */
  position?: number | null;
  of?: number | null;
  /** Running, outside the stage's own cells: setup, configuration, preparing or finishing. */
  role?: string | null;
  /** The last lines the stage printed (stdout, stderr, `[image]`, ...), kept after it ends. */
  output?: string[];
}

/** A run started from the browser: `POST runs` (202), `GET runs/{id}`, `DELETE runs/{id}`. */
export interface IJob {
  id: string;
  pipeline: string;
  status: JobStatus;
  run: string | null;
  stages: Record<string, IJobStage>;
  /** One message per failed stage (the CLI's `error:` lines). */
  errors: string[];
  /** The failed stages' errors, structured. */
  stage_errors?: IStageError[];
  summary: string | null;
  started: number;
  finished: number | null;
}

/** `GET runs?path=` (history). */
export interface IRunHistory {
  runs: IRun[];
  /** How many trials each sweep among `runs` has in all (some may be older than the runs shown). */
  sweep_trials?: Record<string, number>;
}

/** A parameter of the pipeline (`status.parameters`): params.yaml's value and its type. */
export interface IParameter {
  name: string;
  type: 'bool' | 'int' | 'float' | 'str' | 'list' | 'dict' | 'none';
  default: unknown;
  /** The stages that read it. */
  stages: string[];
}

/** One stage of a recorded run. */
export interface IRunStage {
  name: string;
  outcome: string;
  duration: number | null;
  /** The stage's executed notebook of that run, relative to the server root. */
  executed: string | null;
}

/** One run of the history (`nb2pipe runs --json`, plus `no_op` and `changed_params`). */
export interface IRun {
  id: string;
  started: number;
  finished: number | null;
  duration: number | null;
  status: string;
  params: Record<string, unknown>;
  metrics: Record<string, unknown>;
  tags: string[];
  summary: string | null;
  /** The run changed nothing (`nb2pipe runs` marks it "(no-op)"). */
  no_op: boolean;
  /** The parameters that differ from the run before it. */
  changed_params: Record<string, unknown>;
  stages: IRunStage[];
  /** The sweep the run belongs to (`nb2pipe sweep`), if any. */
  sweep?: string | null;
  /** The values the sweep set for this trial; null for the run of the sweep's shared stages. */
  trial?: Record<string, unknown> | null;
}

/** One row of a diff: a parameter, metric or output of run a and run b. */
export interface IDiffRow {
  name: string;
  a: unknown;
  b: unknown;
  changed: boolean;
  /** b - a, when both are numbers. */
  change?: number;
}

/** `GET diff?path=&a=&b=`: what `nb2pipe diff --json` prints. */
export interface IRunDiff {
  a: string;
  b: string;
  params: IDiffRow[];
  metrics: IDiffRow[];
  outputs: IDiffRow[];
}

/** True once a job will not change any more. */
export function isJobFinished(job: IJob | null | undefined): boolean {
  if (!job) {
    return false;
  }
  return (
    (job.finished !== null && job.finished !== undefined) ||
    JOB_FINISHED.has(job.status)
  );
}

/** The structured error of `stage` in `job`, if it failed there. */
export function stageErrorOf(
  job: IJob | null | undefined,
  stage: string
): IStageError | undefined {
  return job?.stage_errors?.find(error => error.stage === stage);
}

/** One difference `nb2pipe verify` found (`kind`: cell, file or run). */
export interface IVerifyDifference {
  kind: string;
  cell: number | null;
  file: string | null;
  stage: string | null;
  message: string;
  diff: string;
}

/** `POST verify` (202), `GET verify/{id}`: `nb2pipe verify` run by the server. */
export interface IVerifyJob {
  id: string;
  notebook: string;
  /** starting, running, ok (compared: see `equal`), failed (could not compare: see `errors`). */
  status: JobStatus;
  /** What runs now, while it runs. */
  progress: string | null;
  equal: boolean | null;
  summary: string | null;
  /** The first differences. */
  differences: IVerifyDifference[];
  errors: string[];
  started: number;
  finished: number | null;
}
