/**
 * What the UI says about settings (pure): the short summary on a stage's row in the sidebar,
 * and the other cells of a stage whose settings clash with the dialog's (export refuses a
 * setting with two values, naming both cells; the dialog names the cell first).
 */

import {
  ISettings,
  parseDuration,
  parseSize,
  SETTING_KEYS,
  SettingKey
} from './settings';

/** A short summary, e.g. "timeout 30m · ↻2 · 4GiB"; empty when nothing is set. */
export function settingsSummary(settings: ISettings | undefined): string {
  if (!settings) {
    return '';
  }
  const parts: string[] = [];
  if (settings.timeout) {
    parts.push(`timeout ${settings.timeout}`);
  }
  if (settings['cell-timeout']) {
    parts.push(`cell timeout ${settings['cell-timeout']}`);
  }
  if (settings.retries !== undefined && settings.retries !== null) {
    parts.push(`↻${settings.retries}`);
  }
  if (settings.memory) {
    parts.push(settings.memory);
  }
  if (settings['allow-failure']) {
    parts.push('may fail');
  }
  if (settings.kernel) {
    parts.push(`kernel ${settings.kernel}`);
  }
  const env = Object.keys(settings.env ?? {});
  if (env.length) {
    parts.push(`env ${env.join(', ')}`);
  }
  if (settings.secret?.length) {
    parts.push(`secret ${settings.secret.join(', ')}`);
  }
  if (settings['track-env']) {
    parts.push('track-env');
  }
  return parts.join(' · ');
}

/** What each summary part means, for the row's tooltip. */
export function settingsTooltip(settings: ISettings | undefined): string {
  if (!settings || !Object.keys(settings).length) {
    return '';
  }
  const lines = SETTING_KEYS.filter(key => settings[key] !== undefined).map(
    key => `${key}: ${shown(key, settings[key])}`
  );
  return lines.join('\n');
}

function shown(key: SettingKey, value: unknown): string {
  if (key === 'env') {
    return Object.entries(value as Record<string, string | null>)
      .map(([name, v]) =>
        v === null ? `${name} (passed through)` : `${name}=${v}`
      )
      .join(', ');
  }
  if (key === 'secret') {
    return `${(value as string[]).join(', ')} (values from the environment or .env)`;
  }
  return String(value);
}

/** A stage's cell and its settings (`number`: 1-based over the notebook, as export counts). */
export interface ICellSettings {
  number: number;
  settings: ISettings;
}

/** One line per setting another cell of the stage gives another value; none: []. */
export function settingConflicts(
  chosen: ISettings,
  others: ICellSettings[]
): string[] {
  const conflicts: string[] = [];
  for (const { number, settings } of others) {
    for (const key of SETTING_KEYS) {
      if (key === 'env' || key === 'secret') {
        continue;
      }
      const mine = chosen[key];
      const theirs = settings[key];
      if (mine === undefined || theirs === undefined) {
        continue;
      }
      if (comparable(key, mine) !== comparable(key, theirs)) {
        conflicts.push(clash(number, key, String(theirs), String(mine)));
      }
    }
    for (const [name, value] of Object.entries(settings.env ?? {})) {
      const mine = chosen.env?.[name];
      if (mine !== undefined && mine !== value) {
        conflicts.push(
          clash(number, `env:${name}`, envShown(value), envShown(mine))
        );
      }
    }
  }
  return conflicts;
}

function clash(
  cell: number,
  what: string,
  theirs: string,
  mine: string
): string {
  return (
    `cell ${cell} of this stage sets ${what} to ${theirs}, here to ${mine}: ` +
    `export refuses two values; remove it from cell ${cell} or keep ${theirs} here`
  );
}

function envShown(value: string | null): string {
  return value === null ? '(passed through)' : `'${value}'`;
}

/** A value as export compares it: durations in seconds, sizes in bytes. */
function comparable(key: SettingKey, value: unknown): string {
  try {
    if (key === 'timeout' || key === 'cell-timeout') {
      return String(parseDuration(String(value)));
    }
    if (key === 'memory') {
      return String(parseSize(String(value)));
    }
  } catch {
    // a bad value is export's to name; compared as written
  }
  return String(value);
}
