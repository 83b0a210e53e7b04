/**
 * The notebook vocabulary (DESIGN §1), read and edited on plain metadata objects.
 *
 * Mirrors nb2pipe/model.py (tag spellings, Kale aliases, the stage-name rule) and
 * nb2pipe/notebook.py (how cells are cut into stages). Nothing here touches
 * JupyterLab, so it is tested with plain objects.
 *
 * Writing keeps the two places a cell's roles live consistent: `metadata.tags`
 * (plain strings every Jupyter tool keeps) and `metadata.nb2pipe`
 * (`{stage, deps, outs, after}`; it wins on conflict, as in the exporter):
 * 1. read the roles from both (`readRoles`);
 * 2. change the roles;
 * 3. rewrite both from the roles (`writeRoles`): nb2pipe tags that no longer
 *    hold are dropped, missing ones added, other tools' tags kept in place.
 */

export const STAGE_NAME_RE = /^[a-z_][a-z0-9_-]{0,63}$/;
export const STAGE_NAME_RULE =
  "a stage name is lowercase letters, digits, '_' and '-', starting with a letter or '_'";

export const STAGE_TAG_PREFIXES = ['stage:', 'step:', 'block:'];
export const AFTER_TAG_PREFIXES = ['after:', 'prev:'];
export const IN_TAG_PREFIX = 'in:';
export const OUT_TAG_PREFIX = 'out:';
/** Flag tags; the first spelling is the one written, the others are read (Kale). */
export const FLAG_TAGS = {
  parameters: ['parameters', 'pipeline-parameters'],
  setup: ['setup', 'imports', 'functions'],
  skip: ['skip'],
  metrics: ['metrics', 'pipeline-metrics']
} as const;
export type Flag = keyof typeof FLAG_TAGS;
export const FLAGS = Object.keys(FLAG_TAGS) as Flag[];

/** papermill's cell of injected values: like the parameters cell, in no stage (never written here). */
export const INJECTED_PARAMETERS_TAG = 'injected-parameters';

/** Key of the structured metadata: `cell.metadata.nb2pipe`. */
export const CELL_METADATA_KEY = 'nb2pipe';

/** `cell.metadata.nb2pipe`. */
export interface INb2pipeCellMetadata {
  stage?: string;
  deps?: string[];
  outs?: string[];
  after?: string[];
  [key: string]: unknown;
}

/** The part of a cell's metadata nb2pipe reads. */
export interface ICellMetadata {
  tags?: string[];
  nb2pipe?: INb2pipeCellMetadata;
  [key: string]: unknown;
}

/** What a cell's tags and structured metadata declare. */
export interface ICellRoles {
  /** `stage:NAME` (or metadata `stage`); null when the cell starts no stage. */
  stage: string | null;
  parameters: boolean;
  setup: boolean;
  skip: boolean;
  metrics: boolean;
  /** `in:PATH` */
  deps: string[];
  /** `out:PATH` */
  outs: string[];
  /** `after:NAME` */
  after: string[];
}

/** New values for `metadata.tags` and `metadata.nb2pipe` (null: delete the key). */
export interface IMetadataPatch {
  tags: string[];
  nb2pipe: INb2pipeCellMetadata | null;
}

/** The error message for a bad stage name, or null when it is valid. */
export function validateStageName(name: string): string | null {
  if (!name) {
    return 'enter a stage name, e.g. train';
  }
  if (!STAGE_NAME_RE.test(name)) {
    return `'${name}' is not a valid stage name; ${STAGE_NAME_RULE} (at most 64 characters)`;
  }
  return null;
}

function stripPrefix(tag: string, prefixes: readonly string[]): string | null {
  for (const prefix of prefixes) {
    if (tag.startsWith(prefix)) {
      return tag.slice(prefix.length).trim();
    }
  }
  return null;
}

/** A path as the exporter stores it: trimmed, without a leading `./`. */
export function normalizePath(path: string): string {
  const trimmed = path.trim();
  return trimmed.startsWith('./') ? trimmed.slice(2) : trimmed;
}

