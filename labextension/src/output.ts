/**
 * The live output of a running stage in the sidebar: a small scrolling monospace box under the
 * stage with the last lines it printed (`job.stages[name].output`, see docs/openapi.yaml).
 *
 * The sidebar redraws its whole body on every change, so each stage's box is kept here and put
 * back: its element, and with it what the user scrolled to, lives across redraws. The box follows
 * new lines (scrolled to the end) until the user scrolls up, and again once they scroll back down.
 * Lines go in as text, never as HTML.
 */

import { el } from './dom';

/** The most lines a box shows (the server keeps as many per stage). */
export const OUTPUT_LINES = 200;

/** How close to the end (px) still counts as "at the end": the box keeps following. */
const AT_END_SLACK = 4;

/** The lines to show: the last `max` of them. */
export function shownLines(
  lines: readonly string[] | null | undefined,
  max = OUTPUT_LINES
): string[] {
  return (lines ?? []).slice(-max);
}

/** Whether a box scrolled to `top` shows its last line. */
export function isAtEnd(
  top: number,
  height: number,
  scrollHeight: number
): boolean {
  return scrollHeight - top - height <= AT_END_SLACK;
}

interface IBox {
  node: HTMLElement;
  text: string;
  follow: boolean;
  top: number;
}

export class OutputBoxes {
  /** The box of `stage` showing `lines`: the same element as at the last redraw. */
  box(stage: string, lines: readonly string[] | undefined): HTMLElement {
    let box = this._boxes.get(stage);
    if (!box) {
      const node = el('pre', 'jp-nb2pipe-output');
      node.dataset.stage = stage;
      node.tabIndex = 0; // scrollable with the keyboard
      node.setAttribute('role', 'log');
      node.setAttribute('aria-label', `output of stage ${stage}`);
      const created: IBox = { node, text: '', follow: true, top: 0 };
      node.addEventListener('scroll', () => {
        if (node.isConnected) {
          created.top = node.scrollTop;
          created.follow = isAtEnd(
            node.scrollTop,
            node.clientHeight,
            node.scrollHeight
          );
        }
      });
      box = created;
      this._boxes.set(stage, box);
    }
    const text = shownLines(lines).join('\n');
    if (text !== box.text) {
      box.node.textContent = text;
      box.text = text;
    }
    box.node.dataset.following = String(box.follow);
    return box.node;
  }

  /**
   * Once the boxes are in the page again: each one at its end, or where the user left it.
   * Boxes of stages not in `shown` are dropped.
   */
  settle(shown: ReadonlySet<string>): void {
    for (const [stage, box] of this._boxes) {
      if (!shown.has(stage)) {
        this._boxes.delete(stage);
      } else if (box.node.isConnected) {
        box.node.scrollTop = box.follow ? box.node.scrollHeight : box.top;
      }
    }
  }

  private _boxes = new Map<string, IBox>();
}
