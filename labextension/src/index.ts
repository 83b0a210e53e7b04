import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { INb2pipeSettings } from './tokens';

const PLUGIN_ID = 'nb2pipe:plugin';

/** Icon of the nb2pipe sidebar tab (a small three-stage pipe). */
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

/** Left-area panel showing the active notebook. */
export class Nb2pipeSidebar extends Widget {
  constructor() {
    super();
    this.id = 'jp-nb2pipe-sidebar';
    this.addClass('jp-nb2pipe-sidebar');
    this.title.icon = nb2pipeIcon;
    this.title.caption = 'nb2pipe'; // tooltip; side-bar tabs show icons only

    const heading = document.createElement('h2');
    heading.className = 'jp-nb2pipe-title';
    heading.textContent = 'nb2pipe';
    this._path = document.createElement('div');
    this._path.className = 'jp-nb2pipe-path';
    this.node.append(heading, this._path);
    this.setNotebook(null);
  }

  /** Show which notebook is active (null: none). */
  setNotebook(panel: NotebookPanel | null): void {
    this._path.textContent = panel ? panel.context.path : 'No active notebook';
    this._path.dataset.path = panel ? panel.context.path : '';
  }

  private _path: HTMLDivElement;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'nb2pipe: turn notebooks into pipelines.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null
  ) => {
    const sidebar = new Nb2pipeSidebar();
    app.shell.add(sidebar, 'left', { rank: 1000 });

    sidebar.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect((_, panel) => sidebar.setNotebook(panel));

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const read = () => {
            const s = settings.composite as unknown as INb2pipeSettings;
            sidebar.node.dataset.pollInterval = String(s.pollInterval);
          };
          read();
          settings.changed.connect(read);
        })
        .catch(reason => {
          console.error('nb2pipe: failed to load settings.', reason);
        });
    }
    console.log('nb2pipe: extension activated');
  }
};

export default plugin;