function asList(value: unknown): string[] {
  if (typeof value === 'string') {
    return [value];
  }
  if (Array.isArray(value)) {
    return value.filter((v): v is string => typeof v === 'string');
  }
  return [];
}

function pushUnique(target: string[], items: string[]): void {
  for (const item of items) {
    if (item && !target.includes(item)) {
      target.push(item);
    }
  }
}

function tagsOf(metadata: ICellMetadata | undefined | null): string[] {
  const tags = metadata?.tags;
  if (!Array.isArray(tags)) {
    return [];
  }
  return tags.map(t => String(t).trim());
}

/** A cell's roles, from its tags merged with `metadata.nb2pipe` (which wins). */
export function readRoles(
  metadata: ICellMetadata | undefined | null
): ICellRoles {
  const roles: ICellRoles = {
    stage: null,
    parameters: false,
    setup: false,
    skip: false,
    metrics: false,
    deps: [],
    outs: [],
    after: []
  };
  for (const tag of tagsOf(metadata)) {
    let value: string | null;
    if ((value = stripPrefix(tag, STAGE_TAG_PREFIXES)) !== null) {
      if (value) {
        roles.stage = value; // an empty Kale `block:` continues the stage above
      }
    } else if ((value = stripPrefix(tag, AFTER_TAG_PREFIXES)) !== null) {
      pushUnique(roles.after, [value]);
    } else if ((value = stripPrefix(tag, [IN_TAG_PREFIX])) !== null) {
      pushUnique(roles.deps, [normalizePath(value)]);
    } else if ((value = stripPrefix(tag, [OUT_TAG_PREFIX])) !== null) {
      pushUnique(roles.outs, [normalizePath(value)]);
    } else {
      for (const flag of FLAGS) {
        if ((FLAG_TAGS[flag] as readonly string[]).includes(tag)) {
          roles[flag] = true;
        }
      }
    }
  }
  const structured = metadata?.nb2pipe;
  if (
    structured &&
    typeof structured === 'object' &&
    !Array.isArray(structured)
  ) {
    if (typeof structured.stage === 'string' && structured.stage) {
      roles.stage = structured.stage;
    }
    pushUnique(roles.deps, asList(structured.deps).map(normalizePath));
    pushUnique(roles.outs, asList(structured.outs).map(normalizePath));
    pushUnique(roles.after, asList(structured.after));
  }
  return roles;
}

/** `metadata.tags` and `metadata.nb2pipe` that say exactly `roles`. */
export function writeRoles(
  metadata: ICellMetadata | undefined | null,
  roles: ICellRoles
): IMetadataPatch {
  const tags: string[] = [];
  const seen = new Set<string>();
  let stageKept = false;
  const flagKept = new Set<Flag>();
  for (const tag of tagsOf(metadata)) {
    let value: string | null;
    let keep = true;
    if ((value = stripPrefix(tag, STAGE_TAG_PREFIXES)) !== null) {
      keep = value ? !stageKept && value === roles.stage : roles.stage === null; // empty `block:` only while no stage is set
      stageKept = stageKept || (keep && !!value);
    } else if ((value = stripPrefix(tag, AFTER_TAG_PREFIXES)) !== null) {
      keep = roles.after.includes(value) && !seen.has(`after:${value}`);
      seen.add(`after:${value}`);
    } else if ((value = stripPrefix(tag, [IN_TAG_PREFIX])) !== null) {
      value = normalizePath(value);
      keep = roles.deps.includes(value) && !seen.has(`in:${value}`);
      seen.add(`in:${value}`);
    } else if ((value = stripPrefix(tag, [OUT_TAG_PREFIX])) !== null) {
      value = normalizePath(value);
      keep = roles.outs.includes(value) && !seen.has(`out:${value}`);
      seen.add(`out:${value}`);
    } else {
      const flag = FLAGS.find(f =>
        (FLAG_TAGS[f] as readonly string[]).includes(tag)
      );
      if (flag) {
        keep = roles[flag] && !flagKept.has(flag);
        if (keep) {
          flagKept.add(flag);
        }
      }
    }
    if (keep) {
      tags.push(tag);
    }
  }
  if (roles.stage && !stageKept) {
    tags.unshift(`stage:${roles.stage}`);
  }
  for (const flag of FLAGS) {
    if (roles[flag] && !flagKept.has(flag)) {
      tags.push(FLAG_TAGS[flag][0]);
    }
  }
  for (const name of roles.after) {
    if (!seen.has(`after:${name}`)) {
      tags.push(`after:${name}`);
    }
  }
  for (const path of roles.deps) {
    if (!seen.has(`in:${path}`)) {
      tags.push(`in:${path}`);
    }
  }
  for (const path of roles.outs) {
    if (!seen.has(`out:${path}`)) {
      tags.push(`out:${path}`);
    }
  }

  // Structured metadata: keep keys of other versions, rewrite ours.
  const previous = metadata?.nb2pipe;
  const structured: INb2pipeCellMetadata =
    previous && typeof previous === 'object' && !Array.isArray(previous)
      ? { ...previous }
      : {};
  delete structured.stage;
  delete structured.deps;
  delete structured.outs;
  delete structured.after;
  const any =
    roles.stage !== null ||
    roles.deps.length + roles.outs.length + roles.after.length > 0;
  if (any) {
    if (roles.stage) {
      structured.stage = roles.stage;
    }
    structured.deps = [...roles.deps];
    structured.outs = [...roles.outs];
    structured.after = [...roles.after];
  }
  return {
    tags,
    nb2pipe: Object.keys(structured).length > 0 ? structured : null
  };
}

