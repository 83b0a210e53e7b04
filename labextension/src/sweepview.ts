/**
 * A sweep in the History: one collapsible group ("Sweep sweep-1a2b: 4 trials, 4 ok", the
 * swept parameters), a row per trial (the history's own row, with the trial's values), a
 * "sort by" select over the trials' metrics, and the run of the shared stages and earlier
 * attempts of a trial below the trials, apart from them.
 */

import { el } from './dom';
import {
  ISweepGroup,
  ITrialSort,
  sortChoices,
  sortLabel,
  sortTrials,
  sweepTitle
} from './sweepformat';
import { IRun } from './tokens';

/** What the group needs from the history: its rows and what it remembers between renders. */
export interface ISweepViewOptions {
  /** The history's row of a run. */
  renderRun: (run: IRun) => HTMLElement;
  /** The sort chosen for this sweep before (null: trial order). */
  sort: ITrialSort | null;
  onSort: (sort: ITrialSort | null) => void;
  /** Whether the group was open before. */
  open: boolean;
  onToggle: (open: boolean) => void;
}

/** The group of a sweep, as an item of the history's list. */
export function sweepGroupNode(
  group: ISweepGroup,
  options: ISweepViewOptions
): HTMLElement {
  const item = el('li', 'jp-nb2pipe-sweep');
  item.dataset.sweep = group.id;
  const details = document.createElement('details');
  details.className = 'jp-nb2pipe-sweep-group';
  details.open = options.open;
  details.addEventListener('toggle', () => options.onToggle(details.open));
  const summary = el('summary', 'jp-nb2pipe-sweep-title', sweepTitle(group));
  details.append(summary);
  if (group.params.length) {
    details.append(
      el('div', 'jp-nb2pipe-sweep-params', `swept: ${group.params.join(', ')}`)
    );
  }
  const rows = new Map(
    group.trials.map(run => [run.id, trialRow(run, options)])
  );
  const trialList = el('ul', 'jp-nb2pipe-sweep-trials');
  const place = (sort: ITrialSort | null) =>
    trialList.replaceChildren(
      ...sortTrials(group.trials, sort).map(run => rows.get(run.id)!)
    );
  const choices = sortChoices(group.trials);
  if (choices.length) {
    details.append(sortSelect(group.id, choices, options, place));
  }
  place(validSort(options.sort, choices));
  details.append(trialList);
  const others = [
    ...group.shared.map(run => otherRow(run, options, 'shared')),
    ...group.earlier.map(run => otherRow(run, options, 'earlier'))
  ];
  if (others.length) {
    details.append(el('ul', 'jp-nb2pipe-sweep-others'));
    details.lastElementChild!.append(...others);
  }
  item.append(details);
  return item;
}

function trialRow(run: IRun, options: ISweepViewOptions): HTMLElement {
  const row = options.renderRun(run);
  row.classList.add('jp-nb2pipe-trial');
  return row;
}

/** The run of the shared stages, or an attempt a later one replaced: labelled, not a trial. */
function otherRow(
  run: IRun,
  options: ISweepViewOptions,
  role: 'shared' | 'earlier'
): HTMLElement {
  const row = options.renderRun(run);
  row.classList.add(`jp-nb2pipe-sweep-${role}`);
  row.prepend(
    el(
      'div',
      'jp-nb2pipe-sweep-role',
      role === 'shared'
        ? 'the stages the trials share'
        : 'an earlier attempt of a trial'
    )
  );
  return row;
}

function sortSelect(
  sweep: string,
  choices: ITrialSort[],
  options: ISweepViewOptions,
  place: (sort: ITrialSort | null) => void
): HTMLElement {
  const label = el('label', 'jp-nb2pipe-sweep-sort', 'sort by ');
  const select = document.createElement('select');
  select.className = 'jp-nb2pipe-sweep-sort-select';
  select.setAttribute('aria-label', `Sort the trials of ${sweep} by`);
  const keyOf = (sort: ITrialSort) => `${sort.metric}:${sort.order}`;
  const byKey = new Map(choices.map(sort => [keyOf(sort), sort]));
  select.append(new Option('trial order', ''));
  for (const sort of choices) {
    select.append(new Option(sortLabel(sort), keyOf(sort)));
  }
  const chosen = validSort(options.sort, choices);
  select.value = chosen ? keyOf(chosen) : '';
  select.addEventListener('change', () => {
    const sort = byKey.get(select.value) ?? null;
    options.onSort(sort);
    place(sort);
  });
  label.append(select);
  return label;
}

function validSort(
  sort: ITrialSort | null,
  choices: ITrialSort[]
): ITrialSort | null {
  return sort &&
    choices.some(c => c.metric === sort.metric && c.order === sort.order)
    ? sort
    : null;
}
