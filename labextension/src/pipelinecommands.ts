/**
 * Commands on the active notebook's pipeline: export, run (stale, all, one stage),
 * cancel, refresh, open a stage's executed notebook, and debug a failed stage (debug.ts). The sidebar's buttons run them;
 * they are in the command palette too. Failures show in the sidebar (`model.error`).
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';

import { debugStage, DebugStatuses } from './debug';
import { openExecutedNotebook } from './executed';
import { PipelineModel } from './model';
import { PipelineModels } from './registry';
import { CommandArgs, CommandIDs } from './tokens';

export function addPipelineCommands(
  app: JupyterFrontEnd,
  models: PipelineModels,
  debugging: DebugStatuses
): void {
  const { commands } = app;
  const hasModel = () => models.current !== null;
  const withModel =
    (
      action: (
        model: PipelineModel,
        args: Record<string, any>
      ) => Promise<unknown>
    ) =>
    async (args: Record<string, any>) => {
      const model = models.current;
      if (!model) {
        return;
      }
      try {
        await action(model, args);
      } catch (error) {
        // The model keeps the message; the sidebar shows it.
        console.warn('nb2pipe:', error);
      }
    };
  const idle = () => hasModel() && !models.current!.isRunning;
  // Export and run read the notebook on disk (a run re-exports a changed notebook first):
  // unsaved edits are saved, so what runs is what the user sees.
  const saveFirst = async () => {
    const panel = models.currentPanel;
    if (panel?.context.model.dirty) {
      await panel.context.save();
    }
  };

  commands.addCommand(CommandIDs.exportPipeline, {
    label: 'Export Notebook to Pipeline',
    caption: "nb2pipe: write the active notebook's pipeline folder",
    describedBy: CommandArgs.none,
    isEnabled: idle,
    execute: withModel(async model => {
      await saveFirst();
      await model.exportPipeline();
    })
  });
  commands.addCommand(CommandIDs.runStale, {
    label: 'Run Stale Stages',
    caption: 'nb2pipe: run the stages that are not up to date',
    describedBy: CommandArgs.none,
    isEnabled: idle,
    execute: withModel(async model => {
      await saveFirst();
      await model.runStale();
    })
  });
  commands.addCommand(CommandIDs.runAll, {
    label: 'Run All Stages',
    caption: 'nb2pipe: run every stage, up to date or not',
    describedBy: CommandArgs.none,
    isEnabled: idle,
    execute: withModel(async model => {
      await saveFirst();
      await model.runAll();
    })
  });
  commands.addCommand(CommandIDs.runStage, {
    label: args => (args.stage ? `Run Stage '${args.stage}'` : 'Run Stage'),
    caption: 'nb2pipe: run one stage, even if it is up to date',
    describedBy: CommandArgs.runStage,
    isEnabled: args => idle() && typeof args.stage === 'string',
    execute: withModel(async (model, args) => {
      await saveFirst();
      await model.runStage(String(args.stage));
    })
  });
  commands.addCommand(CommandIDs.runWithParams, {
    label: 'Run With These Parameter Values',
    caption:
      'nb2pipe: run the stages these parameter values make stale, without editing the notebook',
    describedBy: CommandArgs.runWithParams,
    isEnabled: idle,
    execute: withModel(async (model, args) => {
      await saveFirst();
      await model.run({ params: args.params ?? {} });
    })
  });
  commands.addCommand(CommandIDs.cancelRun, {
    label: 'Cancel Pipeline Run',
    caption: "nb2pipe: stop the active notebook's running pipeline",
    describedBy: CommandArgs.none,
    isEnabled: () => !!models.current?.isRunning,
    execute: withModel(model => model.cancel())
  });
  commands.addCommand(CommandIDs.refreshStatus, {
    label: 'Refresh Pipeline Status',
    describedBy: CommandArgs.none,
    isEnabled: hasModel,
    execute: withModel(model => model.refresh())
  });
  commands.addCommand(CommandIDs.debugStage, {
    label: args => (args.stage ? `Debug Stage '${args.stage}'` : 'Debug Stage'),
    caption:
      "nb2pipe: open a failed stage's debug notebook with a kernel, run up to the failing cell",
    describedBy: CommandArgs.debugStage,
    isEnabled: args =>
      hasModel() &&
      typeof args.stage === 'string' &&
      !debugging.isWorking(models.current!.path, args.stage),
    execute: async args => {
      const model = models.current;
      if (model && typeof args.stage === 'string') {
        await debugStage(app, debugging, model.path, args.stage);
      }
    }
  });
  commands.addCommand(CommandIDs.openExecuted, {
    label: 'Open Executed Notebook',
    caption: "nb2pipe: open a stage's executed notebook at the failing cell",
    describedBy: CommandArgs.openExecuted,
    execute: async args => {
      const path = typeof args.path === 'string' ? args.path : '';
      if (!path) {
        return;
      }
      try {
        return await openExecutedNotebook(
          app,
          path,
          typeof args.cell === 'string' ? args.cell : null
        );
      } catch (error) {
        void showErrorMessage(
          'nb2pipe: cannot open the executed notebook',
          error instanceof Error ? error.message : String(error)
        );
      }
    }
  });
}
