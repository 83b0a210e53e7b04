import {
  changedFromDefaults,
  diffLines,
  eachMetricOnce,
  formatAgo,
  formatAssignments,
  metricsOnce,
  paramText,
  parseParamValue
} from '../src/historyformat';
import { IParameter, IRunDiff } from '../src/tokens';

const param = (
  name: string,
  type: IParameter['type'],
  value: unknown = null
): IParameter => ({ name, type, default: value, stages: [] });

describe('parseParamValue', () => {
  it.each([
    ['int', '3', 3],
    ['int', ' -12 ', -12],
    ['float', '0.5', 0.5],
    ['float', '2', 2],
    ['float', '1e-3', 0.001],
    ['bool', 'true', true],
    ['bool', 'false', false],
    ['str', ' a b ', ' a b '],
    ['str', '', ''],
    ['list', '[1, "a"]', [1, 'a']],
    ['dict', '{"k": [1]}', { k: [1] }],
    ['none', 'null', null],
    ['none', '7', 7]
  ] as [IParameter['type'], string, unknown][])(
    'a %s from %j',
    (type, text, value) => {
      expect(parseParamValue(param('p', type), text)).toEqual({
        ok: true,
        value
      });
    }
  );

  it.each([
    [
      'int',
      '2.5',
      "parameter 'n' must be a whole number (an int, e.g. 3), not '2.5'"
    ],
    [
      'int',
      '',
      "parameter 'n' must be a whole number (an int, e.g. 3), not ''"
    ],
    [
      'float',
      'abc',
      "parameter 'n' must be a number (a float, e.g. 0.5), not 'abc'"
    ],
    [
      'float',
      'Infinity',
      "parameter 'n' must be a number (a float, e.g. 0.5), not 'Infinity'"
    ],
    ['bool', 'yes', "parameter 'n' must be true or false, not 'yes'"],
    ['list', '{"a": 1}', "parameter 'n' must be a JSON list, e.g. [1, 2]"],
    [
      'list',
      '[1,',
      "parameter 'n' must be a JSON list, e.g. [1, 2]; '[1,' is not valid JSON"
    ],
    ['dict', '[1]', 'parameter \'n\' must be a JSON object, e.g. {"a": 1}']
  ] as [IParameter['type'], string, string][])(
    'a bad %s from %j says which parameter and why',
    (type, text, error) => {
      expect(parseParamValue(param('n', type), text)).toEqual({
        ok: false,
        error
      });
    }
  );
});

describe('paramText', () => {
  it('shows a float default as a float and JSON for the rest', () => {
    expect(paramText('float', 1)).toBe('1.0');
    expect(paramText('float', 0.25)).toBe('0.25');
    expect(paramText('int', 3)).toBe('3');
    expect(paramText('str', 'x y')).toBe('x y');
    expect(paramText('list', [1, 2])).toBe('[1,2]');
    expect(paramText('none', null)).toBe('null');
  });

  it('reads back what it shows', () => {
    for (const [type, value] of [
      ['float', 1],
      ['float', 0.1],
      ['int', -4],
      ['str', '"quoted"'],
      ['dict', { a: [1, null] }]
    ] as [IParameter['type'], unknown][]) {
      expect(parseParamValue(param('p', type), paramText(type, value))).toEqual(
        { ok: true, value }
      );
    }
  });
});

describe('the history rows', () => {
  it('lists the values that differ from the defaults, in the parameters order', () => {
    const parameters = [
      param('n', 'int', 3),
      param('rate', 'float', 0.5),
      param('sizes', 'list', [1, 2])
    ];
    expect(
      changedFromDefaults({ sizes: [1, 2], rate: 0.25, n: 5 }, parameters)
    ).toEqual({ n: 5, rate: 0.25 });
    expect(formatAssignments({ n: 5, rate: 0.123456 })).toBe(
      'n=5, rate=0.1235'
    );
  });

  it('says when in words', () => {
    const now = 1_000_000 * 1000;
    expect(formatAgo(1_000_000 - 5, now)).toBe('just now');
    expect(formatAgo(1_000_000 - 150, now)).toBe('2 min ago');
    expect(formatAgo(1_000_000 - 7300, now)).toBe('2 h ago');
    expect(formatAgo(1_000_000 - 86400, now)).toBe('1 day ago');
    expect(formatAgo(1_000_000 - 3 * 86400, now)).toBe('3 days ago');
  });

  it('names each metric once, as nb2pipe diff does', () => {
    expect(
      metricsOnce({
        mse: 0.2,
        'train.mse': 0.2,
        'check.r2': 0.6,
        'train.r2': 0.9
      })
    ).toEqual({ mse: 0.2, 'check.r2': 0.6, 'train.r2': 0.9 });
    const rows = ['mse', 'train.mse', 'check.r2'].map(name => ({
      name,
      a: 1,
      b: 1,
      changed: false
    }));
    expect(eachMetricOnce(rows).map(row => row.name)).toEqual([
      'mse',
      'check.r2'
    ]);
  });
});

describe('diffLines', () => {
  const diff: IRunDiff = {
    a: 'run-a',
    b: 'run-b',
    params: [
      { name: 'n', a: 3, b: 5, changed: true },
      { name: 'seed', a: 1, b: 1, changed: false }
    ],
    metrics: [
      { name: 'score', a: 1.5, b: 1.25, changed: true, change: -0.25 },
      { name: 'score2', a: 1, b: 3, changed: true, change: 2 },
      { name: 'train.score', a: 1.5, b: 1.25, changed: true, change: -0.25 },
      { name: 'same', a: 1, b: 1, changed: false, change: 0 }
    ],
    outputs: [
      {
        name: 'a.txt',
        a: 'blake3:0123456789ab',
        b: 'blake3:ffff456789ab',
        changed: true
      },
      { name: 'new.txt', a: null, b: 'blake3:aa', changed: true },
      { name: 'kept.txt', a: 'blake3:aa', b: 'blake3:aa', changed: false }
    ]
  };

  it('keeps what changed: params, each metric once with its change, outputs', () => {
    expect(diffLines(diff)).toEqual([
      { section: 'params', name: 'n', a: '3', b: '5', change: 'changed' },
      {
        section: 'metrics',
        name: 'score',
        a: '1.5',
        b: '1.25',
        change: '-0.25'
      },
      { section: 'metrics', name: 'score2', a: '1', b: '3', change: '+2' },
      {
        section: 'outputs',
        name: 'a.txt',
        a: '01234567',
        b: 'ffff4567',
        change: 'changed'
      },
      { section: 'outputs', name: 'new.txt', a: '-', b: 'aa', change: 'added' }
    ]);
  });

  it('is empty for two runs alike', () => {
    expect(
      diffLines({ a: 'x', b: 'y', params: [], metrics: [], outputs: [] })
    ).toEqual([]);
  });
});
