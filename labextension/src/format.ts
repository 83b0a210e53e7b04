/** How the sidebar words states, durations, metrics and progress (pure functions). */

import { IJob, IJobStage, IStageStatus, isJobFinished } from './tokens';

/** How each state is shown: icon and words. `queued`: waiting in a running job. */
export const STATE_LABELS: Record<string, { icon: string; label: string }> = {
  'up-to-date': { icon: '✓', label: 'up to date' },
  stale: { icon: '●', label: 'stale' },
  'never-run': { icon: '○', label: 'never run' },
  running: { icon: '◐', label: 'running' },
  queued: { icon: '…', label: 'queued' },
  failed: { icon: '✕', label: 'failed' },
  cancelled: { icon: '⊘', label: 'cancelled' }
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
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The state to show for a stage: a running job's view wins over the last status. */
export function displayState(stage: IStageStatus, job: IJob | null): string {
  const progress = job && !isJobFinished(job) ? job.stages[stage.name] : undefined;
  if (progress?.state === 'running') {
    return 'running';
  }
  if (progress?.state === 'pending') {
    return 'queued';
  }
  return stage.state;
}

/** "cell 3 of 7" for a running stage. */
export function progressText(progress: IJobStage | undefined): string {
  if (!progress || progress.state !== 'running') {
    return '';
  }
  if (typeof progress.cell === 'number' && progress.cells) {
    return `cell ${progress.cell} of ${progress.cells}`;
  }
  return 'starting…';
}
