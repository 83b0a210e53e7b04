import {
  declaredStages,
  describeCells,
  normalize,
  readRoles,
  secondParametersCell,
  setFiles,
  setFlag,
  setStage,
  slugify,
  stageOfCells,
  validateStageName
} from '../src/tags';

describe('validateStageName', () => {
  it.each(['train', '_x', 'a-b_c1', 'a'.repeat(64)])('accepts %s', name => {
    expect(validateStageName(name)).toBeNull();
  });
  it.each(['Train', '1st', 'has space', 'a'.repeat(65), 'é'])(
    'rejects %s',
    name => {
      expect(validateStageName(name)).toMatch(/not a valid stage name/);
    }
  );
  it('asks for a name when empty', () => {
    expect(validateStageName('')).toMatch(/enter a stage name/);
  });
});

describe('readRoles', () => {
  it('reads nb2pipe tags and Kale aliases', () => {
    const roles = readRoles({
      tags: [
        'block:train',
        'prev:load',
        'in:./data/x.csv',
        'out:m.pkl',
        'pipeline-metrics',
        'hide-input'
      ]
    });
    expect(roles).toEqual({
      stage: 'train',
      parameters: false,
      setup: false,
      skip: false,
      metrics: true,
      deps: ['data/x.csv'],
      outs: ['m.pkl'],
      after: ['load']
    });
    expect(readRoles({ tags: ['imports'] }).setup).toBe(true);
    expect(readRoles({ tags: ['pipeline-parameters'] }).parameters).toBe(true);
  });

  it('lets metadata.nb2pipe win over tags and unions the lists', () => {
    const roles = readRoles({
      tags: ['stage:old', 'in:a.csv'],
      nb2pipe: { stage: 'new', deps: ['b.csv'], outs: [], after: ['x'] }
    });
    expect(roles.stage).toBe('new');
    expect(roles.deps).toEqual(['a.csv', 'b.csv']);
    expect(roles.after).toEqual(['x']);
  });

  it('treats an empty Kale block: as no stage', () => {
    expect(readRoles({ tags: ['block:'] }).stage).toBeNull();
  });
});

describe('editing keeps tags and metadata.nb2pipe consistent', () => {
  it('sets a stage in both places, keeping other tags in place', () => {
    const patch = setStage({ tags: ['hide-input', 'skip'] }, 'train');
    expect(patch.tags).toEqual(['stage:train', 'hide-input', 'skip']);
    expect(patch.nb2pipe).toEqual({
      stage: 'train',
      deps: [],
      outs: [],
      after: []
    });
  });

  it('replaces Kale stage tags and the metadata stage', () => {
    const patch = setStage(
      {
        tags: ['block:old', 'prev:load'],
        nb2pipe: { stage: 'old', after: ['load'] }
      },
      'fit'
    );
    expect(patch.tags).toEqual(['stage:fit', 'prev:load']);
    expect(patch.nb2pipe).toEqual({
      stage: 'fit',
      deps: [],
      outs: [],
      after: ['load']
    });
  });

  it('removes a stage from both places; empty metadata is deleted', () => {
    const patch = setStage(
      { tags: ['stage:fit'], nb2pipe: { stage: 'fit' } },
      null
    );
    expect(patch).toEqual({ tags: [], nb2pipe: null });
  });

  it('refuses a bad stage name', () => {
    expect(() => setStage({}, 'Bad Name')).toThrow(/not a valid stage name/);
  });

  it('marks and unmarks flags, removing every alias', () => {
    expect(setFlag({}, 'skip', true)).toEqual({
      tags: ['skip'],
      nb2pipe: null
    });
    expect(
      setFlag({ tags: ['imports', 'functions', 'x'] }, 'setup', false).tags
    ).toEqual(['x']);
    expect(setFlag({ tags: ['imports'] }, 'setup', true).tags).toEqual([
      'imports'
    ]);
    expect(setFlag({ tags: ['stage:a'] }, 'metrics', true)).toEqual({
      tags: ['stage:a', 'metrics'],
      nb2pipe: { stage: 'a', deps: [], outs: [], after: [] }
    });
  });

  it('declares and removes files', () => {
    const added = setFiles({ tags: ['stage:a', 'in:old.csv'] }, 'in', [
      './new.csv',
      'x/',
      'new.csv'
    ]);
    expect(added.tags).toEqual(['stage:a', 'in:new.csv', 'in:x/']);
    expect(added.nb2pipe).toEqual({
      stage: 'a',
      deps: ['new.csv', 'x/'],
      outs: [],
      after: []
    });
    const removed = setFiles(
      { tags: added.tags, nb2pipe: added.nb2pipe! },
      'in',
      []
    );
    expect(removed.tags).toEqual(['stage:a']);
    expect(removed.nb2pipe).toEqual({
      stage: 'a',
      deps: [],
      outs: [],
      after: []
    });
  });

  it('keeps unknown keys of metadata.nb2pipe', () => {
    const patch = setFlag(
      { tags: ['stage:a'], nb2pipe: { stage: 'a', future: 1 } },
      'skip',
      true
    );
    expect(patch.nb2pipe).toEqual({
      stage: 'a',
      future: 1,
      deps: [],
      outs: [],
      after: []
    });
  });

  it('normalize repairs a hand edit (metadata only)', () => {
    expect(normalize({ nb2pipe: { stage: 'a', outs: ['o.csv'] } })).toEqual({
      tags: ['stage:a', 'out:o.csv'],
      nb2pipe: { stage: 'a', deps: [], outs: ['o.csv'], after: [] }
    });
  });
});

