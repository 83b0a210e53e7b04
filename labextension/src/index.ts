/**
 * The nb2pipe JupyterLab extension: three plugins.
 * - `nb2pipe:plugin`: the left sidebar (stages, state, export and run buttons) and the
 *   pipeline commands;
 * - `nb2pipe:cell-tools`: commands that tag cells, shown in the cell toolbar and the cell
 *   context menu (schema/cell-tools.json);
 * - `nb2pipe:structure`: stage chips and coloured borders on the cells.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

// Activation needs these at once, so they are not deferred: the cell toolbar and context
// menu (schema/cell-tools.json) and the sidebar's buttons name the commands, the registry
// follows the notebooks from the start, and the stage chips go on the open notebooks.
/* eslint-disable jupyter/prefer-lazy-imports -- see the comment above */
import { addCellCommands } from './cellcommands';
import { DebugStatuses } from './debug';
import { addGraphCommands, PipelineGraphs } from './graphcommands';
import { addPipelineCommands } from './pipelinecommands';
import { PipelineModels } from './registry';
import { addSettingsCommands } from './settingscommands';
import { Nb2pipeSidebar } from './sidebar';
import { followChipStates, NotebookStructure } from './structure';
/* eslint-enable jupyter/prefer-lazy-imports */
import { CommandIDs, INb2pipeSettings } from './tokens';

export { nb2pipeIcon } from './icons';
export { Nb2pipeSidebar } from './sidebar';

const PALETTE_CATEGORY = 'nb2pipe';

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nb2pipe:plugin',
  description: 'nb2pipe: the pipeline sidebar of the active notebook.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const debugging = new DebugStatuses();
    const sidebar = new Nb2pipeSidebar(app.commands, debugging);
    let graphs: PipelineGraphs | null = null;
    const models = new PipelineModels(tracker, {
      isActive: () => sidebar.isVisible || !!graphs?.anyVisible
    });
    sidebar.setModel(models.current);
    models.currentChanged.connect((_, model) => sidebar.setModel(model));
    addPipelineCommands(app, models, debugging);
    graphs = addGraphCommands(app, models, palette, PALETTE_CATEGORY);
    followChipStates(models, tracker); // the stage chips show the states the sidebar shows
    app.shell.add(sidebar, 'left', { rank: 1000 });

    if (palette) {
      for (const command of [
        CommandIDs.exportPipeline,
        CommandIDs.runStale,
        CommandIDs.runAll,
        CommandIDs.cancelRun,
        CommandIDs.refreshStatus
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }

    if (settingRegistry) {
      settingRegistry
        .load(sidebarPlugin.id)
        .then(settings => {
          const read = () => {
            const s = settings.composite as unknown as INb2pipeSettings;
            models.pollInterval = s.pollInterval;
            sidebar.node.dataset.pollInterval = String(s.pollInterval);
          };
          read();
          settings.changed.connect(read);
        })
        .catch(reason => {
          console.error('nb2pipe: failed to load settings.', reason);
        });
    }
  }
};

const cellToolsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nb2pipe:cell-tools',
  description: 'nb2pipe: tag cells from the cell toolbar and context menu.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    addCellCommands(app, tracker);
    addSettingsCommands(app, tracker);
    if (palette) {
      for (const command of [
        CommandIDs.setStage,
        CommandIDs.toggleParameters,
        CommandIDs.toggleSetup,
        CommandIDs.toggleSkip,
        CommandIDs.toggleMetrics,
        CommandIDs.declareInputs,
        CommandIDs.declareOutputs,
        CommandIDs.setAfter,
        CommandIDs.editStageSettings,
        CommandIDs.editDefaults
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }
  }
};

const structurePlugin: JupyterFrontEndPlugin<void> = {
  id: 'nb2pipe:structure',
  description:
    "nb2pipe: show each cell's stage with a chip and a coloured border.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const onChipClick = () => void app.commands.execute(CommandIDs.setStage);
    tracker.forEach(panel => new NotebookStructure(panel, onChipClick));
    tracker.widgetAdded.connect(
      (_, panel) => new NotebookStructure(panel, onChipClick)
    );
  }
};

export default [sidebarPlugin, cellToolsPlugin, structurePlugin];
