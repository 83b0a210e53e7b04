import {
  contrast,
  STAGE_PALETTE,
  stageColor,
  stageColors,
  textOn
} from '../src/colors';
import {
  findFailingCell,
  hiddenFolderHint,
  isExecutedNotebook
} from '../src/executed';
import {
  displayState,
  failureView,
  formatDuration,
  finishedJobText,
  formatMetric,
  progressText
} from '../src/format';
import { IJob, IStageError, IStageStatus } from '../src/tokens';

const stage = (name: string, state: IStageStatus['state']): IStageStatus => ({
  name,
  state,
  reasons: [],
  last_run: null,
  metrics: {},
  cells: [],
  params: []
});

const job = (stages: IJob['stages'], finished: number | null = null): IJob => ({
  id: '1',
  pipeline: 'p',
  status: finished ? 'ok' : 'running',
  run: 'r',
  stages,
  errors: [],
  summary: null,
  started: 0,
  finished
});

describe('stage colours', () => {
  it('keeps a stage its colour, from the palette', () => {
    expect(stageColor('train')).toBe(stageColor('train'));
    expect(STAGE_PALETTE).toContain(stageColor('load_data'));
    const names = ['load', 'train', 'evaluate'];
    expect(stageColors(names)).toEqual(stageColors([...names].reverse()));
  });

  it('gives twelve stages twelve different colours', () => {
    const names = [
      'load',
      'split',
      'train',
      'evaluate',
      'compare',
      'report',
      'a',
      'b',
      'c',
      'd',
      'features',
      'tune'
    ];
    expect(STAGE_PALETTE.length).toBeGreaterThanOrEqual(12);
    expect(new Set(stageColors(names).values()).size).toBe(12);
    for (let n = 1; n <= 12; n++) {
      const some = names.slice(0, n);
      expect(new Set(stageColors(some).values()).size).toBe(n);
    }
  });

  it('writes on every stage colour with text of at least 4.5:1 contrast (WCAG AA)', () => {
    for (const color of STAGE_PALETTE) {
      expect(contrast(color, textOn(color))).toBeGreaterThanOrEqual(4.5);
    }
    expect(textOn('#3b4cc0')).toBe('#ffffff');
    expect(textOn('#edc948')).toBe('#000000');
  });
});

describe('sidebar wording', () => {
  it('formats durations and metrics', () => {
    expect(formatDuration(7.234)).toBe('7.2 s');
    expect(formatDuration(42.6)).toBe('43 s');
    expect(formatDuration(125)).toBe('2 min 05 s');
    expect(formatDuration(null)).toBe('');
    expect(formatMetric(0.412345678)).toBe('0.4123');
    expect(formatMetric(3)).toBe('3');
  });

  it('shows a running job over the last status', () => {
    const running = job({
      a: { state: 'running', cell: 2, cells: 5 },
      b: { state: 'pending' }
    });
    expect(displayState(stage('a', 'stale'), running)).toBe('running');
    expect(displayState(stage('b', 'never-run'), running)).toBe('queued');
    expect(displayState(stage('c', 'up-to-date'), running)).toBe('up-to-date');
    expect(
      displayState(stage('a', 'failed'), job({ a: { state: 'running' } }, 5))
    ).toBe('failed');
    expect(progressText(running.stages.a)).toBe('cell 2 of 5');
    expect(progressText(running.stages.b)).toBe('');
  });
});

describe('findFailingCell', () => {
  const cells = [
    { metadata: { title: 'nb cell 2 (setup)' }, outputs: [] },
    { metadata: { title: 'nb cell 10' }, outputs: [{ output_type: 'error' }] },
    {
      metadata: {},
      outputs: [{ output_type: 'stream' }, { output_type: 'error' }]
    }
  ];
  it('matches the title the runner reported', () => {
    expect(findFailingCell(cells, 'nb cell 10')).toBe(1);
  });
  it('prefers a cell with an error output over a titled cell without one', () => {
    expect(findFailingCell(cells, 'nb cell 2 (setup)')).toBe(1);
  });
  it('falls back to the first cell with an error output, then to the title', () => {
    expect(findFailingCell([cells[0], cells[2]], 'unknown')).toBe(1);
    expect(findFailingCell([cells[0]], null)).toBe(-1);
    expect(findFailingCell([cells[0]], 'nb cell 2 (setup)')).toBe(0);
  });
  it('recognises executed notebooks', () => {
    expect(
      isExecutedNotebook('pipelines/nb/runs/20261126-120102-ab12/train.ipynb')
    ).toBe(true);
    expect(isExecutedNotebook('runs/20261126-120102-ab12/a.ipynb')).toBe(true);
    expect(isExecutedNotebook('pipelines/nb/.nb2pipe/dvc-runs/a.ipynb')).toBe(
      true
    );
    expect(isExecutedNotebook('analysis/runs/notes.ipynb')).toBe(false);
    expect(isExecutedNotebook('pipelines/nb/stages/train.ipynb')).toBe(false);
  });
  it('explains hidden folders', () => {
    expect(hiddenFolderHint('p/.nb2pipe/runs/1/a.ipynb')).toMatch(
      /hidden folder '.nb2pipe'/
    );
    expect(hiddenFolderHint('p/runs/a.ipynb')).toBe('');
  });
});

