import {
  groupHistory,
  ISweepGroup,
  sortChoices,
  sortLabel,
  sortTrials,
  sweepTitle,
  trialText
} from '../src/sweepformat';
import { IRun } from '../src/tokens';

const run = (id: string, started: number, extra: Partial<IRun> = {}): IRun => ({
  id,
  started,
  finished: started + 1,
  duration: 1,
  status: 'ok',
  params: {},
  metrics: {},
  tags: [],
  summary: null,
  no_op: false,
  changed_params: {},
  stages: [],
  ...extra
});

const trial = (
  id: string,
  started: number,
  values: Record<string, unknown>,
  metrics: Record<string, unknown> = {},
  sweep = 'sweep-1a2b'
): IRun => run(id, started, { sweep, trial: values, metrics });

const ids = (runs: IRun[]) => runs.map(r => r.id);

describe('groupHistory', () => {
  it('puts the runs of a sweep in one group where its newest run is', () => {
    const newestFirst = [
      run('after', 10),
      trial('t2', 8, { n: 2 }),
      trial('t1', 7, { n: 1 }),
      run('shared', 6, { sweep: 'sweep-1a2b', trial: null }),
      run('before', 1)
    ];
    const items = groupHistory(newestFirst, { 'sweep-1a2b': 2 });
    expect(items.map(i => (i.kind === 'run' ? i.run.id : i.id))).toEqual([
      'after',
      'sweep-1a2b',
      'before'
    ]);
    const group = items[1] as ISweepGroup;
    expect(ids(group.trials)).toEqual(['t1', 't2']); // trial order
    expect(ids(group.shared)).toEqual(['shared']); // not a trial
    expect(group.params).toEqual(['n']);
    expect(group.total).toBe(2);
  });

  it('keeps two sweeps apart and a run of no sweep as itself', () => {
    const items = groupHistory([
      trial('b1', 5, { n: 1 }, {}, 'sweep-b'),
      run('plain', 4),
      trial('a1', 3, { n: 1 }, {}, 'sweep-a')
    ]);
    expect(items.map(i => i.kind)).toEqual(['sweep', 'run', 'sweep']);
    expect((items[0] as ISweepGroup).total).toBe(1); // no count given: the trials shown
  });

  it('shows the latest attempt of a resumed trial; the earlier one apart', () => {
    const group = groupHistory([
      trial('t1-again', 9, { n: 1, m: 'a' }),
      trial('t2', 5, { n: 2, m: 'a' }),
      trial('t1', 4, { m: 'a', n: 1 })
    ])[0] as ISweepGroup;
    expect(ids(group.trials)).toEqual(['t1-again', 't2']);
    expect(ids(group.earlier)).toEqual(['t1']);
  });
});

describe('sweepTitle', () => {
  const group = (trials: IRun[], total: number): ISweepGroup => ({
    kind: 'sweep',
    id: 'sweep-1a2b',
    trials,
    shared: [],
    earlier: [],
    params: ['n'],
    total
  });

  it('counts the trials by status', () => {
    const trials = [
      trial('a', 1, { n: 1 }),
      trial('b', 2, { n: 2 }),
      run('c', 3, { sweep: 'sweep-1a2b', trial: { n: 3 }, status: 'failed' })
    ];
    expect(sweepTitle(group(trials, 3))).toBe(
      'Sweep sweep-1a2b: 3 trials, 2 ok, 1 failed'
    );
  });

  it('says how many trials are shown when the history cut some off', () => {
    expect(sweepTitle(group([trial('a', 1, { n: 1 })], 4))).toBe(
      'Sweep sweep-1a2b: 1 of 4 trials shown, 1 ok'
    );
  });
});

describe('sortTrials', () => {
  const trials = [
    trial('t1', 1, { n: 1 }, { score: 0.5 }),
    trial('t2', 2, { n: 2 }, {}),
    trial('t3', 3, { n: 3 }, { score: 0.9 }),
    trial('t4', 4, { n: 4 }, { score: 0.5 }),
    trial('t5', 5, { n: 5 }, { score: 'n/a' })
  ];

  it('keeps the trial order without a sort', () => {
    expect(ids(sortTrials(trials, null))).toEqual([
      't1',
      't2',
      't3',
      't4',
      't5'
    ]);
  });

  it('puts the largest first for max, missing metrics last, ties in trial order', () => {
    expect(ids(sortTrials(trials, { metric: 'score', order: 'max' }))).toEqual([
      't3',
      't1',
      't4',
      't2',
      't5'
    ]);
  });

  it('puts the smallest first for min, missing metrics still last', () => {
    expect(ids(sortTrials(trials, { metric: 'score', order: 'min' }))).toEqual([
      't1',
      't4',
      't3',
      't2',
      't5'
    ]);
  });
});

describe('sort choices', () => {
  it('lists each numeric metric once, largest first and smallest first', () => {
    const trials = [
      trial('a', 1, { n: 1 }, { score: 1, 'eval.score': 1, note: 'x' }),
      trial('b', 2, { n: 2 }, { loss: 0.2 })
    ];
    expect(sortChoices(trials).map(sortLabel)).toEqual([
      'score ↓',
      'score ↑',
      'loss ↓',
      'loss ↑'
    ]);
  });

  it('words a trial by the values its sweep set', () => {
    expect(trialText(trial('a', 1, { n: 2, rate: 0.25 }))).toBe(
      'trial: n=2, rate=0.25'
    );
  });
});
