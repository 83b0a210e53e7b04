/**
 * The pipeline of one notebook as the server sees it: status, export, runs.
 *
 * All I/O goes through `requestAPI`. Two polls (@lumino/polling, backoff on errors):
 * - status: `GET status` every `pollInterval` ms while `isActive()` (the sidebar is visible)
 *   and the page is not hidden; started by `startPolling()`;
 * - progress: `GET runs/{id}` while a job runs; when a stage or the job finishes, status is
 *   fetched again so the stage list shows what the server recorded.
 */

import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from './handler';
import {
  IExportResult,
  IJob,
  IRunRequest,
  IStatus,
  isJobFinished
} from './tokens';
import { JOB_STAGE_DONE } from './vocabulary';

export class PipelineModel implements IDisposable {
  constructor(options: PipelineModel.IOptions) {
    this._path = options.path;
    this._isActive = options.isActive ?? (() => true);
    this._progressInterval = options.progressInterval ?? 500;
    this._statusPoll = new Poll<IStatus | null, Error, 'standby'>({
      auto: false,
      factory: () => this._fetchStatus(),
      frequency: {
        interval: options.pollInterval ?? 1000,
        backoff: true,
        max: 60 * 1000
      },
      name: 'nb2pipe:status',
      standby: () => (this._isActive() ? 'when-hidden' : true)
    });
  }

  /** The notebook, relative to the server root. */
  get path(): string {
    return this._path;
  }

  /** The last status fetched (null before the first answer). */
  get status(): IStatus | null {
    return this._status;
  }

  /** The job this model follows (the latest started or found running), or null. */
  get job(): IJob | null {
    return this._job;
  }

  /** True while the followed job has not finished. */
  get isRunning(): boolean {
    return !!this._job && !isJobFinished(this._job);
  }

  /** True from a cancel until the job has finished: the stages are being stopped. */
  get isCancelling(): boolean {
    return this.isRunning && this._cancelling === this._job?.id;
  }

  /**
   * What went wrong, or null. A failed action (export, run, cancel) keeps its message until
   * `dismissError()` or the next action that succeeds: status polls do not wipe it. A failed
   * poll's message shows while no action failed, and goes with the next poll that succeeds.
   */
  get error(): string | null {
    return this._actionError ?? this._pollError;
  }

  /** Whether `error` is an action's, which stays until dismissed. */
  get errorIsDismissable(): boolean {
    return this._actionError !== null;
  }

  /** Forget the failed action's message. */
  dismissError(): void {
    this._setErrors(null, this._pollError);
  }

  /** Warnings of the last export. */
  get warnings(): string[] {
    return this._warnings;
  }

  get statusChanged(): ISignal<this, IStatus | null> {
    return this._statusChanged;
  }

  get jobChanged(): ISignal<this, IJob | null> {
    return this._jobChanged;
  }

