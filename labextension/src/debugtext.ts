/** The words of debugging a failed stage (debug.ts), kept free of JupyterLab for the tests. */

/** "Debug: running 7 cells up to the failing cell 8…" (cells counted from 1). */
export function runningText(
  failedIndex: number | null,
  cellCount: number
): string {
  if (failedIndex === null) {
    return `Debug: running all ${cellCount} cells (this run did not fail)…`;
  }
  const above = failedIndex === 1 ? '1 cell' : `${failedIndex} cells`;
  return `Debug: running ${above} up to the failing cell ${failedIndex + 1}…`;
}

/** "Debug: stopped before cell 8, where the run failed: ValueError: boom". */
export function stoppedText(
  failedIndex: number | null,
  error: string | null
): string {
  if (failedIndex === null) {
    return 'Debug: ran every cell; the run this notebook replays did not fail.';
  }
  const why = error ? `: ${error}` : '';
  return `Debug: stopped before cell ${failedIndex + 1}, where the run failed${why}`;
}

/** "Debug: cell 3 raised ZeroDivisionError: …; the cells after it did not run." */
export function raisedText(index: number, error: string): string {
  return `Debug: cell ${index + 1} raised ${error} before the failing cell; stopped there.`;
}

/** One line on the inputs that changed since the run, or null. */
export function changedWarning(changed: string[]): string | null {
  if (!changed.length) {
    return null;
  }
  return `Changed since the run, so not what it read: ${changed.join(', ')}`;
}

/** True for a notebook `nb2pipe debug` writes: `<pipeline>/debug/<stage>.ipynb`. */
export function isDebugNotebook(path: string): boolean {
  return /(^|\/)pipelines\/[^/]+\/debug\/[^/]+\.ipynb$/.test(path);
}
