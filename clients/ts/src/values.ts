// Reading a columnar DataFrame as rows.
import type { DataFrame } from "../../../gen/ts/dashboard/v1/common_pb.js";

export type Cell = boolean | bigint | number | string | Uint8Array | null;

/** The column's values (NULL rows as null), in row order. */
export function columnValues(frame: DataFrame, index: number): Cell[] {
  const column = frame.columns[index];
  if (!column) throw new RangeError(`no column ${index}`);
  const values: readonly Cell[] = column.values.case === undefined ? [] : column.values.value.values;
  const rows = Number(frame.rowCount);
  const out: Cell[] = [];
  for (let i = 0; i < rows; i++) out.push(column.nulls[i] ? null : (values[i] ?? null));
  return out;
}

/** The frame as one object per row, keyed by column name. */
export function frameRows(frame: DataFrame): Array<Record<string, Cell>> {
  const columns = frame.columns.map((_, index) => columnValues(frame, index));
  const rows: Array<Record<string, Cell>> = [];
  for (let i = 0; i < Number(frame.rowCount); i++) {
    const row: Record<string, Cell> = {};
    frame.columns.forEach((column, c) => {
      row[column.name] = columns[c]?.[i] ?? null;
    });
    rows.push(row);
  }
  return rows;
}