describe('failureView', () => {
  const error: IStageError = {
    stage: 'train',
    ename: 'ValueError',
    evalue: 'alpha must be >= 0',
    exception: 'ValueError: alpha must be >= 0',
    cell: 'nb.ipynb cell 5',
    script: 'pipelines/nb/stages/train.py',
    notebook: 'pipelines/nb/runs/20261126-120102-ab12/train.ipynb',
    message:
      "stage 'train' failed in nb.ipynb cell 5 (pipelines/nb/stages/train.py): ValueError: alpha must be >= 0; open pipelines/nb/runs/20261126-120102-ab12/train.ipynb"
  };
  const failed = (lastRun: IStageStatus['last_run']): IStageStatus => ({
    ...stage('train', 'failed'),
    last_run: lastRun
  });

  it('shows the exception and the cell of the job that failed, and opens its notebook there', () => {
    const running = job({
      train: {
        state: 'failed',
        error: error.message,
        notebook: error.notebook,
        cell: error.cell
      }
    });
    running.stage_errors = [
      { ...error, stage: 'other', cell: 'nb.ipynb cell 1' },
      error
    ];
    const view = failureView(failed(null), running);
    expect(view).toEqual({
      exception: 'ValueError: alpha must be >= 0',
      cell: 'in nb.ipynb cell 5',
      message: error.message,
      notebook: error.notebook,
      openCell: 'nb.ipynb cell 5',
      traceback: null
    });
  });

  it('shows the structured error of the last run when no job ran the stage', () => {
    const older = {
      ...error,
      evalue: 'old',
      exception: 'KeyError: old',
      cell: 'nb.ipynb cell 3',
      notebook: 'p/runs/1/train.ipynb'
    };
    const view = failureView(
      failed({
        outcome: 'failed',
        error: 'KeyError: old',
        notebook: 'p/runs/1/train.ipynb',
        stage_error: older
      }),
      job({})
    );
    expect(view.exception).toBe('KeyError: old');
    expect(view.cell).toBe('in nb.ipynb cell 3');
    expect(view.notebook).toBe('p/runs/1/train.ipynb');
    expect(view.openCell).toBe('nb.ipynb cell 3');
  });

  it('falls back to the message when only a message is known', () => {
    const view = failureView(
      failed({
        outcome: 'failed',
        error: 'ValueError: boom',
        notebook: 'p/a.ipynb'
      }),
      null
    );
    expect(view).toEqual({
      exception: 'ValueError: boom',
      cell: '',
      message: 'ValueError: boom',
      notebook: 'p/a.ipynb',
      openCell: null,
      traceback: null
    });
    expect(failureView(failed(null), null).exception).toBe(
      'the last run failed'
    );
  });
});

describe('finishedJobText', () => {
  const finished = (
    status: IJob['status'],
    summary: string | null,
    errors: string[] = []
  ): IJob => ({
    id: 'j',
    pipeline: 'p',
    status,
    run: null,
    stages: {},
    errors,
    summary,
    started: 1,
    finished: 2
  });

  it('says why a run failed when the server gave a reason', () => {
    expect(
      finishedJobText(
        finished('failed', null, [
          "pipeline 'pipelines/wine' is already running (pid 4242); wait for it to finish, or pass --wait to queue behind it"
        ])
      )
    ).toBe(
      "Run failed: pipeline 'pipelines/wine' is already running (pid 4242); wait for it to finish, or pass --wait to queue behind it"
    );
    expect(
      finishedJobText(
        finished(
          'failed',
          '1 ran, 0 up to date, 0 restored from cache, 1 failed',
          ['the run stopped without finishing (it was killed)']
        )
      )
    ).toBe(
      '1 ran, 0 up to date, 0 restored from cache, 1 failed — the run stopped without finishing (it was killed)'
    );
  });

  it('keeps the summary of a run that went well, and the plain words otherwise', () => {
    expect(
      finishedJobText(
        finished('ok', '2 ran, 1 up to date, 0 restored from cache, 0 failed')
      )
    ).toBe('2 ran, 1 up to date, 0 restored from cache, 0 failed');
    expect(finishedJobText(finished('failed', null))).toBe('Run failed.');
    expect(finishedJobText(finished('cancelled', null, ['cancelled']))).toBe(
      'Run cancelled.'
    );
  });
});
