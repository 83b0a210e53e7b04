import {
  changedWarning,
  isDebugNotebook,
  raisedText,
  runningText,
  stoppedText
} from '../src/debugtext';

describe('the debug status lines', () => {
  it('count the cells above the failing one and name it from 1', () => {
    expect(runningText(7, 7)).toBe(
      'Debug: running 7 cells up to the failing cell 8…'
    );
    expect(runningText(1, 1)).toBe(
      'Debug: running 1 cell up to the failing cell 2…'
    );
    expect(stoppedText(7, 'ValueError: boom')).toBe(
      'Debug: stopped before cell 8, where the run failed: ValueError: boom'
    );
  });

  it('say when the run did not fail or an earlier cell raised', () => {
    expect(runningText(null, 5)).toBe(
      'Debug: running all 5 cells (this run did not fail)…'
    );
    expect(stoppedText(null, null)).toContain('did not fail');
    expect(raisedText(2, 'KeyError: x')).toBe(
      'Debug: cell 3 raised KeyError: x before the failing cell; stopped there.'
    );
  });

  it('warn about changed inputs in one line, or not at all', () => {
    expect(changedWarning([])).toBeNull();
    expect(changedWarning(['data.csv', 'b.txt'])).toBe(
      'Changed since the run, so not what it read: data.csv, b.txt'
    );
  });

  it('know a debug notebook by its place in the pipeline folder', () => {
    expect(isDebugNotebook('work/pipelines/wine/debug/train.ipynb')).toBe(true);
    expect(isDebugNotebook('pipelines/wine/debug/train.ipynb')).toBe(true);
    expect(isDebugNotebook('work/debug/train.ipynb')).toBe(false);
    expect(isDebugNotebook('work/pipelines/wine/stages/train.ipynb')).toBe(
      false
    );
  });
});