/** Rewrite both places from what they declare together (repairs hand edits). */
export function normalize(
  metadata: ICellMetadata | undefined | null
): IMetadataPatch {
  return writeRoles(metadata, readRoles(metadata));
}

/** Assign the cell to stage `name` (null: remove its stage tag). */
export function setStage(
  metadata: ICellMetadata | undefined | null,
  name: string | null
): IMetadataPatch {
  if (name !== null) {
    const error = validateStageName(name);
    if (error) {
      throw new Error(error);
    }
  }
  const roles = readRoles(metadata);
  roles.stage = name;
  return writeRoles(metadata, roles);
}

/** Mark (on) or unmark (off) the cell as parameters / setup / skip / metrics. */
export function setFlag(
  metadata: ICellMetadata | undefined | null,
  flag: Flag,
  on: boolean
): IMetadataPatch {
  const roles = readRoles(metadata);
  roles[flag] = on;
  return writeRoles(metadata, roles);
}

/** Replace the cell's declared input (`in`) or output (`out`) files. */
export function setFiles(
  metadata: ICellMetadata | undefined | null,
  kind: 'in' | 'out',
  paths: string[]
): IMetadataPatch {
  const roles = readRoles(metadata);
  const clean: string[] = [];
  pushUnique(clean, paths.map(normalizePath));
  if (kind === 'in') {
    roles.deps = clean;
  } else {
    roles.outs = clean;
  }
  return writeRoles(metadata, roles);
}

// --- stages of a notebook's cells -------------------------------------------------------

/** What `describeCells` needs of a cell. A bare tag list means a code cell. */
export interface ICellInput {
  cellType?: string; // 'code' (default), 'markdown' or 'raw'
  tags?: string[];
  nb2pipe?: INb2pipeCellMetadata;
  /** Markdown source: read for headings when no cell has a stage tag. */
  source?: string;
}

export type CellRole = 'stage' | 'parameters' | 'setup' | 'skip' | 'none';

/** Where a cell lands in the pipeline. */
export interface ICellStage {
  /** The stage the cell belongs to, or null. */
  stage: string | null;
  /** `stage`: part of `stage`; others: left out of every stage (setup is prepended to all). */
  role: CellRole;
  /** True when the stage comes from a `##` heading (no cell has a stage tag). */
  inferred: boolean;
  /** True when this cell carries the stage tag itself (it starts the stage). */
  starts: boolean;
}