describe('stageOfCells', () => {
  it('lets cells after a stage tag inherit it until the next one', () => {
    expect(
      stageOfCells([
        ['imports'],
        ['parameters'],
        ['stage:load'],
        [],
        ['out:x'],
        ['skip'],
        ['stage:train'],
        []
      ])
    ).toEqual([null, null, 'load', 'load', 'load', null, 'train', 'train']);
  });

  it('handles the Kale notebook vocabulary', () => {
    expect(
      stageOfCells([
        ['block:load_data'],
        ['block:'],
        ['block:train', 'prev:load_data'],
        ['pipeline-metrics']
      ])
    ).toEqual(['load_data', 'load_data', 'train', 'train']);
  });

  it('gives no stage to cells above the first stage tag', () => {
    expect(stageOfCells([[], ['stage:a']])).toEqual([null, 'a']);
  });

  it('uses metadata.nb2pipe', () => {
    expect(stageOfCells([{ tags: [], nb2pipe: { stage: 'm' } }, []])).toEqual([
      'm',
      'm'
    ]);
  });

  it('does not let markdown or raw cells start a stage, nor get one', () => {
    expect(
      stageOfCells([
        ['stage:a'],
        { cellType: 'markdown', tags: ['stage:b'] },
        { cellType: 'raw' },
        []
      ])
    ).toEqual(['a', null, null, 'a']);
  });

  it('splits an untagged notebook at level-2 headings, like the exporter', () => {
    const cells = [
      { cellType: 'markdown', source: '# Title' },
      { cellType: 'code' },
      { cellType: 'markdown', source: '## Load the data' },
      { cellType: 'code' },
      { cellType: 'markdown', source: '```\n## not a heading\n```\n### sub' },
      { cellType: 'code' },
      { cellType: 'markdown', source: '## Load the data' },
      { cellType: 'code', tags: ['skip'] },
      { cellType: 'code' }
    ];
    const described = describeCells(cells);
    expect(described.map(d => d.stage)).toEqual([
      null,
      null,
      null,
      'load_the_data',
      null,
      'load_the_data',
      null,
      null,
      'load_the_data_2'
    ]);
    expect(described[3]).toEqual({
      stage: 'load_the_data',
      role: 'stage',
      inferred: true,
      starts: false
    });
    expect(described[7].role).toBe('skip');
  });

  it('reports roles of cells outside stages', () => {
    expect(
      describeCells([['parameters'], ['setup'], ['skip'], ['stage:a']]).map(
        d => d.role
      )
    ).toEqual(['parameters', 'setup', 'skip', 'stage']);
  });
});

describe('declaredStages and slugify', () => {
  it('lists declared stages once, in order', () => {
    expect(
      declaredStages([
        ['stage:b'],
        [],
        ['block:a'],
        ['stage:b'],
        { nb2pipe: { stage: 'c' } }
      ])
    ).toEqual(['b', 'a', 'c']);
  });

  it.each([
    ['Train a model!', 'train_a_model'],
    ['1. Load', 's_1_load'],
    ['`code` and **bold**', 'code_and_bold'],
    ['!!!', 'stage']
  ])('slugify(%s) = %s', (text, slug) => {
    expect(slugify(text)).toBe(slug);
  });
});

describe('secondParametersCell', () => {
  const cells = [
    { cellType: 'markdown', source: '# Title' },
    { tags: ['pipeline-parameters'] }, // Kale's name for it
    { tags: ['stage:load'] },
    { tags: [] },
    { nb2pipe: {} }
  ];

  it('refuses a second parameters cell, in the words export uses', () => {
    expect(secondParametersCell(cells, [3])).toBe(
      'two parameters cells: cell 2 and cell 4; merge them into one'
    );
    expect(
      secondParametersCell(
        [{ tags: [] }, { tags: ['parameters'] }, { tags: [] }],
        [0]
      )
    ).toBe('two parameters cells: cell 1 and cell 2; merge them into one');
  });

  it('refuses two cells marked at once', () => {
    expect(secondParametersCell([{}, {}, {}], [0, 2])).toBe(
      'two parameters cells: cell 1 and cell 3; merge them into one'
    );
  });

  it('lets the first one be marked, or the same one again; markdown does not count', () => {
    expect(secondParametersCell([{}, {}], [1])).toBeNull();
    expect(secondParametersCell(cells, [1])).toBeNull();
    expect(
      secondParametersCell(
        [{ cellType: 'markdown', tags: ['parameters'] }, {}],
        [1]
      )
    ).toBeNull();
  });
});
