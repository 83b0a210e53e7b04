/**
 * PipelineModel against a fake server: only `requestAPI` is mocked.
 */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from '../src/handler';
import { PipelineModel } from '../src/model';
import { IJob, IStatus } from '../src/tokens';

jest.mock('../src/handler', () => ({
  ...jest.requireActual('../src/handler'),
  requestAPI: jest.fn()
}));

const mockedRequest = requestAPI as jest.MockedFunction<typeof requestAPI>;

type Route = (init: RequestInit | undefined) => unknown;

/** Answer requests by "METHOD endpoint-prefix"; record every call. */
function serve(
  routes: Record<string, Route | unknown>
): { method: string; endPoint: string; body?: any }[] {
  const calls: { method: string; endPoint: string; body?: any }[] = [];
  mockedRequest.mockImplementation(async (endPoint = '', init = {}) => {
    const method = init.method ?? 'GET';
    calls.push({
      method,
      endPoint,
      body: init.body ? JSON.parse(String(init.body)) : undefined
    });
    const key = Object.keys(routes)
      .filter(k => `${method} ${endPoint}`.startsWith(k))
      .sort((a, b) => b.length - a.length)[0];
    if (!key) {
      throw new Error(`unexpected request ${method} ${endPoint}`);
    }
    const route = routes[key];
    const value = typeof route === 'function' ? (route as Route)(init) : route;
    if (value instanceof Error) {
      throw value;
    }
    return JSON.parse(JSON.stringify(value));
  });
  return calls;
}

const stage = (name: string, state: string, reasons: string[] = []) => ({
  name,
  state,
  reasons,
  last_run: null,
  metrics: {},
  cells: [1],
  params: []
});

const status = (
  stages: ReturnType<typeof stage>[],
  extra: Partial<IStatus> = {}
): IStatus =>
  ({
    notebook: 'dir/nb 1.ipynb',
    pipeline: 'dir/pipelines/nb 1',
    exists: true,
    source_in_sync: true,
    stages,
    job: null,
    ...extra
  }) as IStatus;

const job = (
  id: string,
  jobStatus: IJob['status'],
  stages: IJob['stages'],
  finished: number | null = null
): IJob => ({
  id,
  pipeline: 'dir/pipelines/nb 1',
  status: jobStatus,
  run: 'run-1',
  stages,
  errors: [],
  summary: finished ? '2 ran' : null,
  started: 1,
  finished
});

/** Resolve once `predicate` holds (checked on every event-loop turn). */
async function until(predicate: () => boolean, timeout = 3000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeout) {
      throw new Error('timed out');
    }
    await new Promise(resolve => setTimeout(resolve, 2));
  }
}

