/**
 * Commands that edit settings in the active notebook: a stage's (the sidebar's stage row, the
 * cell context menu) on the stage's first cell, and the pipeline-wide defaults in the
 * notebook's metadata. Like "Run After Stages…" they change the notebook model only; the user
 * saves it, and the next export writes `settings:` / `defaults:` into nb2pipe.yaml.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { cellInput, cellMetadata, editCells } from './cellmeta';
import { askSettings, IKernelChoice } from './settingsdialog';
import {
  cellSettings,
  DEFAULTS_KEY,
  structuredSettings,
  writeDefaults,
  writeSettings
} from './settings';
import { ICellSettings, settingConflicts } from './settingstext';
import { CELL_METADATA_KEY, describeCells } from './tags';
import { CommandArgs, CommandIDs } from './tokens';

/** The arguments of `nb2pipe:edit-stage-settings`. */
export const STAGE_SETTINGS_ARGS = {
  args: {
    type: 'object',
    properties: {
      stage: {
        type: 'string',
        description: "the stage; without it, the active cell's stage"
      },
      cells: {
        type: 'array',
        items: { type: 'integer' },
        description:
          "the stage's notebook cells (1-based) as the last status gave them: used when the " +
          'notebook alone does not tell (the first section of a notebook split at headings)'
      }
    }
  }
};

export function addSettingsCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker
): void {
  const report = (error: unknown) =>
    void showErrorMessage(
      'nb2pipe',
      error instanceof Error ? error.message : String(error)
    );
  const kernels = async (): Promise<IKernelChoice[]> => {
    const manager = app.serviceManager.kernelspecs;
    await manager.ready;
    const specs = manager.specs?.kernelspecs ?? {};
    return Object.entries(specs)
      .map(([name, spec]) => ({
        name,
        displayName: `${spec?.display_name ?? name} (${name})`
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  };

  app.commands.addCommand(CommandIDs.editStageSettings, {
    label: 'Stage Settings…',
    caption:
      "nb2pipe: the stage's timeout, retries, memory limit, kernel, environment and secrets",
    describedBy: STAGE_SETTINGS_ARGS,
    isEnabled: () => !!tracker.currentWidget,
    execute: async (args: ReadonlyPartialJSONObject) => {
      try {
        await editStageSettings(
          tracker,
          args.stage as string | undefined,
          (args.cells as number[] | undefined) ?? [],
          kernels
        );
      } catch (error) {
        report(error);
      }
    }
  });
  app.commands.addCommand(CommandIDs.editDefaults, {
    label: 'Pipeline Defaults…',
    caption:
      'nb2pipe: settings every stage of the notebook runs with unless it sets its own',
    describedBy: CommandArgs.none,
    isEnabled: () => !!tracker.currentWidget,
    execute: async () => {
      try {
        await editDefaults(tracker, kernels);
      } catch (error) {
        report(error);
      }
    }
  });
}

/** Edit `stage`'s settings (or the active cell's stage's) on its first cell. */
async function editStageSettings(
  tracker: INotebookTracker,
  stage: string | undefined,
  statusCells: number[],
  kernels: () => Promise<IKernelChoice[]>
): Promise<void> {
  const notebook = tracker.currentWidget?.content;
  if (!notebook?.model) {
    return;
  }
  const models = Array.from(notebook.model.cells);
  const described = describeCells(models.map(cellInput));
  const active = notebook.activeCell?.model;
  const name =
    stage ?? (active ? described[models.indexOf(active)]?.stage : null);
  if (!name) {
    throw new Error(
      'this cell is in no stage; set its stage first (nb2pipe → Set Stage…)'
    );
  }
  let cells = models.filter((_, i) => described[i].stage === name);
  if (!cells.length) {
    cells = statusCells
      .map(n => models[n - 1])
      .filter(model => model?.type === 'code');
  }
  if (!cells.length) {
    throw new Error(
      `stage '${name}' has no cell in this notebook as it is now; save and export it again`
    );
  }
  const [first, ...rest] = cells;
  const others: ICellSettings[] = rest.map(model => ({
    number: models.indexOf(model) + 1,
    settings: cellSettings(cellMetadata(model))
  }));
  const chosen = await askSettings({
    stage: name,
    cell: models.indexOf(first) + 1,
    settings: cellSettings(cellMetadata(first)),
    kernels: await kernels(),
    conflicts: settings => settingConflicts(settings, others)
  });
  if (chosen !== null) {
    editCells([first], md => writeSettings(md, chosen));
  }
}

/** Edit the notebook's pipeline-wide settings (`metadata.nb2pipe.defaults`). */
async function editDefaults(
  tracker: INotebookTracker,
  kernels: () => Promise<IKernelChoice[]>
): Promise<void> {
  const model = tracker.currentWidget?.content.model;
  if (!model) {
    return;
  }
  const ours = model.getMetadata(CELL_METADATA_KEY);
  const current = (ours as Record<string, unknown> | undefined)?.[DEFAULTS_KEY];
  const chosen = await askSettings({
    stage: null,
    settings: structuredSettings(current),
    kernels: await kernels(),
    conflicts: () => []
  });
  if (chosen === null) {
    return;
  }
  const next = writeDefaults(ours, chosen);
  if (JSON.stringify(next) === JSON.stringify(ours ?? null)) {
    return; // nothing changed: the notebook stays clean
  }
  if (next) {
    model.setMetadata(CELL_METADATA_KEY, next);
  } else {
    model.deleteMetadata(CELL_METADATA_KEY);
  }
}
