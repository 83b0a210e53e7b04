/**
 * The state of each stage on its cells' chips: the same words and icons as the sidebar
 * (`displayState`, `STATE_LABELS`), from the same `PipelineModel`, so the notebook itself
 * tells what is stale, failed or running.
 *
 * Pure (tested with plain objects); `structure.followChipStates` hands the active notebook's
 * states to its chips whenever its model's status or job changes.
 */

import { displayState, STATE_LABELS } from './format';
import { IJob, IStatus } from './tokens';

/** A stage reason longer than this is left to the sidebar. */
export const SHORT_REASON = 80;

/** The states whose reason the tooltip gives (a running stage's last state is past). */
const EXPLAINED = ['stale', 'failed', 'cancelled'];

/** What a stage chip shows of its stage's state. */
export interface IChipState {
  /** A `data-state` word: up-to-date, stale, never-run, failed, running, cancelled, queued. */
  state: string;
  /** The state in words, e.g. `up to date`. */
  words: string;
  /** The first reason when it is short (`code changed: cell 13`), else empty. */
  reason: string;
}

/** The chip state of every stage of `status`, a running `job`'s view first. */
export function chipStates(
  status: IStatus | null,
  job: IJob | null
): Map<string, IChipState> {
  const states = new Map<string, IChipState>();
  if (!status?.exists) {
    return states;
  }
  for (const stage of status.stages) {
    const state = displayState(stage, job);
    const first = stage.reasons[0] ?? '';
    states.set(stage.name, {
      state,
      words: STATE_LABELS[state]?.label ?? state,
      reason: first.length <= SHORT_REASON ? first : ''
    });
  }
  return states;
}

/** The chip's tooltip and accessible name: the stage, its state and short reason. */
export function chipTitle(
  stage: string,
  state: IChipState | undefined
): string {
  if (!state) {
    return `stage '${stage}'`;
  }
  const why =
    state.reason && EXPLAINED.includes(state.state) ? ` (${state.reason})` : '';
  return `stage '${stage}': ${state.words}${why}`;
}