describe('PipelineModel', () => {
  let model: PipelineModel;

  afterEach(() => {
    model?.dispose();
    mockedRequest.mockReset();
  });

  it('fetches status for its notebook and emits statusChanged only on change', async () => {
    const calls = serve({
      'GET status': status([stage('a', 'never-run', ['never run'])])
    });
    model = new PipelineModel({ path: 'dir/nb 1.ipynb' });
    const seen: (IStatus | null)[] = [];
    model.statusChanged.connect((_, s) => seen.push(s));

    await model.refresh();
    await model.refresh();

    expect(calls.map(c => c.endPoint)).toEqual([
      'status?path=dir%2Fnb%201.ipynb',
      'status?path=dir%2Fnb%201.ipynb'
    ]);
    expect(seen).toHaveLength(1);
    expect(model.status?.stages[0].state).toBe('never-run');
    expect(model.error).toBeNull();
  });

  it('keeps the server message as error, and clears it after a success', async () => {
    let fail = true;
    serve({
      'GET status': () =>
        fail
          ? new Error('the nb2pipe server extension is not installed')
          : status([])
    });
    model = new PipelineModel({ path: 'nb.ipynb' });
    const errors: (string | null)[] = [];
    model.errorChanged.connect((_, e) => errors.push(e));

    await expect(model.refresh()).resolves.toBeNull();
    expect(model.error).toBe('the nb2pipe server extension is not installed');
    fail = false;
    await model.refresh();
    expect(errors).toEqual([
      'the nb2pipe server extension is not installed',
      null
    ]);
  });

  it("keeps a failed action's message through later polls until dismissed", async () => {
    serve({
      'GET status': status([stage('a', 'never-run')]),
      'POST export': new Error(
        'two parameters cells: cell 3 and cell 17; merge them into one'
      )
    });
    model = new PipelineModel({ path: 'nb.ipynb' });
    const errors: (string | null)[] = [];
    model.errorChanged.connect((_, e) => errors.push(e));

    await expect(model.exportPipeline()).rejects.toThrow('two parameters');
    await model.refresh();
    await model.refresh();
    expect(model.error).toBe(
      'two parameters cells: cell 3 and cell 17; merge them into one'
    );
    expect(model.errorIsDismissable).toBe(true);

    model.dismissError();
    expect(model.error).toBeNull();
    expect(errors).toEqual([
      'two parameters cells: cell 3 and cell 17; merge them into one',
      null
    ]);
  });

  it("shows a poll's failure only while no action failed, and clears it with the next good poll", async () => {
    let statusFails = true;
    let exportFails = true;
    serve({
      'GET status': () =>
        statusFails ? new Error('server restarting') : status([]),
      'POST export': () =>
        exportFails
          ? new Error('tag "stage:a b" is not a valid stage name')
          : { pipeline: 'p', stages: [], written: [], warnings: [] }
    });
    model = new PipelineModel({ path: 'nb.ipynb' });

    await model.refresh();
    expect(model.error).toBe('server restarting');
    expect(model.errorIsDismissable).toBe(false);
    await expect(model.exportPipeline()).rejects.toThrow('valid stage name');
    expect(model.error).toBe('tag "stage:a b" is not a valid stage name');
    statusFails = false;
    await model.refresh();
    expect(model.error).toBe('tag "stage:a b" is not a valid stage name');
    exportFails = false;
    await model.exportPipeline(); // the next action that succeeds clears it
    expect(model.error).toBeNull();
  });

  it('exports, keeps the warnings and refreshes status', async () => {
    let exported = false;
    const calls = serve({
      'POST export': () => {
        exported = true;
        return {
          pipeline: 'p',
          stages: ['a'],
          written: ['p/nb2pipe.yaml'],
          warnings: ['w1']
        };
      },
      'GET status': () =>
        exported
          ? status([stage('a', 'never-run')])
          : status([], { exists: false })
    });
    model = new PipelineModel({ path: 'nb.ipynb' });
    await model.refresh();
    expect(model.status?.exists).toBe(false);

    const result = await model.exportPipeline();
    expect(result.stages).toEqual(['a']);
    expect(calls[1]).toEqual({
      method: 'POST',
      endPoint: 'export',
      body: { path: 'nb.ipynb', force: false }
    });
    expect(model.warnings).toEqual(['w1']);
    expect(model.status?.exists).toBe(true);
  });

  it('starts a run, polls its progress, then refreshes status', async () => {
    const progress = [
      job('j1', 'running', {
        a: { state: 'running', cell: 1, cells: 3 },
        b: { state: 'pending' }
      }),
      job('j1', 'running', {
        a: { state: 'running', cell: 3, cells: 3 },
        b: { state: 'pending' }
      }),
      job('j1', 'running', {
        a: { state: 'ran', duration: 1 },
        b: { state: 'running', cell: 1, cells: 1 }
      }),
      job(
        'j1',
        'ok',
        { a: { state: 'ran', duration: 1 }, b: { state: 'ran', duration: 2 } },
        5
      )
    ];
    let polls = 0;
    const calls = serve({
      'POST runs': job('j1', 'starting', {}),
      'GET runs/j1': () => progress[Math.min(polls++, progress.length - 1)],
      'GET status': () =>
        polls >= progress.length
          ? status([stage('a', 'up-to-date'), stage('b', 'up-to-date')])
          : status([
              stage('a', 'stale', ['code changed']),
              stage('b', 'never-run')
            ])
    });
    model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 5 });
    const jobs: IJob[] = [];
    model.jobChanged.connect((_, j) => j && jobs.push(j));
    const statuses: IStatus[] = [];
    model.statusChanged.connect((_, s) => s && statuses.push(s));

    const started = await model.runStale();
    expect(started.id).toBe('j1');
    expect(calls[0]).toEqual({
      method: 'POST',
      endPoint: 'runs',
      body: { path: 'nb.ipynb' }
    });
    expect(model.isRunning).toBe(true);

    await until(
      () => !model.isRunning && model.status?.stages[0].state === 'up-to-date'
    );
    expect(jobs.map(j => j.stages.a?.state ?? j.status)).toEqual([
      'starting',
      'running',
      'running',
      'ran',
      'ran'
    ]);
    expect(jobs[1].stages.a.cell).toBe(1);
    expect(model.job?.status).toBe('ok');
    // status was fetched when stage a finished, and again when the job finished
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    expect(statuses[statuses.length - 1].stages.map(s => s.state)).toEqual([
      'up-to-date',
      'up-to-date'
    ]);
    const after = calls.length;
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(
      calls.slice(after).filter(c => c.endPoint.startsWith('runs/'))
    ).toHaveLength(0);
  });

  it.each([
    ['up to date', 'pending'],
    ['not run', 'pending'],
    ['restored', 'pending'],
    ['cancelled', 'running']
  ])(
    'fetches status when a stage ends as %s while the job still runs',
    async (outcome, before) => {
      // the words are the runner's outcomes (nb2pipe.vocabulary), not the status states
      let polls = 0;
      let statusCalls = 0;
      const progress = [
        job('j6', 'running', {
          a: { state: before },
          b: { state: 'running', cell: 1, cells: 9 }
        }),
        job('j6', 'running', {
          a: { state: outcome },
          b: { state: 'running', cell: 2, cells: 9 }
        })
      ];
      serve({
        'POST runs': job('j6', 'starting', {}),
        'GET runs/j6': () => progress[Math.min(polls++, progress.length - 1)],
        'GET status': () => {
          statusCalls++;
          return status([stage('a', 'stale'), stage('b', 'stale')]);
        }
      });
      model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 2 });
      await model.run();
      await until(() => statusCalls > 0); // the job never finishes here: only the stage can ask
      expect(model.isRunning).toBe(true);
      expect(model.job?.stages.a.state).toBe(outcome);
    }
  );

  it('sends the run options: all (force) and one stage', async () => {
    const calls = serve({
      'POST runs': job('j2', 'ok', {}, 2),
      'GET status': status([])
    });
    model = new PipelineModel({ path: 'nb.ipynb' });
    await model.runAll();
    await model.runStage('train');
    const posts = calls.filter(c => c.method === 'POST').map(c => c.body);
    expect(posts).toEqual([
      { path: 'nb.ipynb', force: true },
      { path: 'nb.ipynb', stages: ['train'], force: true }
    ]);
  });

  it('backs off and keeps polling when progress requests fail', async () => {
    let polls = 0;
    serve({
      'POST runs': job('j3', 'starting', {}),
      'GET runs/j3': () =>
        ++polls < 3
          ? new Error('network down')
          : job('j3', 'failed', { a: { state: 'failed', error: 'boom' } }, 3),
      'GET status': status([stage('a', 'failed', ['last run failed'])])
    });
    model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 2 });
    await model.run();
    await until(() => model.job?.status === 'failed', 5000);
    expect(polls).toBe(3);
    expect(model.error).toBeNull();
    expect(model.job?.stages.a.error).toBe('boom');
  });

  it('follows a job it finds running in status, and cancels it', async () => {
    let cancelled = false;
    const calls = serve({
      'GET status': status([stage('a', 'running')], {
        job: job('j4', 'running', {
          a: { state: 'running', cell: 1, cells: 2 }
        })
      }),
      'GET runs/j4': () =>
        cancelled
          ? job('j4', 'cancelled', { a: { state: 'running' } }, 9)
          : job('j4', 'running', {
              a: { state: 'running', cell: 2, cells: 2 }
            }),
      'DELETE runs/j4': () => {
        cancelled = true;
        return job('j4', 'running', {
          a: { state: 'running', cell: 2, cells: 2 }
        });
      }
    });
    model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 5 });
    await model.refresh();
    expect(model.job?.id).toBe('j4');
    expect(model.isRunning).toBe(true);
    expect(model.isCancelling).toBe(false);
    const cancelling: boolean[] = [];
    model.jobChanged.connect(() => cancelling.push(model.isCancelling));
    const asked = model.cancel();
    expect(model.isCancelling).toBe(true); // before the server answered
    expect(cancelling).toEqual([true]);
    await asked;
    await until(() => model.job?.status === 'cancelled');
    expect(model.isCancelling).toBe(false);
    expect(
      calls.some(c => c.method === 'DELETE' && c.endPoint === 'runs/j4')
    ).toBe(true);
  });

  it('can cancel again when a cancel did not reach the server', async () => {
    serve({
      'GET status': status([stage('a', 'running')], {
        job: job('j5', 'running', { a: { state: 'running' } })
      }),
      'GET runs/j5': job('j5', 'running', { a: { state: 'running' } }),
      'DELETE runs/j5': new Error('the server did not answer')
    });
    model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 5 });
    await model.refresh();
    await expect(model.cancel()).rejects.toThrow('did not answer');
    expect(model.isCancelling).toBe(false);
    expect(model.error).toBe('the server did not answer');
  });

  it('stops following a job the server no longer knows', async () => {
    const gone = new ServerConnection.ResponseError(
      new Response('{}', { status: 404 }),
      "no run 'j5'"
    );
    const calls = serve({
      'POST runs': job('j5', 'running', {}),
      'GET runs/j5': gone,
      'GET status': status([])
    });
    model = new PipelineModel({ path: 'nb.ipynb', progressInterval: 2 });
    await model.run();
    await until(() => calls.some(c => c.endPoint.startsWith('status')));
    const count = calls.filter(c => c.endPoint === 'runs/j5').length;
    await new Promise(resolve => setTimeout(resolve, 40));
    expect(calls.filter(c => c.endPoint === 'runs/j5').length).toBe(count);
  });

  it('polls status while active, and not while inactive', async () => {
    let active = true;
    const calls = serve({ 'GET status': status([]) });
    model = new PipelineModel({
      path: 'nb.ipynb',
      pollInterval: 5,
      isActive: () => active
    });
    model.startPolling();
    await until(() => calls.length >= 3);
    active = false;
    await new Promise(resolve => setTimeout(resolve, 20));
    const count = calls.length;
    await new Promise(resolve => setTimeout(resolve, 40));
    expect(calls.length).toBeLessThanOrEqual(count + 1);
    active = true;
    await until(() => calls.length >= count + 3);
  });
});
