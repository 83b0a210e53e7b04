/**
 * `after:NAME` from the UI (pure): which stages each stage runs after, whether a choice is
 * valid (no unknown stage, not itself, no cycle among the `after:` edges), and the edit that
 * writes it on a cell. Data edges are the server's to check: export refuses a cycle through
 * them with its own message.
 */

import {
  describeCells,
  ICellInput,
  ICellMetadata,
  IMetadataPatch,
  readRoles,
  writeRoles
} from './tags';

/** The stages each stage runs after (`after:` of all its cells), in notebook order. */
export function afterOfStages(cells: ICellInput[]): Map<string, string[]> {
  const after = new Map<string, string[]>();
  describeCells(cells).forEach((described, i) => {
    if (!described.stage) {
      return;
    }
    const names = after.get(described.stage) ?? [];
    for (const name of readRoles({
      tags: cells[i].tags,
      nb2pipe: cells[i].nb2pipe
    }).after) {
      if (!names.includes(name)) {
        names.push(name);
      }
    }
    after.set(described.stage, names);
  });
  return after;
}

/** Why `stage` cannot run after `chosen` (one line naming the stage and the fix), or null. */
export function afterProblem(
  stage: string,
  chosen: string[],
  stages: string[],
  after: Map<string, string[]>
): string | null {
  if (chosen.includes(stage)) {
    return `stage '${stage}' cannot run after itself; choose another stage`;
  }
  const unknown = chosen.find(name => !stages.includes(name));
  if (unknown !== undefined) {
    return `no stage '${unknown}' in this notebook; choose one of ${stages
      .filter(name => name !== stage)
      .map(name => `'${name}'`)
      .join(', ')}`;
  }
  const edges = new Map(after);
  edges.set(stage, chosen);
  for (const first of chosen) {
    const path = pathBetween(first, stage, edges);
    if (path) {
      return `'${stage}' after '${first}' makes a cycle (${[stage, ...path].join(' → ')}); leave '${first}' out`;
    }
  }
  return null;
}

/** A chain of `after:` edges from `from` to `to` ([from, ..., to]), or null. */
function pathBetween(
  from: string,
  to: string,
  edges: Map<string, string[]>
): string[] | null {
  const seen = new Set<string>();
  const walk = (name: string): string[] | null => {
    if (name === to) {
      return [name];
    }
    if (seen.has(name)) {
      return null;
    }
    seen.add(name);
    for (const next of edges.get(name) ?? []) {
      const rest = walk(next);
      if (rest) {
        return [name, ...rest];
      }
    }
    return null;
  };
  return walk(from);
}

/** Replace the cell's `after:` stages. */
export function setAfter(
  metadata: ICellMetadata | undefined | null,
  names: string[]
): IMetadataPatch {
  const roles = readRoles(metadata);
  roles.after = [...new Set(names)];
  return writeRoles(metadata, roles);
}
