/**
 * One colour per stage, distinct within a notebook: each stage prefers the palette entry its
 * name hashes to (FNV-1a), so a stage keeps its colour across cells, notebooks and reloads; a
 * stage whose entry is taken by another stage of the same notebook takes the next free one.
 * With up to STAGE_PALETTE.length stages, no two share a colour. Text on a stage colour is
 * black or white, whichever contrasts more (at least 4.58:1 for any colour, WCAG AA).
 */

/** Twelve colours that read on light and dark themes (Tableau 10, grey replaced, and two of D3's). */
export const STAGE_PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#b07aa1',
  '#76b7b2',
  '#edc948',
  '#9c755f',
  '#ff9da7',
  '#3b4cc0',
  '#bcbd22',
  '#17becf'
];

/** 32-bit FNV-1a hash of a string (UTF-16 code units). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/**
 * The colour of each stage of `names` (the stages of one notebook or pipeline): distinct while
 * there are no more stages than colours, the same for the same set of names in any order.
 */
export function stageColors(names: Iterable<string>): Map<string, string> {
  const unique = [...new Set(names)].sort();
  const taken = new Set<number>();
  const colors = new Map<string, string>();
  for (const name of unique) {
    let index = fnv1a(name) % STAGE_PALETTE.length;
    for (
      let probe = 0;
      probe < STAGE_PALETTE.length && taken.has(index);
      probe++
    ) {
      index = (index + 1) % STAGE_PALETTE.length;
    }
    taken.add(index);
    if (taken.size >= STAGE_PALETTE.length) {
      taken.clear(); // more stages than colours: start sharing
    }
    colors.set(name, STAGE_PALETTE[index]);
  }
  return colors;
}

/** The colour of stage `name` among the stages `names` (default: alone). */
export function stageColor(
  name: string,
  names: Iterable<string> = [name]
): string {
  return stageColors([...names, name]).get(name)!;
}

/** WCAG relative luminance of a `#rrggbb` colour. */
function luminance(hex: string): number {
  const channel = (i: number) => {
    const value = parseInt(hex.slice(i, i + 2), 16) / 255;
    return value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

/** WCAG contrast ratio of two `#rrggbb` colours. */
export function contrast(a: string, b: string): number {
  const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (high + 0.05) / (low + 0.05);
}

/** Black or white, whichever reads better on `background`. */
export function textOn(background: string): string {
  return contrast(background, '#ffffff') >= contrast(background, '#000000')
    ? '#ffffff'
    : '#000000';
}

/** Set a stage's colour and the text colour that reads on it as CSS variables of `node`. */
export function paintStage(node: HTMLElement, color: string): void {
  node.style.setProperty('--jp-nb2pipe-stage-color', color);
  node.style.setProperty('--jp-nb2pipe-stage-text', textOn(color));
}
