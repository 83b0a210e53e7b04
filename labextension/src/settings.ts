/**
 * Per-stage settings from the UI (pure): read them from a cell's tags and structured metadata,
 * check what the settings dialog holds, and write it as the structured form.
 *
 * Mirrors nb2pipe/settings.py (the grammar: durations with s/m/h, sizes with KiB..TiB, Ki..Ti,
 * K..T, KB..TB, retries a whole number, kernel and environment variable names) and its
 * messages, so the dialog says what export would say. The structured form lives in the stage's
 * first cell's `metadata.nb2pipe` and, for the pipeline-wide defaults, in the notebook's
 * `metadata.nb2pipe.defaults`; a secret is only ever a name.
 */

import { ICellMetadata, IMetadataPatch, INb2pipeCellMetadata } from './tags';

/** The settings keys: tags (`timeout:30m`) and structured keys alike (model.SETTING_KEYS). */
export const SETTING_KEYS = [
  'timeout',
  'cell-timeout',
  'retries',
  'memory',
  'allow-failure',
  'kernel',
  'env',
  'secret',
  'track-env'
] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];
/** Key of the notebook's pipeline-wide settings: `metadata.nb2pipe.defaults`. */
export const DEFAULTS_KEY = 'defaults';

/** The structured form, as nb2pipe.yaml and `GET status` give it. */
export interface ISettings {
  timeout?: string;
  'cell-timeout'?: string;
  retries?: number;
  memory?: string;
  'allow-failure'?: boolean;
  kernel?: string;
  /** Name to value; null: passed through from the caller's environment. */
  env?: Record<string, string | null>;
  /** Names of variables given at run time; their values are never written. */
  secret?: string[];
  'track-env'?: boolean;
}

/** What the settings dialog holds, as typed. */
export interface ISettingsForm {
  timeout: string;
  cellTimeout: string;
  retries: string;
  memory: string;
  allowFailure: boolean;
  kernel: string;
  /** One row per variable; an empty value passes the caller's value through. */
  env: { name: string; value: string }[];
  /** Secret names, separated by spaces or commas. */
  secrets: string;
  trackEnv: boolean;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*([smh]?)$/;
const DURATION_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?)?$/;
const UNITS = ['T', 'G', 'M', 'K'] as const;
const BINARY: Record<string, number> = {
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40
};
const DECIMAL: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KERNEL_NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;

/** '30m' → 1800 seconds; a bare number is seconds. */
export function parseDuration(text: string): number {
  const match = DURATION_RE.exec(text.trim());
  if (!match || Number(match[1]) <= 0) {
    throw new Error(
      `'${text}' is not a duration; write a positive number with s, m or h, e.g. 30m`
    );
  }
  return Number(match[1]) * DURATION_UNITS[match[2]];
}

/** '4GiB' → bytes: Ki/Mi/Gi/Ti (with or without B) binary, K/M/G/T (or KB, ...) decimal. */
export function parseSize(text: string): number {
  const match = SIZE_RE.exec(text.trim());
  if (!match || Number(match[1]) <= 0) {
    throw new Error(
      `'${text}' is not a size; write a positive number with MiB or GiB, e.g. 4GiB`
    );
  }
  const unit = match[2] ?? '';
  const factor = !unit ? 1 : (unit.includes('i') ? BINARY : DECIMAL)[unit[0]];
  return Math.floor(Number(match[1]) * factor);
}

/** 1800 → '30m', as settings.format_duration writes it. */
export function formatDuration(seconds: number): string {
  if (seconds % 3600 === 0) {
    return `${seconds / 3600}h`;
  }
  if (seconds % 60 === 0) {
    return `${seconds / 60}m`;
  }
  return `${seconds}s`;
}

