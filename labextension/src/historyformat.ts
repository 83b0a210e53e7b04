/**
 * How the history and the parameters form word and read values (pure functions): a typed
 * value from what was typed, times, the parameters a run changed, the rows of a diff.
 */

import { formatMetric } from './format';
import { IDiffRow, IParameter, IRunDiff } from './tokens';

/** A value read from the form, or why it cannot be. */
export type ParsedValue =
  { ok: true; value: unknown } | { ok: false; error: string };

const WHOLE = /^[+-]?\d+$/;

/**
 * The typed value of parameter `param` from the text typed for it (a checkbox gives
 * `'true'`/`'false'`): an int stays an int, a float a float, lists and dicts are JSON.
 */
export function parseParamValue(param: IParameter, text: string): ParsedValue {
  const trimmed = text.trim();
  const fail = (why: string): ParsedValue => ({
    ok: false,
    error: `parameter '${param.name}' ${why}`
  });
  switch (param.type) {
    case 'int':
      return WHOLE.test(trimmed)
        ? { ok: true, value: Number(trimmed) }
        : fail(`must be a whole number (an int, e.g. 3), not '${text}'`);
    case 'float': {
      const value = Number(trimmed);
      return trimmed !== '' && isFinite(value)
        ? { ok: true, value }
        : fail(`must be a number (a float, e.g. 0.5), not '${text}'`);
    }
    case 'bool':
      return trimmed === 'true' || trimmed === 'false'
        ? { ok: true, value: trimmed === 'true' }
        : fail(`must be true or false, not '${text}'`);
    case 'str':
      return { ok: true, value: text };
    default:
      return parseJson(param, trimmed, fail);
  }
}

function parseJson(
  param: IParameter,
  text: string,
  fail: (why: string) => ParsedValue
): ParsedValue {
  const wanted =
    param.type === 'list'
      ? 'a JSON list, e.g. [1, 2]'
      : param.type === 'dict'
        ? 'a JSON object, e.g. {"a": 1}'
        : 'JSON, e.g. null';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(`must be ${wanted}; '${text}' is not valid JSON`);
  }
  const isList = Array.isArray(value);
  const isDict = typeof value === 'object' && value !== null && !isList;
  if (
    (param.type === 'list' && !isList) ||
    (param.type === 'dict' && !isDict)
  ) {
    return fail(`must be ${wanted}`);
  }
  return { ok: true, value };
}

/** The text a form field shows for `value` of a parameter of type `type`. */
export function paramText(type: IParameter['type'], value: unknown): string {
  if (type === 'str') {
    return typeof value === 'string' ? value : String(value);
  }
  if (
    type === 'float' &&
    typeof value === 'number' &&
    Number.isInteger(value)
  ) {
    return value.toFixed(1);
  }
  return JSON.stringify(value);
}

/** The values of `values` that differ from the parameters' defaults, in the parameters' order. */
export function changedFromDefaults(
  values: Record<string, unknown>,
  parameters: IParameter[]
): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const param of parameters) {
    if (
      param.name in values &&
      JSON.stringify(values[param.name]) !== JSON.stringify(param.default)
    ) {
      changed[param.name] = values[param.name];
    }
  }
  return changed;
}

/** `n=5, rate=0.25`. */
export function formatAssignments(values: Record<string, unknown>): string {
  return Object.entries(values)
    .map(([name, value]) => `${name}=${formatMetric(value)}`)
    .join(', ');
}

/** `2026-11-29 18:01:02`, local time (what `nb2pipe runs` shows, with seconds). */
export function formatWhen(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
  );
}

/** `just now`, `5 min ago`, `3 h ago`, `2 days ago`. */
export function formatAgo(seconds: number, nowMs: number): string {
  const ago = Math.max(0, nowMs / 1000 - seconds);
  if (ago < 60) {
    return 'just now';
  }
  if (ago < 3600) {
    return `${Math.floor(ago / 60)} min ago`;
  }
  if (ago < 86400) {
    return `${Math.floor(ago / 3600)} h ago`;
  }
  const days = Math.floor(ago / 86400);
  return `${days} ${days === 1 ? 'day' : 'days'} ago`;
}

/** One line of the diff view: what changed from run a to run b. */
export interface IDiffLine {
  section: 'params' | 'metrics' | 'outputs';
  name: string;
  a: string;
  b: string;
  /** `+0.2` for numbers, else `changed`. */
  change: string;
}

/**
 * The rows of a diff that changed, as the sidebar shows them: each metric once (as
 * `nb2pipe diff` prints it: `name` when one stage reports it, else `stage.name`), outputs
 * as `changed`, `added` or `removed`.
 */
export function diffLines(diff: IRunDiff): IDiffLine[] {
  const lines: IDiffLine[] = [];
  const sections: [IDiffLine['section'], IDiffRow[]][] = [
    ['params', diff.params],
    ['metrics', eachMetricOnce(diff.metrics)],
    ['outputs', diff.outputs]
  ];
  for (const [section, rows] of sections) {
    for (const row of rows.filter(r => r.changed)) {
      lines.push(
        section === 'outputs' ? outputLine(row) : valueLine(section, row)
      );
    }
  }
  return lines;
}

function valueLine(section: IDiffLine['section'], row: IDiffRow): IDiffLine {
  const change =
    typeof row.change === 'number'
      ? (row.change >= 0 ? '+' : '') + formatMetric(row.change)
      : 'changed';
  return {
    section,
    name: row.name,
    a: diffValue(row.a),
    b: diffValue(row.b),
    change
  };
}

function outputLine(row: IDiffRow): IDiffLine {
  const change =
    row.a === null || row.a === undefined
      ? 'added'
      : row.b === null || row.b === undefined
        ? 'removed'
        : 'changed';
  return {
    section: 'outputs',
    name: row.name,
    a: shortHash(row.a),
    b: shortHash(row.b),
    change
  };
}

function diffValue(value: unknown): string {
  return value === null || value === undefined ? '-' : formatMetric(value);
}

function shortHash(value: unknown): string {
  return typeof value === 'string'
    ? value.replace(/^\w+:/, '').slice(0, 8)
    : '-';
}

/**
 * A metric one stage reports is in the history both as `name` and `stage.name`: keep `name`
 * (a name several stages report stays as `stage.name`, once per stage).
 */
export function eachMetricOnce(rows: IDiffRow[]): IDiffRow[] {
  const kept = metricNamesOnce(rows.map(row => row.name));
  return rows.filter(row => kept.has(row.name));
}

/** A run's metrics, each once (see `eachMetricOnce`). */
export function metricsOnce(
  metrics: Record<string, unknown>
): Record<string, unknown> {
  const kept = metricNamesOnce(Object.keys(metrics));
  return Object.fromEntries(
    Object.entries(metrics).filter(([name]) => kept.has(name))
  );
}

function metricNamesOnce(names: string[]): Set<string> {
  const plain = new Set(names.filter(name => !name.includes('.')));
  return new Set(
    names.filter(name => {
      const dot = name.indexOf('.');
      return dot < 0 || !plain.has(name.slice(dot + 1));
    })
  );
}