function asInput(cell: ICellInput | string[]): ICellInput {
  return Array.isArray(cell) ? { cellType: 'code', tags: cell } : cell;
}

/**
 * Where each cell lands, as the exporter cuts the notebook (nb2pipe/notebook.py):
 * 1. raw and `skip` cells are left out; `parameters` (and papermill's `injected-parameters`) and
 *    `setup` code cells are not in a stage, nor are the untagged code cells of a Kale block
 *    (after `imports`, `functions` or `pipeline-parameters`, see `kaleBlocks`);
 * 2. if any remaining cell has a stage tag, a code cell with `stage:NAME` starts (or re-enters)
 *    stage NAME and the cells after it belong to it until the next stage tag;
 *    code cells above the first stage tag belong to none (setup or an error on export);
 * 3. else the notebook is split at every markdown heading of level 1 or 2 (the last such
 *    heading of a cell names its stage), stage names slugified from the heading text; the code
 *    of the first section that has code gets none here: its leading setup code (imports,
 *    definitions, configuration, installs) is found on export by parsing Python.
 */
export function describeCells(cells: (ICellInput | string[])[]): ICellStage[] {
  const inputs = cells.map(asInput);
  const roles = inputs.map(c =>
    readRoles({ tags: c.tags, nb2pipe: c.nb2pipe })
  );
  const kinds = inputs.map(c => c.cellType ?? 'code');
  const continued = kaleBlocks(inputs, roles, kinds);
  const result: ICellStage[] = [];
  const outside = (i: number): CellRole | null => {
    if (kinds[i] === 'raw') {
      return 'none';
    }
    if (roles[i].skip) {
      return 'skip';
    }
    if (continued[i]) {
      return continued[i];
    }
    const injected = tagsOf({ tags: inputs[i].tags }).includes(
      INJECTED_PARAMETERS_TAG
    );
    if (kinds[i] === 'code' && (roles[i].parameters || injected)) {
      return 'parameters';
    }
    if (kinds[i] === 'code' && roles[i].setup) {
      return 'setup';
    }
    return null;
  };
  const byTags = inputs.some((_, i) => outside(i) === null && !!roles[i].stage);
  const taken = new Set<string>();
  let current: string | null = null;
  let section = 0;
  let firstCodeSection: number | null = null;
  inputs.forEach((cell, i) => {
    const role = outside(i);
    if (role !== null) {
      result.push({ stage: null, role, inferred: false, starts: false });
      return;
    }
    let starts = false;
    if (byTags) {
      if (kinds[i] === 'code' && roles[i].stage) {
        current = roles[i].stage;
        starts = true;
      }
    } else if (kinds[i] === 'markdown') {
      const split = headings(cell.source ?? '').filter(
        h => h.level <= SPLIT_LEVEL
      );
      if (split.length) {
        current = unique(slugify(split[split.length - 1].text), taken);
        section += 1;
        starts = true;
      }
    } else if (kinds[i] === 'code' && firstCodeSection === null) {
      firstCodeSection = section;
    }
    const decidedOnExport = !byTags && section === firstCodeSection;
    const stage = kinds[i] === 'code' && !decidedOnExport ? current : null;
    result.push({
      stage,
      role: stage ? 'stage' : 'none',
      inferred: !byTags && stage !== null,
      starts: starts && kinds[i] === 'code'
    });
  });
  return result;
}

/** Kale's tags that start a block untagged code cells below join (nb2pipe/kale.py). */
const KALE_BLOCKS: { [tag: string]: CellRole } = {
  imports: 'setup',
  functions: 'setup',
  'pipeline-parameters': 'parameters'
};

/**
 * For each cell, the Kale block it joins (null: none): an untagged code cell, or one with an
 * empty `block:`, after a cell tagged `imports`, `functions` (setup) or `pipeline-parameters`
 * belongs to that block, as in Kale; `skip` and non-code cells neither join nor end a block.
 */
