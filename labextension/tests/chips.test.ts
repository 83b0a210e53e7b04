import { afterOfStages, afterProblem, setAfter } from '../src/after';
import { chipStates, chipTitle } from '../src/chipstate';
import { IJob, IStageStatus, IStatus, IVerifyJob } from '../src/tokens';
import { verifyText } from '../src/verify';

const stage = (
  name: string,
  state: IStageStatus['state'],
  reasons: string[] = []
): IStageStatus => ({
  name,
  state,
  reasons,
  last_run: null,
  metrics: {},
  cells: [],
  params: []
});

const status = (stages: IStageStatus[], exists = true): IStatus => ({
  notebook: 'a.ipynb',
  pipeline: 'pipelines/a',
  exists,
  stages,
  job: null
});

const runningJob = (stages: IJob['stages']): IJob => ({
  id: '1',
  pipeline: 'pipelines/a',
  status: 'running',
  run: 'r',
  stages,
  errors: [],
  summary: null,
  started: 0,
  finished: null
});

describe('chipStates', () => {
  it('gives each stage its state, words and short reason', () => {
    const states = chipStates(
      status([
        stage('load', 'up-to-date'),
        stage('train', 'stale', ['param changed: alpha 1.0 → 0.5']),
        stage('report', 'stale', ['x'.repeat(200)])
      ]),
      null
    );
    expect(states.get('load')).toEqual({
      state: 'up-to-date',
      words: 'up to date',
      reason: ''
    });
    expect(chipTitle('train', states.get('train'))).toBe(
      "stage 'train': stale (param changed: alpha 1.0 → 0.5)"
    );
    expect(chipTitle('report', states.get('report'))).toBe(
      "stage 'report': stale"
    );
  });

  it("shows a running job's view first", () => {
    const states = chipStates(
      status([stage('load', 'up-to-date'), stage('train', 'stale')]),
      runningJob({ load: { state: 'running' }, train: { state: 'pending' } })
    );
    expect(states.get('load')?.state).toBe('running');
    expect(states.get('train')?.words).toBe('queued');
    const running = chipStates(
      status([stage('load', 'never-run', ['never run'])]),
      runningJob({ load: { state: 'running' } })
    );
    expect(chipTitle('load', running.get('load'))).toBe(
      "stage 'load': running"
    );
  });

  it('has no states without a pipeline', () => {
    expect(chipStates(status([], false), null).size).toBe(0);
    expect(chipStates(null, null).size).toBe(0);
    expect(chipTitle('x', undefined)).toBe("stage 'x'");
  });
});

describe('after:', () => {
  const cells = [
    { tags: ['stage:a'] },
    { tags: ['stage:b', 'after:a'] },
    { tags: [] },
    { tags: ['stage:c'], nb2pipe: { after: ['b'] } }
  ];

  it('collects what each stage runs after', () => {
    expect(afterOfStages(cells)).toEqual(
      new Map([
        ['a', []],
        ['b', ['a']],
        ['c', ['b']]
      ])
    );
  });

  it('refuses itself, an unknown stage and a cycle, naming them', () => {
    const after = afterOfStages(cells);
    const stages = ['a', 'b', 'c'];
    expect(afterProblem('c', ['a'], stages, after)).toBeNull();
    expect(afterProblem('a', ['a'], stages, after)).toBe(
      "stage 'a' cannot run after itself; choose another stage"
    );
    expect(afterProblem('a', ['zz'], stages, after)).toBe(
      "no stage 'zz' in this notebook; choose one of 'b', 'c'"
    );
    expect(afterProblem('a', ['c'], stages, after)).toBe(
      "'a' after 'c' makes a cycle (a → c → b → a); leave 'c' out"
    );
  });

  it('writes the tag and the structured metadata', () => {
    const patch = setAfter({ tags: ['stage:c', 'after:x'] }, ['a', 'b']);
    expect(patch.tags).toEqual(['stage:c', 'after:a', 'after:b']);
    expect(setAfter({ tags: ['stage:c', 'after:x'] }, []).tags).toEqual([
      'stage:c'
    ]);
  });
});

describe('verifyText', () => {
  const verifyJob = (extra: Partial<IVerifyJob>): IVerifyJob => ({
    id: 'v',
    notebook: 'a.ipynb',
    status: 'ok',
    progress: null,
    equal: null,
    summary: null,
    differences: [],
    errors: [],
    started: 0,
    finished: 1,
    ...extra
  });

  it('says progress, a match, the differences or why it could not compare', () => {
    expect(
      verifyText(
        verifyJob({
          status: 'running',
          finished: null,
          progress: "running 'a.ipynb' top to bottom (1)"
        })
      ).head
    ).toBe("Verifying — running 'a.ipynb' top to bottom (1)");
    expect(
      verifyText(verifyJob({ equal: true, summary: 'verified: 2 cells' }))
    ).toEqual({
      head: 'The pipeline matches the notebook.',
      lines: ['verified: 2 cells']
    });
    const differs = verifyText(
      verifyJob({
        equal: false,
        differences: [
          {
            kind: 'cell',
            cell: 4,
            file: null,
            stage: 's',
            message: "stage 's', cell 4: line 1: ...",
            diff: ''
          }
        ]
      })
    );
    expect(differs.head).toBe('The pipeline differs from the notebook:');
    expect(differs.lines).toEqual(["stage 's', cell 4: line 1: ..."]);
    expect(
      verifyText(verifyJob({ status: 'failed', errors: ['error: boom'] })).head
    ).toBe('Verify failed: error: boom');
  });
});
