/** A small DOM helper shared by the sidebar and the graph: text goes in through textContent only. */

/** A `tag` element with `className` and, when given, `text` as its text. */
export function el(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