/** Bytes → '4GiB' / '2GB', as settings.format_size writes it. */
export function formatSize(size: number): string {
  for (const unit of UNITS) {
    if (size % BINARY[unit] === 0) {
      return `${size / BINARY[unit]}${unit}iB`;
    }
    if (size % DECIMAL[unit] === 0) {
      return `${size / DECIMAL[unit]}${unit}B`;
    }
  }
  return String(size);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

/** The settings keys of a structured mapping, kept as they are (export checks them). */
export function structuredSettings(data: unknown): ISettings {
  const settings: Record<string, unknown> = {};
  if (isRecord(data)) {
    for (const key of SETTING_KEYS) {
      if (key in data) {
        settings[key] = data[key];
      }
    }
  }
  return settings as ISettings;
}

/** The setting a tag holds (`timeout:30m` → ['timeout', '30m']), or null for other tags. */
function settingOfTag(tag: string): [SettingKey, string | null] | null {
  const at = tag.indexOf(':');
  const key = (at < 0 ? tag : tag.slice(0, at)) as SettingKey;
  if (!SETTING_KEYS.includes(key)) {
    return null;
  }
  return [key, at < 0 ? null : tag.slice(at + 1).trim()];
}

/** Kale's memory limit (`limit:memory:4Gi`): export reads it as `memory`, over the cell's own. */
const KALE_MEMORY_PREFIX = 'limit:memory:';

/** Whether `tag` is a settings tag (`timeout:30m`, `allow-failure`, Kale's memory limit, ...). */
export function isSettingTag(tag: string): boolean {
  const trimmed = String(tag).trim();
  return (
    settingOfTag(trimmed) !== null || trimmed.startsWith(KALE_MEMORY_PREFIX)
  );
}

/** A cell's settings: its tags, then its structured metadata over them (as export merges).
 * Values are kept as written (a bad one is export's to name). */
export function cellSettings(
  metadata: ICellMetadata | undefined | null
): ISettings {
  const found: Record<string, unknown> = {};
  const env: Record<string, string | null> = {};
  const secrets: string[] = [];
  for (const tag of metadata?.tags ?? []) {
    const setting = settingOfTag(String(tag).trim());
    if (!setting) {
      continue;
    }
    const [key, value] = setting;
    if (key === 'allow-failure' || key === 'track-env') {
      found[key] = true;
    } else if (value === null || value === '') {
      continue; // export names the tag without a value
    } else if (key === 'env') {
      const eq = value.indexOf('=');
      env[(eq < 0 ? value : value.slice(0, eq)).trim()] =
        eq < 0 ? null : value.slice(eq + 1);
    } else if (key === 'secret') {
      secrets.push(value);
    } else {
      found[key] =
        key === 'retries' && /^\d+$/.test(value) ? Number(value) : value;
    }
  }
  const own = structuredSettings(metadata?.nb2pipe);
  if (isRecord(own.env)) {
    Object.assign(env, own.env);
  }
  const ownSecrets = typeof own.secret === 'string' ? [own.secret] : own.secret;
  for (const name of Array.isArray(ownSecrets) ? ownSecrets : []) {
    if (!secrets.includes(name)) {
      secrets.push(name);
    }
  }
  const merged: Record<string, unknown> = { ...found, ...own };
  const kale = (metadata?.tags ?? [])
    .map(tag => String(tag).trim())
    .find(tag => tag.startsWith(KALE_MEMORY_PREFIX));
  if (kale) {
    merged.memory = kale.slice(KALE_MEMORY_PREFIX.length);
  }
  delete merged.env;
  delete merged.secret;
  if (Object.keys(env).length) {
    merged.env = env;
  }
  if (secrets.length) {
    merged.secret = secrets;
  }
  return merged as ISettings;
}

/** The dialog's fields for `settings` (what a cell or the defaults hold). */
export function settingsToForm(settings: ISettings): ISettingsForm {
  const text = (value: unknown) =>
    value === undefined || value === null ? '' : String(value);
  return {
    timeout: text(settings.timeout),
    cellTimeout: text(settings['cell-timeout']),
    retries: text(settings.retries),
    memory: text(settings.memory),
    allowFailure: settings['allow-failure'] === true,
    kernel: text(settings.kernel),
    env: Object.entries(isRecord(settings.env) ? settings.env : {}).map(
      ([name, value]) => ({ name, value: text(value) })
    ),
    secrets: (Array.isArray(settings.secret) ? settings.secret : []).join(' '),
    trackEnv: settings['track-env'] === true
  };
}

/** The structured form of the dialog's fields; throws the first mistake as one line. */
export function formToSettings(form: ISettingsForm): ISettings {
  const settings: ISettings = {};
  const field = (label: string, check: () => void) => {
    try {
      check();
    } catch (error) {
      throw new Error(`${label}: ${(error as Error).message}`);
    }
  };
  field('timeout', () => {
    if (form.timeout.trim()) {
      settings.timeout = formatDuration(parseDuration(form.timeout));
    }
  });
  field('cell timeout', () => {
    if (form.cellTimeout.trim()) {
      settings['cell-timeout'] = formatDuration(
        parseDuration(form.cellTimeout)
      );
    }
  });
  field('retries', () => {
    const retries = form.retries.trim();
    if (retries && !/^\d+$/.test(retries)) {
      throw new Error(
        `'${form.retries}' is not a number of retries; write a whole number, 0 or more, e.g. 2`
      );
    }
    if (retries) {
      settings.retries = Number(retries);
    }
  });
  field('memory', () => {
    if (form.memory.trim()) {
      settings.memory = formatSize(parseSize(form.memory));
    }
  });
  if (form.allowFailure) {
    settings['allow-failure'] = true;
  }
  field('kernel', () => {
    const kernel = form.kernel.trim();
    if (kernel && !KERNEL_NAME_RE.test(kernel)) {
      throw new Error(
        `'${kernel}' is not a kernel name (letters, digits, '.', '_', '-')`
      );
    }
    if (kernel) {
      settings.kernel = kernel;
    }
  });
  const env = envOfRows(form.env);
  const secrets = secretNames(form.secrets);
  const both = secrets.find(name => name in env);
  if (both) {
    throw new Error(
      `${both} is both an environment variable and a secret; keep it as a secret (a secret has no written value)`
    );
  }
  if (Object.keys(env).length) {
    settings.env = env;
  }
  if (secrets.length) {
    settings.secret = secrets;
  }
  if (form.trackEnv) {
    settings['track-env'] = true;
  }
  return settings;
}

/** `after` with the flags `before` set to false and the dialog's checkboxes could only leave
 * unset: an explicit false overrides a default true, so it is kept. */
export function keepFalseFlags(before: ISettings, after: ISettings): ISettings {
  const kept: ISettings = { ...after };
  for (const flag of ['allow-failure', 'track-env'] as const) {
    if (before[flag] === false && kept[flag] === undefined) {
      kept[flag] = false;
    }
  }
  return kept;
}

function envOfRows(
  rows: { name: string; value: string }[]
): Record<string, string | null> {
  const env: Record<string, string | null> = {};
  for (const row of rows) {
    const name = row.name.trim();
    if (!name && !row.value) {
      continue; // an empty row
    }
    if (!ENV_NAME_RE.test(name)) {
      throw new Error(
        `env: '${name}' is not an environment variable name; use letters, digits and '_', not starting with a digit, e.g. MODE`
      );
    }
    if (name in env) {
      throw new Error(`env: ${name} is set twice; keep one row`);
    }
    if (row.value.includes('\0')) {
      throw new Error(`env: ${name}: the value holds a NUL character`);
    }
    env[name] = row.value === '' ? null : row.value;
  }
  return env;
}

function secretNames(text: string): string[] {
  const names: string[] = [];
  for (const name of text.split(/[\s,]+/).filter(Boolean)) {
    if (!ENV_NAME_RE.test(name)) {
      throw new Error(
        `secrets: '${name}' is not an environment variable name; use letters, digits and '_', e.g. API_TOKEN`
      );
    }
    if (!names.includes(name)) {
      names.push(name);
    }
  }
  return names;
}

/** `metadata.tags` and `metadata.nb2pipe` of a cell holding exactly `settings`: its settings
 * tags go (the structured form says it all), its other tags and keys stay. */
export function writeSettings(
  metadata: ICellMetadata | undefined | null,
  settings: ISettings
): IMetadataPatch {
  const tags = (metadata?.tags ?? []).filter(tag => !isSettingTag(tag));
  const previous = metadata?.nb2pipe;
  const structured: INb2pipeCellMetadata = isRecord(previous)
    ? { ...previous }
    : {};
  for (const key of SETTING_KEYS) {
    delete structured[key];
  }
  Object.assign(structured, settings);
  return {
    tags,
    nb2pipe: Object.keys(structured).length ? structured : null
  };
}

/** The notebook's `metadata.nb2pipe` with `defaults` replaced (null: no nb2pipe metadata left). */
export function writeDefaults(
  notebookMeta: unknown,
  settings: ISettings
): Record<string, unknown> | null {
  const ours: Record<string, unknown> = isRecord(notebookMeta)
    ? { ...notebookMeta }
    : {};
  delete ours[DEFAULTS_KEY];
  if (Object.keys(settings).length) {
    ours[DEFAULTS_KEY] = settings;
  }
  return Object.keys(ours).length ? ours : null;
}
