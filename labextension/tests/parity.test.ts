/// <reference types="node" />
/**
 * The extension cuts a notebook into stages as the exporter does: both are checked against one
 * table, tests/fixtures/cutting.json (the Python side is tests/test_cutting_parity.py).
 * 'lab', where a cell has it, is what the extension shows instead of 'expect': nothing, for code
 * whose place the exporter decides by parsing Python.
 */

import * as fs from 'fs';
import * as path from 'path';

import { describeCells, ICellInput, INb2pipeCellMetadata } from '../src/tags';

interface IFixtureCell {
  type: 'code' | 'markdown' | 'raw';
  source: string;
  tags?: string[];
  nb2pipe?: INb2pipeCellMetadata;
  expect: string | null;
  lab?: string | null;
}

interface IFixtureCase {
  name: string;
  cells: IFixtureCell[];
}

const FIXTURE = path.join(
  __dirname,
  '..',
  '..',
  'tests',
  'fixtures',
  'cutting.json'
);
const CASES: IFixtureCase[] = JSON.parse(
  fs.readFileSync(FIXTURE, 'utf-8')
).cases;

/** What a cell's chip says: its stage, or its role outside stages, or nothing (chips are on code cells only). */
function chips(cells: IFixtureCell[]): (string | null)[] {
  const inputs: ICellInput[] = cells.map(c => ({
    cellType: c.type,
    tags: c.tags,
    nb2pipe: c.nb2pipe,
    source: c.source
  }));
  return describeCells(inputs).map((d, i) => {
    if (cells[i].type !== 'code') {
      return null;
    }
    return d.stage ?? (d.role === 'none' || d.role === 'stage' ? null : d.role);
  });
}

describe('the extension cuts notebooks as the exporter does', () => {
  it('has cases to check', () => {
    expect(CASES.length).toBeGreaterThan(5);
  });

  it.each(CASES.map(c => [c.name, c] as [string, IFixtureCase]))(
    '%s',
    (_, testCase) => {
      const expected = testCase.cells.map(c =>
        'lab' in c ? (c.lab ?? null) : c.expect
      );
      expect(chips(testCase.cells)).toEqual(expected);
    }
  );
});
