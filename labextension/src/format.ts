/** How the sidebar words states, durations, metrics and progress (pure functions). */

import {
  IJob,
  IJobStage,
  IStageError,
  IStageStatus,
  isJobFinished,
  stageErrorOf
} from './tokens';
import { JobStageState, JobStatus, Outcome, StageState } from './vocabulary';

/** Shown for a stage waiting in a running job. */
export const QUEUED = 'queued';

/** How each state is shown: icon and words. */
export const STATE_LABELS: Record<string, { icon: string; label: string }> = {
  [StageState.UP_TO_DATE]: { icon: '✓', label: 'up to date' },
  [StageState.STALE]: { icon: '●', label: 'stale' },
  [StageState.NEVER_RUN]: { icon: '○', label: 'never run' },
  [StageState.RUNNING]: { icon: '◐', label: 'running' },
  [QUEUED]: { icon: '…', label: 'queued' },
  [StageState.FAILED]: { icon: '✕', label: 'failed' },
  [StageState.CANCELLED]: { icon: '⊘', label: 'cancelled' }
};

/** "7.2 s", "2 min 05 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;
}

/** A metric value, short. */
export function formatMetric(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? String(value)
      : String(Number(value.toPrecision(4)));
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The state to show for a stage: a running job's view wins over the last status. */
export function displayState(stage: IStageStatus, job: IJob | null): string {
  const progress =
    job && !isJobFinished(job) ? job.stages[stage.name] : undefined;
  if (progress?.state === JobStageState.RUNNING) {
    return StageState.RUNNING;
  }
  if (progress?.state === JobStageState.PENDING) {
    return QUEUED;
  }
  if (progress?.state === Outcome.FAILED) {
    return StageState.FAILED; // the status says so only once the run has ended
  }
  return stage.state;
}

/** What the sidebar shows of a failed stage, and where "Open executed notebook" goes. */
export interface IFailureView {
  /** `ValueError: boom`; or the whole message when only a message is known. */
  exception: string;
  /** `in analysis.ipynb cell 5`, or empty. */
  cell: string;
  /** The one-line message (the CLI's `error:` line). */
  message: string;
  /** The executed notebook, relative to the server root, or null. */
  notebook: string | null;
  /** The title of the cell to open it at, or null. */
  openCell: string | null;
  /** The failing cell's traceback, or null when not known. */
  traceback: string | null;
}

/**
 * The failure of `stage`: from the job that ran it (its structured error) when it failed there,
 * else from its last recorded run. Older servers send only messages: shown as they are.
 */
export function failureView(
  stage: IStageStatus,
  job: IJob | null
): IFailureView {
  const jobStage = job?.stages[stage.name];
  const inJob = jobStage?.state === Outcome.FAILED ? jobStage : undefined;
  const error: IStageError | undefined = inJob
    ? stageErrorOf(job, stage.name)
    : (stage.last_run?.stage_error ?? undefined);
  if (error) {
    return {
      exception: error.exception || 'failed',
      cell: error.cell ? `in ${error.cell}` : '',
      message: error.message,
      notebook:
        error.notebook || inJob?.notebook || stage.last_run?.notebook || null,
      openCell: error.cell,
      traceback: error.traceback || null
    };
  }
  const message =
    inJob?.error || stage.last_run?.error || 'the last run failed';
  return {
    exception: message,
    cell: '',
    message,
    notebook: inJob?.notebook || stage.last_run?.notebook || null,
    openCell: typeof inJob?.cell === 'string' ? inJob.cell : null,
    traceback: null
  };
}

/**
 * Where a running stage is, in the notebook's words, as the CLI says it
 * (nb2pipe/run/cell_progress.py): "notebook cell 14, 2 of 5" for one of the stage's own cells,
 * "notebook cell 3 (setup)", "preparing" / "finishing" for cells nb2pipe added; from an older
 * server, "cell 3 of 7" of the executed notebook.
 */
export function progressText(progress: IJobStage | undefined): string {
  if (!progress || progress.state !== JobStageState.RUNNING) {
    return '';
  }
  const { notebook_cell: number, position, of } = progress;
  if (typeof number === 'number' && typeof position === 'number') {
    return `notebook cell ${number}, ${position} of ${of}`;
  }
  if (typeof number === 'number') {
    return (
      `notebook cell ${number}` + (progress.role ? ` (${progress.role})` : '')
    );
  }
  if (typeof of === 'number') {
    return progress.role || 'preparing';
  }
  if (typeof progress.cell === 'number' && progress.cells) {
    return `cell ${progress.cell} of ${progress.cells}`;
  }
  return 'starting…';
}

/**
 * What a finished job says: its summary line, or "Run cancelled.", and for a failed job the
 * reasons the server gave (`errors`: e.g. another run of the pipeline was going), so a refused
 * run never reads as a bare "Run failed.". Stage failures show at their stages, not here.
 */
export function finishedJobText(job: IJob): string {
  if (job.status === JobStatus.CANCELLED) {
    return 'Run cancelled.';
  }
  if (job.status === JobStatus.OK) {
    return job.summary || 'Run finished.';
  }
  const reasons = (job.errors ?? []).filter(Boolean).join('; ');
  if (!reasons) {
    return job.summary || 'Run failed.';
  }
  return job.summary ? `${job.summary} — ${reasons}` : `Run failed: ${reasons}`;
}
