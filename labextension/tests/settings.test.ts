/// <reference types="node" />
/**
 * The settings dialog's pure logic: the grammar (one table with nb2pipe/settings.py,
 * tests/fixtures/settings_grammar.json), reading a cell's settings as export merges them,
 * checking the dialog's fields, writing the structured form, the stage row's summary and the
 * clashes with the stage's other cells.
 */

import * as fs from 'fs';
import * as path from 'path';

import {
  cellSettings,
  formatDuration,
  formatSize,
  formToSettings,
  ISettingsForm,
  keepFalseFlags,
  parseDuration,
  parseSize,
  settingsToForm,
  writeDefaults,
  writeSettings
} from '../src/settings';
import {
  settingConflicts,
  settingsSummary,
  settingsTooltip
} from '../src/settingstext';

const TABLE = JSON.parse(
  fs.readFileSync(
    path.join(
      __dirname,
      '..',
      '..',
      'tests',
      'fixtures',
      'settings_grammar.json'
    ),
    'utf-8'
  )
);

describe('the grammar is export’s (shared table)', () => {
  it.each(TABLE.durations as [string, number | null][])(
    'duration %j',
    (text, seconds) => {
      if (seconds === null) {
        expect(() => parseDuration(text)).toThrow(/is not a duration/);
      } else {
        expect(parseDuration(text)).toBe(seconds);
      }
    }
  );
  it.each(TABLE.sizes as [string, number | null][])('size %j', (text, size) => {
    if (size === null) {
      expect(() => parseSize(text)).toThrow(/is not a size/);
    } else {
      expect(parseSize(text)).toBe(size);
    }
  });
  it.each(TABLE.formatted_durations as [number, string][])(
    'formats %d seconds',
    (seconds, text) => expect(formatDuration(seconds)).toBe(text)
  );
  it.each(TABLE.formatted_sizes as [number, string][])(
    'formats %d bytes',
    (size, text) => expect(formatSize(size)).toBe(text)
  );
});

const EMPTY: ISettingsForm = settingsToForm({});

describe('formToSettings', () => {
  it('writes the structured form, canonical, with only what is set', () => {
    expect(
      formToSettings({
        ...EMPTY,
        timeout: '5 m',
        retries: '2',
        memory: '4Gi',
        kernel: 'python3',
        env: [
          { name: 'MODE', value: 'fast' },
          { name: 'HOME', value: '' },
          { name: '', value: '' }
        ],
        secrets: 'API_TOKEN, DB_PASSWORD',
        allowFailure: true
      })
    ).toEqual({
      timeout: '5m',
      retries: 2,
      memory: '4GiB',
      'allow-failure': true,
      kernel: 'python3',
      env: { MODE: 'fast', HOME: null },
      secret: ['API_TOKEN', 'DB_PASSWORD']
    });
    expect(formToSettings(EMPTY)).toEqual({});
  });
  it.each([
    [{ timeout: 'soon' }, "timeout: 'soon' is not a duration"],
    [{ cellTimeout: '0' }, "cell timeout: '0' is not a duration"],
    [{ retries: 'two' }, "retries: 'two' is not a number of retries"],
    [{ retries: '-1' }, 'whole number'],
    [{ memory: 'lots' }, "memory: 'lots' is not a size"],
    [{ kernel: 'py thon' }, "kernel: 'py thon' is not a kernel name"],
    [
      { env: [{ name: '1BAD', value: 'x' }] },
      "env: '1BAD' is not an environment"
    ],
    [
      {
        env: [
          { name: 'A', value: '1' },
          { name: 'A', value: '2' }
        ]
      },
      'env: A is set twice'
    ],
    [{ secrets: 'MY-TOKEN' }, "secrets: 'MY-TOKEN' is not an environment"],
    [
      { env: [{ name: 'TOKEN', value: 'x' }], secrets: 'TOKEN' },
      'TOKEN is both an environment variable and a secret'
    ]
  ])('refuses %j in one line naming the field', (fields, message) => {
    expect(() => formToSettings({ ...EMPTY, ...fields })).toThrow(message);
  });
});

describe('cellSettings', () => {
  it('reads tags, then the structured form over them, env and secrets adding up', () => {
    expect(
      cellSettings({
        tags: [
          'stage:load',
          'timeout:30m',
          'retries:1',
          'env:A=tag',
          'env:HOME',
          'secret:S1',
          'allow-failure',
          'hide-input'
        ],
        nb2pipe: {
          stage: 'load',
          timeout: '2h',
          env: { A: 'meta' },
          secret: ['S2']
        }
      })
    ).toEqual({
      timeout: '2h',
      retries: 1,
      'allow-failure': true,
      env: { A: 'meta', HOME: null },
      secret: ['S1', 'S2']
    });
  });
  it("reads Kale's memory limit as export does: over the structured form", () => {
    expect(
      cellSettings({
        tags: ['block:load', 'limit:memory:2Gi', 'limit:cpu:1'],
        nb2pipe: { memory: '4GiB' }
      })
    ).toEqual({ memory: '2Gi' });
  });
  it('round-trips through the dialog', () => {
    const settings = {
      timeout: '30m',
      retries: 0,
      env: { A: 'x', B: null },
      secret: ['S'],
      'track-env': true
    };
    expect(formToSettings(settingsToForm(settings))).toEqual(settings);
  });
});

