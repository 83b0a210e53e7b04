/**
 * The sidebar's Verify section: runs `nb2pipe verify` on the active notebook through the
 * server (`POST verify`, then `GET verify/{id}` until it finishes) and says whether the
 * pipeline matches the notebook, or the first ways it differs. One job per notebook is
 * remembered, so switching notebooks and back keeps the result.
 */

import { Poll } from '@lumino/polling';

import { requestAPI } from './handler';
import { IVerifyJob } from './tokens';
import { JobStatus } from './vocabulary';

/** What the Verify section says about a job (pure). */
export function verifyText(job: IVerifyJob): { head: string; lines: string[] } {
  if (!job.finished) {
    return { head: `Verifying — ${job.progress ?? 'starting…'}`, lines: [] };
  }
  if (job.status !== JobStatus.OK || job.equal === null) {
    return {
      head: `Verify failed: ${job.errors[0] ?? 'the comparison could not be made'}`,
      lines: []
    };
  }
  if (job.equal) {
    return {
      head: 'The pipeline matches the notebook.',
      lines: job.summary ? [job.summary] : []
    };
  }
  return {
    head: 'The pipeline differs from the notebook:',
    lines: [
      ...job.differences.map(d => d.message),
      ...(job.summary ? [job.summary] : [])
    ]
  };
}

export class VerifySection {
  constructor() {
    this.node = document.createElement('div');
    this.node.className = 'jp-nb2pipe-verify';
    this._render();
  }

  readonly node: HTMLDivElement;

  /** Show the Verify section of another notebook (null: none). */
  setPath(path: string | null): void {
    this._path = path;
    this._render();
  }

  dispose(): void {
    for (const poll of this._polls.values()) {
      poll.dispose();
    }
    this._polls.clear();
  }

  private async _start(): Promise<void> {
    const path = this._path;
    if (!path) {
      return;
    }
    this._errors.delete(path);
    try {
      const job = await requestAPI<IVerifyJob>('verify', {
        method: 'POST',
        body: JSON.stringify({ path })
      });
      this._jobs.set(path, job);
      this._follow(path, job);
    } catch (error) {
      this._errors.set(
        path,
        error instanceof Error ? error.message : String(error)
      );
    }
    this._render();
  }

  private _follow(path: string, job: IVerifyJob): void {
    this._polls.get(path)?.dispose();
    const poll: Poll = new Poll({
      factory: async () => {
        const next = await requestAPI<IVerifyJob>(
          `verify/${encodeURIComponent(job.id)}`
        );
        this._jobs.set(path, next);
        this._render();
        if (next.finished) {
          poll.dispose();
          this._polls.delete(path);
        }
      },
      frequency: { interval: 1000, backoff: true, max: 10_000 },
      name: 'nb2pipe:verify',
      standby: 'never'
    });
    this._polls.set(path, poll);
  }

  private _render(): void {
    const path = this._path;
    const job = path ? this._jobs.get(path) : undefined;
    const running = !!job && !job.finished;
    const button = document.createElement('button');
    button.type = 'button';
    button.className =
      'jp-mod-styled jp-nb2pipe-button jp-nb2pipe-verify-button';
    button.textContent = 'Verify';
    button.title =
      'Run the notebook top to bottom and its pipeline, in copies of its folder, and compare what they print and write (nb2pipe verify)';
    button.disabled = !path || running;
    button.addEventListener('click', () => void this._start());
    this.node.replaceChildren(button);
    const error = path ? this._errors.get(path) : undefined;
    if (!job && !error) {
      return;
    }
    const shown = error
      ? { head: `Verify failed: ${error}`, lines: [] }
      : verifyText(job!);
    const result = document.createElement('div');
    result.className = 'jp-nb2pipe-verify-result';
    result.dataset.status = error ? JobStatus.FAILED : job!.status;
    if (job?.equal !== null && job?.equal !== undefined) {
      result.dataset.equal = String(job.equal);
    }
    const head = document.createElement('div');
    head.className = 'jp-nb2pipe-verify-head';
    if (running) {
      const spinner = document.createElement('span');
      spinner.className = 'jp-nb2pipe-spinner';
      result.append(spinner);
    }
    head.append(shown.head);
    result.append(head);
    if (shown.lines.length) {
      const list = document.createElement('ul');
      list.className = 'jp-nb2pipe-verify-lines';
      for (const line of shown.lines) {
        const item = document.createElement('li');
        item.textContent = line;
        list.append(item);
      }
      result.append(list);
    }
    this.node.append(result);
  }

  private _path: string | null = null;
  private _jobs = new Map<string, IVerifyJob>();
  private _errors = new Map<string, string>();
  private _polls = new Map<string, Poll>();
}
