/**
 * "Explain" a stage in the UI: what `nb2pipe explain` prints (the variables it loads and saves,
 * the files it reads and writes, its parameters and its `after:` stages), from the stage's
 * entry in `GET status`. `explainRows` words it (pure); `renderExplain` builds the DOM (text
 * only through textContent). The sidebar and the graph's details pane both show it.
 */

import { IStageStatus } from './tokens';

/** One line of the explanation: what kind (`loads`, `reads`, ...) and what. */
export interface IExplainRow {
  kind: string;
  text: string;
}

const quoted = (names: string[]) => names.map(name => `'${name}'`).join(', ');

/** The explanation of `stage`, in the order `nb2pipe explain` prints it. */
export function explainRows(stage: IStageStatus): IExplainRow[] {
  const rows: IExplainRow[] = [];
  for (const load of stage.loads ?? []) {
    rows.push({
      kind: 'loads',
      text: `${load.name} from stage '${load.from}'`
    });
  }
  for (const save of stage.saves ?? []) {
    rows.push({
      kind: 'saves',
      text: save.to.length ? `${save.name} for ${quoted(save.to)}` : save.name
    });
  }
  for (const dep of stage.deps ?? []) {
    const from = dep.from.length ? ` from ${quoted(dep.from)}` : '';
    rows.push({ kind: 'reads', text: `${dep.path}${from} (${dep.how})` });
  }
  for (const out of stage.outs ?? []) {
    rows.push({ kind: 'writes', text: `${out.path} (${out.how})` });
  }
  if (stage.params?.length) {
    rows.push({ kind: 'params', text: stage.params.join(', ') });
  }
  if (stage.after?.length) {
    rows.push({ kind: 'after', text: quoted(stage.after) });
  }
  return rows;
}

/** The explanation as a definition list (`.jp-nb2pipe-explain`). */
export function renderExplain(stage: IStageStatus): HTMLElement {
  const list = document.createElement('dl');
  list.className = 'jp-nb2pipe-explain';
  list.dataset.stage = stage.name;
  const rows = explainRows(stage);
  if (!rows.length) {
    const none = document.createElement('p');
    none.className = 'jp-nb2pipe-explain-none';
    none.textContent =
      'Nothing flows in or out of this stage: no variables, files, parameters or after: tags.';
    return none;
  }
  for (const row of rows) {
    const kind = document.createElement('dt');
    kind.textContent = row.kind;
    const text = document.createElement('dd');
    text.textContent = row.text;
    list.append(kind, text);
  }
  return list;
}

/**
 * A collapsible "Explain" section for the sidebar. `isOpen` and `onToggle` keep it open across
 * the sidebar's re-renders.
 */
export function explainDetails(
  stage: IStageStatus,
  isOpen: boolean,
  onToggle: (open: boolean) => void
): HTMLElement {
  const details = document.createElement('details');
  details.className = 'jp-nb2pipe-explain-details';
  const summary = document.createElement('summary');
  summary.textContent = 'Explain';
  summary.title = `What stage '${stage.name}' takes from and hands to the others`;
  details.append(summary, renderExplain(stage));
  details.open = isOpen;
  details.addEventListener('toggle', () => onToggle(details.open));
  return details;
}