describe('writeSettings', () => {
  it('drops the settings tags, keeps the others and the other structured keys', () => {
    expect(
      writeSettings(
        {
          tags: [
            'stage:load',
            'timeout:30m',
            'env:A=1',
            'hide-input',
            'track-env'
          ],
          nb2pipe: { stage: 'load', deps: [], outs: [], after: [], retries: 3 }
        },
        { timeout: '5m', retries: 2 }
      )
    ).toEqual({
      tags: ['stage:load', 'hide-input'],
      nb2pipe: {
        stage: 'load',
        deps: [],
        outs: [],
        after: [],
        timeout: '5m',
        retries: 2
      }
    });
  });
  it("folds Kale's memory limit into the memory setting, keeping its other limits", () => {
    expect(
      writeSettings(
        { tags: ['block:load', 'limit:memory:2Gi', 'limit:cpu:1'] },
        { memory: '4GiB' }
      )
    ).toEqual({
      tags: ['block:load', 'limit:cpu:1'],
      nb2pipe: { memory: '4GiB' }
    });
  });
  it('removes the structured form when nothing is left', () => {
    expect(
      writeSettings({ tags: ['retries:2'], nb2pipe: { retries: 2 } }, {})
    ).toEqual({
      tags: [],
      nb2pipe: null
    });
  });
});

describe('writeDefaults', () => {
  it('replaces defaults, keeps other keys, and leaves nothing when empty', () => {
    expect(
      writeDefaults({ other: 1, defaults: { retries: 1 } }, { timeout: '1h' })
    ).toEqual({
      other: 1,
      defaults: { timeout: '1h' }
    });
    expect(writeDefaults({ defaults: { retries: 1 } }, {})).toBeNull();
    expect(writeDefaults(undefined, { retries: 1 })).toEqual({
      defaults: { retries: 1 }
    });
  });
});

describe('settingConflicts', () => {
  const others = [
    { number: 4, settings: { timeout: '1h', env: { A: 'other' } } },
    { number: 6, settings: { retries: 2 } }
  ];
  it('names the cell of each setting given two values', () => {
    const found = settingConflicts(
      { timeout: '30m', retries: 2, env: { A: 'mine' } },
      others
    );
    expect(found).toEqual([
      expect.stringMatching(
        /^cell 4 of this stage sets timeout to 1h, here to 30m: export refuses/
      ),
      expect.stringMatching(
        /^cell 4 of this stage sets env:A to 'other', here to 'mine'/
      )
    ]);
  });
  it('sees equal values written differently as one', () => {
    expect(settingConflicts({ timeout: '60m', retries: 2 }, others)).toEqual(
      []
    );
    expect(settingConflicts({}, others)).toEqual([]);
  });
});

describe('settingsSummary', () => {
  it('says what is set in a few characters', () => {
    expect(
      settingsSummary({ timeout: '30m', retries: 2, memory: '4GiB' })
    ).toBe('timeout 30m · ↻2 · 4GiB');
    expect(
      settingsSummary({
        'cell-timeout': '5m',
        'allow-failure': true,
        kernel: 'ir',
        env: { A: '1', B: null },
        secret: ['TOKEN'],
        'track-env': true
      })
    ).toBe(
      'cell timeout 5m · may fail · kernel ir · env A, B · secret TOKEN · track-env'
    );
    expect(settingsSummary({})).toBe('');
    expect(settingsSummary(undefined)).toBe('');
  });
});

describe('settingsTooltip', () => {
  it('spells each setting out, secrets as names', () => {
    expect(
      settingsTooltip({
        timeout: '30m',
        env: { A: '1', B: null },
        secret: ['S']
      })
    ).toBe(
      'timeout: 30m\nenv: A=1, B (passed through)\nsecret: S (values from the environment or .env)'
    );
    expect(settingsTooltip({})).toBe('');
  });
});

describe('keepFalseFlags', () => {
  it('keeps an explicit false the checkboxes cannot say (it overrides a default true)', () => {
    expect(
      keepFalseFlags(
        { 'allow-failure': false, 'track-env': false },
        { retries: 1 }
      )
    ).toEqual({ retries: 1, 'allow-failure': false, 'track-env': false });
    expect(
      keepFalseFlags({ 'allow-failure': false }, { 'allow-failure': true })
    ).toEqual({
      'allow-failure': true
    });
    expect(keepFalseFlags({}, {})).toEqual({});
  });
});
