/**
 * Commands that tag cells: set the stage, mark parameters / setup / skip / metrics,
 * declare input and output files. They act on the selected cells of the active notebook
 * (the active cell when nothing else is selected). The cell toolbar and the cell context
 * menu show them through schema/cell-tools.json.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';

import { afterOfStages, setAfter } from './after';
import { askAfter } from './afterdialog';
import { cellInput, cellMetadata, editCells } from './cellmeta';
import { askFiles, askStage } from './dialogs';
import { stageIcon } from './icons';
import {
  declaredStages,
  describeCells,
  Flag,
  readRoles,
  secondParametersCell,
  setFiles,
  setFlag,
  setStage
} from './tags';
import { CommandArgs, CommandIDs } from './tokens';

const FLAG_COMMANDS: {
  id: string;
  flag: Flag;
  label: string;
  caption: string;
}[] = [
  {
    id: CommandIDs.toggleParameters,
    flag: 'parameters',
    label: 'Parameters Cell',
    caption:
      "nb2pipe: the pipeline's parameters and their defaults (tag 'parameters')"
  },
  {
    id: CommandIDs.toggleSetup,
    flag: 'setup',
    label: 'Setup Cell',
    caption: "nb2pipe: code run before every stage, e.g. imports (tag 'setup')"
  },
  {
    id: CommandIDs.toggleSkip,
    flag: 'skip',
    label: 'Skip Cell',
    caption: "nb2pipe: leave the cell out of the pipeline (tag 'skip')"
  },
  {
    id: CommandIDs.toggleMetrics,
    flag: 'metrics',
    label: 'Metrics Cell',
    caption:
      "nb2pipe: the cell's numeric assignments are the stage's metrics (tag 'metrics')"
  }
];

export function addCellCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker
): void {
  const { commands } = app;

  /** The selected cells of the active notebook, or its active cell. */
  const targets = (codeOnly = false): ICellModel[] => {
    const notebook = tracker.currentWidget?.content;
    if (!notebook) {
      return [];
    }
    const models = notebook.widgets
      .filter(cell => notebook.isSelectedOrActive(cell))
      .map(cell => cell.model);
    return codeOnly ? models.filter(m => m.type === 'code') : models;
  };
  const activeModel = (): ICellModel | null =>
    tracker.currentWidget?.content.activeCell?.model ?? null;
  const isEnabled = (): boolean => activeModel() !== null;
  const isCodeCell = (): boolean => activeModel()?.type === 'code';
  const report = (error: unknown) =>
    void showErrorMessage(
      'nb2pipe',
      error instanceof Error ? error.message : String(error)
    );

  commands.addCommand(CommandIDs.setStage, {
    label: args => (args.toolbar ? '' : 'Set Stage…'),
    caption: 'nb2pipe: assign the cell to a pipeline stage',
    icon: args => (args.toolbar || args.isPalette ? stageIcon : undefined),
    describedBy: CommandArgs.setStage,
    isEnabled: isCodeCell,
    execute: async () => {
      const panel = tracker.currentWidget;
      const active = activeModel();
      if (!panel?.model || active?.type !== 'code') {
        return;
      }
      const inputs = Array.from(panel.model.cells).map(cellInput);
      const existing = declaredStages(inputs);
      for (const d of describeCells(inputs)) {
        if (d.stage && !existing.includes(d.stage)) {
          existing.push(d.stage); // stages inferred from headings
        }
      }
      try {
        const choice = await askStage(
          existing,
          readRoles(cellMetadata(active)).stage
        );
        if (!choice) {
          return;
        }
        const name = choice.action === 'set' ? choice.name : null;
        editCells(targets(true), md => setStage(md, name)); // stages are made of code cells
      } catch (error) {
        report(error);
      }
    }
  });

  for (const { id, flag, label, caption } of FLAG_COMMANDS) {
    commands.addCommand(id, {
      label,
      caption,
      describedBy: CommandArgs.none,
      isEnabled,
      isToggled: () => {
        const model = activeModel();
        return model ? readRoles(cellMetadata(model))[flag] : false;
      },
      execute: () => {
        const model = activeModel();
        if (!model) {
          return;
        }
        const on = !readRoles(cellMetadata(model))[flag];
        const cells = targets();
        if (flag === 'parameters' && on) {
          const all = Array.from(tracker.currentWidget?.model?.cells ?? []);
          const refused = secondParametersCell(
            all.map(cellInput),
            cells.map(cell => all.indexOf(cell))
          );
          if (refused) {
            report(new Error(refused)); // export would refuse the notebook
            return;
          }
        }
        editCells(cells, md => setFlag(md, flag, on));
      }
    });
  }

  const declare = (kind: 'in' | 'out') => async () => {
    const model = activeModel();
    if (!model) {
      return;
    }
    const roles = readRoles(cellMetadata(model));
    try {
      const paths = await askFiles(
        kind,
        kind === 'in' ? roles.deps : roles.outs
      );
      if (paths !== null) {
        editCells([model], md => setFiles(md, kind, paths));
      }
    } catch (error) {
      report(error);
    }
  };
  commands.addCommand(CommandIDs.declareInputs, {
    label: 'Declare Input Files…',
    caption:
      "nb2pipe: files or folders the cell's stage reads (tags 'in:PATH')",
    describedBy: CommandArgs.none,
    isEnabled: isCodeCell,
    execute: declare('in')
  });
  commands.addCommand(CommandIDs.declareOutputs, {
    label: 'Declare Output Files…',
    caption:
      "nb2pipe: files or folders the cell's stage writes (tags 'out:PATH')",
    describedBy: CommandArgs.none,
    isEnabled: isCodeCell,
    execute: declare('out')
  });
  commands.addCommand(CommandIDs.setAfter, {
    label: 'Run After Stages…',
    caption:
      "nb2pipe: stages the cell's stage runs after where no data flows (tags 'after:NAME')",
    describedBy: CommandArgs.none,
    isEnabled: isCodeCell,
    execute: async () => {
      try {
        await editAfter(tracker);
      } catch (error) {
        report(error);
      }
    }
  });
}

/** Ask which stages the active cell's stage runs after; write it on the cell. */
async function editAfter(tracker: INotebookTracker): Promise<void> {
  const notebook = tracker.currentWidget?.content;
  const active = notebook?.activeCell?.model;
  if (!notebook?.model || !active) {
    return;
  }
  const models = Array.from(notebook.model.cells);
  const inputs = models.map(cellInput);
  const described = describeCells(inputs);
  const stage = described[models.indexOf(active)]?.stage;
  if (!stage) {
    throw new Error(
      'this cell is in no stage; set its stage first (nb2pipe → Set Stage…)'
    );
  }
  const stages = [...new Set(described.map(d => d.stage))].filter(
    (name): name is string => !!name
  );
  const chosen = await askAfter(stage, stages, afterOfStages(inputs));
  if (chosen === null) {
    return;
  }
  // The stage's ordering lives on this cell only: its other cells' `after:` tags go.
  const others = models.filter(
    (model, i) => model !== active && described[i].stage === stage
  );
  editCells(others, md => setAfter(md, []));
  editCells([active], md => setAfter(md, chosen));
}
