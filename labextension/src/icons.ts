/** Icons of the extension. */

import { LabIcon } from '@jupyterlab/ui-components';

/** Sidebar tab: a stage feeding two stages (a small pipeline graph, not a "more" mark). */
export const nb2pipeIcon = new LabIcon({
  name: 'nb2pipe:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="none" stroke="#616161" stroke-width="2" d="M8 12 L16 5.5 M8 12 L16 18.5"/>' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="1.5" y="8.5" width="7" height="7" rx="1.5"/>' +
    '<rect x="15.5" y="2" width="7" height="7" rx="1.5"/>' +
    '<rect x="15.5" y="15" width="7" height="7" rx="1.5"/>' +
    '</g></svg>'
});

/** Cell toolbar "set stage": a tag with a pipe segment. */
export const stageIcon = new LabIcon({
  name: 'nb2pipe:stage',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M3 4h9l9 8-9 8H3z M7 10a2 2 0 1 0 0 4a2 2 0 1 0 0-4z" fill-rule="evenodd"/>' +
    '</g></svg>'
});