function kaleBlocks(
  inputs: ICellInput[],
  roles: ICellRoles[],
  kinds: string[]
): (CellRole | null)[] {
  let block: CellRole | null = null;
  return inputs.map((cell, i) => {
    if (kinds[i] !== 'code' || roles[i].skip) {
      return null;
    }
    const tags = tagsOf({ tags: cell.tags });
    const injected = tags.includes(INJECTED_PARAMETERS_TAG);
    if (roles[i].setup || roles[i].parameters || injected) {
      block =
        tags.map(t => KALE_BLOCKS[t]).find(r => !!r && roles[i][r as Flag]) ??
        null;
      return null;
    }
    const own =
      roles[i].metrics || roles[i].deps.length > 0 || roles[i].outs.length > 0;
    if (roles[i].stage || own) {
      block = null; // a step, or a cell with nb2pipe's own roles, ends the block
      return null;
    }
    return block;
  });
}

/** The stage of each cell (null: none), as `describeCells` finds it. */
export function stageOfCells(
  cells: (ICellInput | string[])[]
): (string | null)[] {
  return describeCells(cells).map(c => c.stage);
}

/** Stage names declared by tags or metadata, in notebook order, each once. */
export function declaredStages(cells: (ICellInput | string[])[]): string[] {
  const names: string[] = [];
  for (const cell of cells.map(asInput)) {
    const stage = readRoles({ tags: cell.tags, nb2pipe: cell.nb2pipe }).stage;
    if (stage) {
      pushUnique(names, [stage]);
    }
  }
  return names;
}

/** The heading level an untagged notebook is split at by default (notebook.DEFAULT_SPLIT_LEVEL). */
export const SPLIT_LEVEL = 2;

const HEADING_RE = /^(#{1,6})\s+(.+?)\s*#*\s*$/;
/** Where Python's str.splitlines() breaks lines, as the exporter reads markdown. */
// eslint-disable-next-line no-control-regex -- str.splitlines() also breaks at \x1c-\x1e
const LINE_BREAK_RE = /\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/;

/** ATX headings of a markdown cell, outside fenced code. */
export function headings(markdown: string): { level: number; text: string }[] {
  const found: { level: number; text: string }[] = [];
  let fenced = false;
  for (const line of markdown.split(LINE_BREAK_RE)) {
    const trimmed = line.trimStart();
    if (trimmed.startsWith('```') || trimmed.startsWith('~~~')) {
      fenced = !fenced;
      continue;
    }
    const match = fenced ? null : HEADING_RE.exec(line);
    if (match) {
      found.push({ level: match[1].length, text: match[2] });
    }
  }
  return found;
}

/** A valid stage name from heading text: 'Train a model!' -> 'train_a_model'. */
export function slugify(text: string): string {
  let slug = text
    .replace(/<[^>]+>|`|\*|\[|\]\([^)]*\)/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!slug) {
    slug = 'stage';
  }
  if (!/^[a-z_]/.test(slug)) {
    slug = 's_' + slug;
  }
  return slug.slice(0, 64).replace(/[_-]+$/, '') || 'stage';
}

function unique(name: string, taken: Set<string>): string {
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) {
    const suffix = `_${n}`;
    candidate = name.slice(0, 64 - suffix.length) + suffix;
  }
  taken.add(candidate);
  return candidate;
}

/**
 * Why the cells at `marking` (0-based) cannot be marked as parameters: the notebook would have
 * two parameters cells, which export refuses with the same words; null when they can. Cells are
 * numbered from 1 over the whole notebook, as export numbers them.
 */
export function secondParametersCell(
  cells: ICellInput[],
  marking: number[]
): string | null {
  const isCode = (i: number) => (cells[i]?.cellType ?? 'code') === 'code';
  const marked = cells
    .map((c, i) =>
      isCode(i) && readRoles({ tags: c.tags, nb2pipe: c.nb2pipe }).parameters
        ? i
        : -1
    )
    .filter(i => i >= 0);
  const all = [...new Set([...marked, ...marking.filter(isCode)])].sort(
    (a, b) => a - b
  );
  if (all.length < 2) {
    return null;
  }
  return `two parameters cells: cell ${all[0] + 1} and cell ${all[1] + 1}; merge them into one`;
}
