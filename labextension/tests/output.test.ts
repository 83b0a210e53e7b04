/**
 * The pure parts of the live output box, the failure box and the progress words; what the page
 * shows is checked in the browser (tests/ui/test_lab_output.py).
 */

import { pathPieces } from '../src/failure';
import { displayState, failureView, progressText } from '../src/format';
import { isAtEnd, OUTPUT_LINES, shownLines } from '../src/output';
import { IJob, IStageStatus } from '../src/tokens';

describe('the live output box', () => {
  it('shows the last lines only', () => {
    const lines = Array.from({ length: OUTPUT_LINES + 5 }, (_, i) => `l${i}`);
    const shown = shownLines(lines);
    expect(shown.length).toBe(OUTPUT_LINES);
    expect(shown[0]).toBe('l5');
    expect(shown[shown.length - 1]).toBe(`l${OUTPUT_LINES + 4}`);
    expect(shownLines(undefined)).toEqual([]);
    expect(shownLines(['a', 'b', 'c'], 2)).toEqual(['b', 'c']);
  });

  it('follows new lines only while scrolled to the end', () => {
    expect(isAtEnd(300, 100, 400)).toBe(true);
    expect(isAtEnd(297, 100, 400)).toBe(true); // within a few pixels
    expect(isAtEnd(120, 100, 400)).toBe(false); // the user scrolled up
    expect(isAtEnd(0, 100, 80)).toBe(true); // nothing to scroll
  });
});

describe('the failure box', () => {
  it('cuts a path after each slash only, keeping every name whole', () => {
    expect(
      pathPieces('pipelines/analysis/runs/20261129-120102-ab12/train.ipynb')
    ).toEqual([
      'pipelines/',
      'analysis/',
      'runs/',
      '20261129-120102-ab12/',
      'train.ipynb'
    ]);
    expect(pathPieces('/abs/a_long-name.ipynb')).toEqual([
      '/',
      'abs/',
      'a_long-name.ipynb'
    ]);
    expect(pathPieces('x.ipynb')).toEqual(['x.ipynb']);
  });

  it('carries the traceback of the structured error', () => {
    const status: IStageStatus = {
      name: 'train',
      state: 'failed',
      reasons: [],
      metrics: {},
      cells: [],
      params: [],
      last_run: {
        outcome: 'failed',
        stage_error: {
          stage: 'train',
          ename: 'ValueError',
          evalue: 'boom',
          exception: 'ValueError: boom',
          cell: 'nb.ipynb cell 4',
          script: null,
          notebook: 'p/runs/1/train.ipynb',
          traceback: 'Traceback ...\nValueError: boom',
          message: "stage 'train' failed"
        }
      }
    };
    const view = failureView(status, null);
    expect(view.exception).toBe('ValueError: boom');
    expect(view.traceback).toBe('Traceback ...\nValueError: boom');
    const older = { ...status.last_run!.stage_error!, traceback: undefined };
    expect(
      failureView(
        { ...status, last_run: { outcome: 'failed', stage_error: older } },
        null
      ).traceback
    ).toBeNull();
  });
});

describe('a stage that failed in a running job', () => {
  it('shows failed at once, not its state before the run (recorded when the run ends)', () => {
    const stage: IStageStatus = {
      name: 'boom',
      state: 'never-run',
      reasons: ['never run'],
      last_run: null,
      metrics: {},
      cells: [],
      params: []
    };
    const running: IJob = {
      id: '1',
      pipeline: 'p',
      status: 'running',
      run: 'r',
      stages: { boom: { state: 'failed' }, talk: { state: 'running' } },
      errors: [],
      summary: null,
      started: 1,
      finished: null
    };
    expect(displayState(stage, running)).toBe('failed');
  });
});

describe('progress of a running stage', () => {
  const running = (fields: Record<string, unknown>) =>
    ({
      state: 'running',
      cell: 5,
      cells: 9,
      ...fields
    }) as IJob['stages'][string];

  it("counts the stage's own cells as the notebook numbers them, like the CLI", () => {
    expect(
      progressText(running({ notebook_cell: 14, position: 2, of: 5 }))
    ).toBe('notebook cell 14, 2 of 5');
    expect(
      progressText(
        running({ notebook_cell: 3, position: null, of: 5, role: 'setup' })
      )
    ).toBe('notebook cell 3 (setup)');
    expect(
      progressText(
        running({
          notebook_cell: null,
          position: null,
          of: 5,
          role: 'preparing'
        })
      )
    ).toBe('preparing');
    expect(
      progressText(
        running({
          notebook_cell: null,
          position: null,
          of: 5,
          role: 'finishing'
        })
      )
    ).toBe('finishing');
  });

  it('falls back to the executed notebook cells of an older server', () => {
    expect(progressText(running({}))).toBe('cell 5 of 9');
    expect(progressText({ state: 'running' })).toBe('starting…');
    expect(progressText({ state: 'ran' })).toBe('');
  });
});
