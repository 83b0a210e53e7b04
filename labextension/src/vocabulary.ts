/**
 * The words nb2pipe uses for states, outcomes, statuses and events.
 *
 * GENERATED from nb2pipe/vocabulary.py; do not edit. Regenerate with
 * `python -m nb2pipe.vocabulary --typescript > labextension/src/vocabulary.ts`.
 */

/** A stage's state in `nb2pipe status` and `GET status`. */
export const StageState = {
  UP_TO_DATE: 'up-to-date',
  STALE: 'stale',
  NEVER_RUN: 'never-run',
  FAILED: 'failed',
  RUNNING: 'running',
  CANCELLED: 'cancelled'
} as const;
export type StageState = (typeof StageState)[keyof typeof StageState];

/** What a run did with a stage: the words of the summary line and of the run history. */
export const Outcome = {
  RAN: 'ran',
  UP_TO_DATE: 'up to date',
  RESTORED: 'restored',
  FAILED: 'failed',
  NOT_RUN: 'not run',
  WOULD_RUN: 'would run'
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** How a run ended (`run_finished` events, runs.db); `running` until it does. */
export const RunStatus = {
  RUNNING: 'running',
  OK: 'ok',
  FAILED: 'failed',
  INTERRUPTED: 'interrupted'
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** A run started through the server (`GET runs/{id}`). */
export const JobStatus = {
  STARTING: 'starting',
  RUNNING: 'running',
  OK: 'ok',
  FAILED: 'failed',
  CANCELLED: 'cancelled'
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

/** A stage inside a job, besides the outcomes it ends with. */
export const JobStageState = {
  PENDING: 'pending',
  RUNNING: 'running',
  CANCELLED: 'cancelled'
} as const;
export type JobStageState = (typeof JobStageState)[keyof typeof JobStageState];

/** The runner's events (the `event` key of each line of runs/<id>/events.jsonl). */
export const EventName = {
  RUN_STARTED: 'run_started',
  STAGE_STARTED: 'stage_started',
  CELL: 'cell',
  OUTPUT: 'output',
  STAGE_FINISHED: 'stage_finished',
  STAGE_FAILED: 'stage_failed',
  STAGE_RETRY: 'stage_retry',
  RUN_FINISHED: 'run_finished',
  MESSAGE: 'message'
} as const;
export type EventName = (typeof EventName)[keyof typeof EventName];

/** The outcomes of a stage that finished with its outputs in place. */
export const SUCCEEDED: ReadonlySet<string> = new Set([
  'ran',
  'restored',
  'up to date'
]);

/** The states of a stage in a job after which it does not change in that job. */
export const JOB_STAGE_DONE: ReadonlySet<string> = new Set([
  'cancelled',
  'failed',
  'not run',
  'ran',
  'restored',
  'up to date'
]);

/** The job statuses after which a job does not change. */
export const JOB_FINISHED: ReadonlySet<string> = new Set([
  'cancelled',
  'failed',
  'ok'
]);
