/**
 * The "Show Pipeline Graph" command: opens the active notebook's pipeline graph beside it
 * ("Pipeline: NAME", one per notebook), or shows it again when it is open. A click on a node
 * selects the stage's first cell in the notebook and scrolls to it.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';

import { IGraphNode } from './graphdata';
import { PipelineGraphView } from './graphview';
import { nb2pipeIcon } from './icons';
import { PipelineModels } from './registry';
import { CommandArgs, CommandIDs } from './tokens';

/** The open graphs, by notebook path. */
export class PipelineGraphs {
  /** Whether a graph is showing: the models keep polling status for it. */
  get anyVisible(): boolean {
    return [...this._open.values()].some(widget => widget.isVisible);
  }

  get(path: string): MainAreaWidget<PipelineGraphView> | undefined {
    const widget = this._open.get(path);
    return widget && !widget.isDisposed ? widget : undefined;
  }

  add(path: string, widget: MainAreaWidget<PipelineGraphView>): void {
    this._open.set(path, widget);
    widget.disposed.connect(() => {
      if (this._open.get(path) === widget) {
        this._open.delete(path);
      }
    });
  }

  private _open = new Map<string, MainAreaWidget<PipelineGraphView>>();
}

export function addGraphCommands(
  app: JupyterFrontEnd,
  models: PipelineModels,
  palette: ICommandPalette | null,
  category: string
): PipelineGraphs {
  const graphs = new PipelineGraphs();
  app.commands.addCommand(CommandIDs.showGraph, {
    label: 'Show Pipeline Graph',
    caption:
      "nb2pipe: the active notebook's pipeline as a graph — stages, states, what flows",
    describedBy: CommandArgs.none,
    isEnabled: () => models.currentPanel !== null,
    execute: () => {
      const panel = models.currentPanel;
      if (!panel) {
        return;
      }
      const model = models.modelOf(panel);
      let widget = graphs.get(model.path);
      if (!widget) {
        const content = new PipelineGraphView({
          model,
          onReveal: node => void revealStage(app, panel, node)
        });
        widget = new MainAreaWidget({ content });
        widget.toolbar.hide(); // the view has its own: the filter
        widget.id = `jp-nb2pipe-graph-${encodeURIComponent(model.path)}`;
        widget.title.label = `Pipeline: ${pipelineName(model.path)}`;
        widget.title.caption = `nb2pipe: the pipeline of ${model.path}`;
        widget.title.icon = nb2pipeIcon;
        widget.title.closable = true;
        graphs.add(model.path, widget);
        // the graph follows the notebook's model: it closes with the notebook or a rename
        const created = widget;
        const close = () => created.dispose();
        panel.disposed.connect(close);
        panel.context.pathChanged.connect(close);
        created.disposed.connect(() => {
          panel.disposed.disconnect(close);
          panel.context.pathChanged.disconnect(close);
        });
        app.shell.add(widget, 'main', { mode: 'split-right', ref: panel.id });
        void model.refresh();
      }
      app.shell.activateById(widget.id);
      return widget;
    }
  });
  palette?.addItem({ command: CommandIDs.showGraph, category });
  return graphs;
}

/** `analysis` for `work/analysis.ipynb`. */
export function pipelineName(path: string): string {
  return (path.split('/').pop() ?? path).replace(/\.ipynb$/, '');
}

/** Select the stage's first cell in its notebook and scroll to it. */
async function revealStage(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  node: IGraphNode
): Promise<void> {
  if (panel.isDisposed || !node.cells.length) {
    return;
  }
  const notebook = panel.content;
  const index = node.cells[0] - 1; // cells are numbered from 1, as a user counts them
  if (index < 0 || index >= notebook.widgets.length) {
    return;
  }
  app.shell.activateById(panel.id);
  notebook.mode = 'command';
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await notebook.scrollToCell(notebook.widgets[index], 'start');
}
