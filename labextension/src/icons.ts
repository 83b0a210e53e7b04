/** Icons of the extension. */

import { LabIcon } from '@jupyterlab/ui-components';

/** Sidebar tab: a small three-stage pipe. */
export const nb2pipeIcon = new LabIcon({
  name: 'nb2pipe:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="9" width="5" height="6" rx="1"/>' +
    '<rect x="9.5" y="9" width="5" height="6" rx="1"/>' +
    '<rect x="17" y="9" width="5" height="6" rx="1"/>' +
    '<rect x="6" y="11" width="4" height="2"/>' +
    '<rect x="13.5" y="11" width="4" height="2"/>' +
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
