/**
 * One colour per stage: a stable hash (FNV-1a) of the stage name picks a palette entry,
 * so a stage keeps its colour across cells, notebooks and reloads.
 */

/** Ten colours that read on light and dark themes (Tableau 10, grey replaced). */
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
  '#3b4cc0'
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

/** The colour of stage `name`. */
export function stageColor(name: string): string {
  return STAGE_PALETTE[fnv1a(name) % STAGE_PALETTE.length];
}
