/**
 * Read and write nb2pipe's part of a cell model's metadata, through the metadata API
 * (`getMetadata` / `setMetadata` / `deleteMetadata`), so edits are saved with the
 * notebook and undone with Ctrl+Z.
 */

import { ICellModel } from '@jupyterlab/cells';

import {
  CELL_METADATA_KEY,
  ICellInput,
  ICellMetadata,
  IMetadataPatch
} from './tags';

/** The metadata nb2pipe reads, as a plain object. */
export function cellMetadata(model: ICellModel): ICellMetadata {
  return {
    tags: model.getMetadata('tags'),
    nb2pipe: model.getMetadata(CELL_METADATA_KEY)
  };
}

/** What `describeCells` needs of a cell model. */
export function cellInput(model: ICellModel): ICellInput {
  return {
    cellType: model.type,
    tags: model.getMetadata('tags'),
    nb2pipe: model.getMetadata(CELL_METADATA_KEY),
    source:
      model.type === 'markdown' ? model.sharedModel.getSource() : undefined
  };
}

/** Write a patch in one transaction; a no-op patch leaves the notebook clean. */
export function applyPatch(model: ICellModel, patch: IMetadataPatch): boolean {
  const before = cellMetadata(model);
  const same =
    JSON.stringify(before.tags ?? []) === JSON.stringify(patch.tags) &&
    JSON.stringify(before.nb2pipe ?? null) === JSON.stringify(patch.nb2pipe);
  if (same) {
    return false;
  }
  model.sharedModel.transact(() => {
    if (patch.tags.length > 0) {
      model.setMetadata('tags', patch.tags);
    } else if (model.getMetadata('tags') !== undefined) {
      model.deleteMetadata('tags');
    }
    if (patch.nb2pipe) {
      model.setMetadata(CELL_METADATA_KEY, patch.nb2pipe);
    } else if (model.getMetadata(CELL_METADATA_KEY) !== undefined) {
      model.deleteMetadata(CELL_METADATA_KEY);
    }
  });
  return true;
}

/** Apply `edit` to each cell; returns how many cells changed. */
export function editCells(
  models: ICellModel[],
  edit: (metadata: ICellMetadata) => IMetadataPatch
): number {
  let changed = 0;
  for (const model of models) {
    if (applyPatch(model, edit(cellMetadata(model)))) {
      changed++;
    }
  }
  return changed;
}