  get errorChanged(): ISignal<this, string | null> {
    return this._errorChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Status refresh interval (ms). */
  get pollInterval(): number {
    return this._statusPoll.frequency.interval;
  }
  set pollInterval(ms: number) {
    this._statusPoll.frequency = {
      ...this._statusPoll.frequency,
      interval: ms
    };
  }

  /** Start refreshing status periodically (see `isActive`). */
  startPolling(): void {
    void this._statusPoll.start();
  }

  /** Fetch status now. Errors land in `error`; the promise resolves to null then. */
  async refresh(): Promise<IStatus | null> {
    try {
      return await this._fetchStatus();
    } catch {
      return null;
    }
  }

  /** Export the notebook (`POST export`), then fetch status. */
  async exportPipeline(force = false): Promise<IExportResult> {
    const result = await this._act(() =>
      requestAPI<IExportResult>('export', {
        method: 'POST',
        body: JSON.stringify({ path: this._path, force })
      })
    );
    this._warnings = result.warnings ?? [];
    await this.refresh();
    return result;
  }

  /** Start a run (`POST runs`) and follow its progress. */
  async run(options: Omit<IRunRequest, 'path'> = {}): Promise<IJob> {
    const body: IRunRequest = { path: this._path, ...options };
    const job = await this._act(() =>
      requestAPI<IJob>('runs', { method: 'POST', body: JSON.stringify(body) })
    );
    this._follow(job);
    return job;
  }

  /** Run the stages that are not up to date. */
  runStale(): Promise<IJob> {
    return this.run({});
  }

  /** Run every stage, up to date or not. */
  runAll(): Promise<IJob> {
    return this.run({ force: true });
  }

  /** Run one stage, whatever its state. */
  runStage(name: string): Promise<IJob> {
    return this.run({ stages: [name], force: true });
  }

  /** Cancel the followed job (`DELETE runs/{id}`). */
  async cancel(): Promise<void> {
    const job = this._job;
    if (!job || isJobFinished(job)) {
      return;
    }
    this._cancelling = job.id;
    this._jobChanged.emit(job); // "Cancelling…" at once, not when the server answers
    let next: IJob;
    try {
      next = await this._act(() =>
        requestAPI<IJob>(`runs/${encodeURIComponent(job.id)}`, {
          method: 'DELETE'
        })
      );
    } catch (error) {
      this._cancelling = null; // the cancel did not reach the server: it can be asked again
      this._jobChanged.emit(this._job);
      throw error;
    }
    this._setJob(next);
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._statusPoll.dispose();
    this._progress?.dispose();
    this._progress = null;
    Signal.clearData(this);
  }

  private async _fetchStatus(): Promise<IStatus> {
    const status = await this._call(() =>
      requestAPI<IStatus>(`status?path=${encodeURIComponent(this._path)}`)
    );
    if (this._isDisposed) {
      return status;
    }
    this._setStatus(status);
    const job = status.job;
    if (job && !isJobFinished(job) && this._job?.id !== job.id) {
      this._follow(job); // a run started elsewhere (another tab, before a reload)
    }
    return status;
  }

  /** Follow `job` until it finishes. */
  private _follow(job: IJob): void {
    this._progress?.dispose();
    this._progress = null;
    this._setJob(job);
    if (isJobFinished(job)) {
      void this.refresh();
      return;
    }
    const poll: Poll = new Poll({
      factory: async () => {
        let next: IJob;
        try {
          next = await this._call(() =>
            requestAPI<IJob>(`runs/${encodeURIComponent(job.id)}`)
          );
        } catch (error) {
          if ((error as { response?: Response }).response?.status === 404) {
            // The server forgot the job (it restarted): stop following it.
            poll.dispose();
            void this.refresh();
            return;
          }
          throw error; // the poll backs off and retries
        }
        if (poll.isDisposed || this._isDisposed) {
          return;
        }
        const finishedStage = Object.entries(next.stages).some(
          ([name, s]) =>
            JOB_STAGE_DONE.has(s.state) &&
            this._job?.stages[name]?.state !== s.state
        );
        this._setJob(next);
        if (isJobFinished(next)) {
          poll.dispose();
          if (this._progress === poll) {
            this._progress = null;
          }
          await this.refresh();
        } else if (finishedStage) {
          void this.refresh();
        }
      },
      frequency: {
        interval: this._progressInterval,
        backoff: true,
        max: Math.max(10 * this._progressInterval, 5000)
      },
      name: 'nb2pipe:progress',
      standby: 'never'
    });
    this._progress = poll;
  }

  /** Run a poll's request; record its error message (or clear the last poll's). */
  private async _call<T>(request: () => Promise<T>): Promise<T> {
    try {
      const result = await request();
      this._setErrors(this._actionError, null);
      return result;
    } catch (error) {
      this._setErrors(this._actionError, messageOf(error));
      throw error;
    }
  }

  /** Run an action's request; its error stays until dismissed or the next action succeeds. */
  private async _act<T>(request: () => Promise<T>): Promise<T> {
    try {
      const result = await request();
      this._setErrors(null, this._pollError);
      return result;
    } catch (error) {
      this._setErrors(messageOf(error), this._pollError);
      throw error;
    }
  }

  private _setStatus(status: IStatus): void {
    const text = JSON.stringify(status);
    if (text === this._statusText) {
      return;
    }
    this._statusText = text;
    this._status = status;
    this._statusChanged.emit(status);
  }

  private _setJob(job: IJob | null): void {
    const text = JSON.stringify(job);
    if (text === this._jobText) {
      return;
    }
    this._jobText = text;
    this._job = job;
    this._jobChanged.emit(job);
  }

  private _setErrors(action: string | null, poll: string | null): void {
    if (this._isDisposed) {
      return;
    }
    const before = this.error;
    const dismissable = this.errorIsDismissable;
    this._actionError = action;
    this._pollError = poll;
    if (this.error !== before || this.errorIsDismissable !== dismissable) {
      this._errorChanged.emit(this.error);
    }
  }

  private _path: string;
  private _isActive: () => boolean;
  private _progressInterval: number;
  private _statusPoll: Poll<IStatus | null, Error, 'standby'>;
  private _progress: Poll | null = null;
  private _status: IStatus | null = null;
  private _statusText = '';
  private _job: IJob | null = null;
  private _jobText = 'null';
  private _cancelling: string | null = null; // the id of the job a cancel was asked for
  private _actionError: string | null = null;
  private _pollError: string | null = null;
  private _warnings: string[] = [];
  private _isDisposed = false;
  private _statusChanged = new Signal<this, IStatus | null>(this);
  private _jobChanged = new Signal<this, IJob | null>(this);
  private _errorChanged = new Signal<this, string | null>(this);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export namespace PipelineModel {
  export interface IOptions {
    /** The notebook, relative to the server root. */
    path: string;
    /** Status refresh interval (ms); default 1000. */
    pollInterval?: number;
    /** Run progress interval (ms); default 500. */
    progressInterval?: number;
    /** Status polling pauses while this returns false (e.g. the sidebar is hidden). */
    isActive?: () => boolean;
  }
}
