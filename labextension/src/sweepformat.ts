/**
 * How the history shows sweeps (pure functions): the runs of one sweep as one group — its
 * trials, the run of its shared stages, earlier attempts of a trial — and the trials sorted
 * by a metric, as `nb2pipe runs --sweep REF --sort METRIC:max|min` lists them.
 */

import { formatAssignments, metricsOnce } from './historyformat';
import { IRun } from './tokens';

/** The runs of one sweep among the runs the history shows. */
export interface ISweepGroup {
  kind: 'sweep';
  id: string;
  /** The latest attempt of each trial, in trial order (the order the sweep ran them). */
  trials: IRun[];
  /** The runs of the stages the trials share (`sweep` set, `trial` null). */
  shared: IRun[];
  /** Attempts of a trial that a later attempt replaced (a resumed sweep), oldest first. */
  earlier: IRun[];
  /** The swept parameters, in the order the trials give them. */
  params: string[];
  /** How many trials the sweep has in all (shown or not); at least `trials.length`. */
  total: number;
}

/** A run that belongs to no sweep. */
export interface IPlainRun {
  kind: 'run';
  run: IRun;
}

export type HistoryItem = IPlainRun | ISweepGroup;

/** Sort the trials by `metric`, the best first (`max`: largest first). */
export interface ITrialSort {
  metric: string;
  order: 'max' | 'min';
}

/**
 * The history's items, newest first: a run of no sweep as itself, the runs of a sweep as one
 * group where its newest run is. `sweepTrials` is how many trials each sweep has in all.
 */
export function groupHistory(
  runs: IRun[],
  sweepTrials: Record<string, number> = {}
): HistoryItem[] {
  // first pass: each sweep's runs, and where each item goes (a sweep where its newest run is)
  const order: (IRun | string)[] = [];
  const bySweep = new Map<string, IRun[]>();
  for (const run of runs) {
    if (!run.sweep) {
      order.push(run);
    } else if (bySweep.has(run.sweep)) {
      bySweep.get(run.sweep)!.push(run);
    } else {
      bySweep.set(run.sweep, [run]);
      order.push(run.sweep);
    }
  }
  return order.map(entry =>
    typeof entry === 'string'
      ? sweepGroup(entry, bySweep.get(entry)!, sweepTrials[entry])
      : { kind: 'run', run: entry }
  );
}

function sweepGroup(
  id: string,
  newestFirst: IRun[],
  total: number | undefined
): ISweepGroup {
  const oldestFirst = [...newestFirst].sort((a, b) => a.started - b.started);
  const shared = oldestFirst.filter(run => !run.trial);
  const latest = new Map<string, IRun>();
  const earlier: IRun[] = [];
  for (const run of oldestFirst.filter(run => !!run.trial)) {
    const key = trialKey(run.trial!);
    const before = latest.get(key);
    if (before) {
      earlier.push(before);
    }
    latest.set(key, run);
  }
  // trial order: where each trial first ran
  const firstSeen = new Map<string, number>();
  oldestFirst.forEach((run, index) => {
    if (run.trial && !firstSeen.has(trialKey(run.trial))) {
      firstSeen.set(trialKey(run.trial), index);
    }
  });
  const trials = [...latest.entries()]
    .sort(([a], [b]) => firstSeen.get(a)! - firstSeen.get(b)!)
    .map(([, run]) => run);
  const params = [...new Set(trials.flatMap(run => Object.keys(run.trial!)))];
  return {
    kind: 'sweep',
    id,
    trials,
    shared,
    earlier,
    params,
    total: Math.max(total ?? 0, trials.length)
  };
}

function trialKey(trial: Record<string, unknown>): string {
  return JSON.stringify(
    Object.keys(trial)
      .sort()
      .map(name => [name, trial[name]])
  );
}

/**
 * `Sweep sweep-1a2b: 4 trials, 3 ok, 1 failed`; `2 of 4 trials shown` when the history's
 * limit left some out.
 */
export function sweepTitle(group: ISweepGroup): string {
  const shown = group.trials.length;
  const count =
    shown < group.total
      ? `${shown} of ${group.total} trials shown`
      : `${shown} ${shown === 1 ? 'trial' : 'trials'}`;
  const statuses = new Map<string, number>();
  for (const run of group.trials) {
    statuses.set(run.status, (statuses.get(run.status) ?? 0) + 1);
  }
  const byStatus = [...statuses.entries()].map(
    ([status, n]) => `${n} ${status}`
  );
  return [`Sweep ${group.id}: ${count}`, ...byStatus].join(', ');
}

/** `trial: n=2, rate=0.5` — the values this trial's sweep set. */
export function trialText(run: IRun): string {
  return `trial: ${formatAssignments(run.trial ?? {})}`;
}

/**
 * The metrics the trials can be sorted by: those with a number in at least one trial, each
 * once (as the rows show them), in the order the trials give them.
 */
export function sortableMetrics(trials: IRun[]): string[] {
  const names = new Set<string>();
  for (const run of trials) {
    for (const [name, value] of Object.entries(metricsOnce(run.metrics))) {
      if (isNumber(value)) {
        names.add(name);
      }
    }
  }
  return [...names];
}

/** `score ↓` (the largest first) or `score ↑` (the smallest first). */
export function sortLabel(sort: ITrialSort): string {
  return `${sort.metric} ${sort.order === 'max' ? '↓' : '↑'}`;
}

/** The choices of the "sort by" select: each metric, largest first and smallest first. */
export function sortChoices(trials: IRun[]): ITrialSort[] {
  return sortableMetrics(trials).flatMap(metric => [
    { metric, order: 'max' as const },
    { metric, order: 'min' as const }
  ]);
}

/**
 * The trials, the best by `sort` first (null: trial order). A trial without the metric (or
 * with a value that is not a number) comes last; ties keep the trial order.
 */
export function sortTrials(trials: IRun[], sort: ITrialSort | null): IRun[] {
  if (!sort) {
    return [...trials];
  }
  const sign = sort.order === 'max' ? -1 : 1;
  const keyed = trials.map((run, index) => ({
    run,
    index,
    value: run.metrics[sort.metric]
  }));
  keyed.sort((a, b) => {
    const aMissing = !isNumber(a.value);
    const bMissing = !isNumber(b.value);
    if (aMissing || bMissing) {
      return aMissing === bMissing ? a.index - b.index : aMissing ? 1 : -1;
    }
    const by = sign * ((a.value as number) - (b.value as number));
    return by !== 0 ? by : a.index - b.index;
  });
  return keyed.map(entry => entry.run);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && isFinite(value);
}
