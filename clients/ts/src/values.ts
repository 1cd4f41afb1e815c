// Reading a columnar DataFrame as rows, and JS values as ParameterValues.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  DateRangeSchema,
  type DataFrame,
  ParameterValueListSchema,
  ParameterValueSchema,
  type ParameterValue,
} from "../../../gen/ts/dashboard/v1/common_pb.js";
import { DateSchema } from "../../../gen/ts/google/type/date_pb.js";

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

// --- parameter values ----------------------------------------------------------------------------
/** A calendar day, as "YYYY-MM-DD" in parameters (a JS Date is a TIMESTAMP). */
export interface CalendarDay {
  year: number;
  month: number;
  day: number;
}

export type ParameterInput =
  | boolean
  | number
  | bigint
  | string
  | Date
  | CalendarDay
  | ParameterValue
  | readonly ParameterInput[];

function isParameterValue(value: unknown): value is ParameterValue {
  return typeof value === "object" && value !== null && (value as { $typeName?: string }).$typeName === "dashboard.v1.ParameterValue";
}

/** "2026-12-04" -> a CalendarDay. */
export function day(text: string): CalendarDay {
  const [year, month, date] = text.split("-").map(Number);
  return { year: year ?? 0, month: month ?? 0, day: date ?? 0 };
}

/** Days `offset` from today (UTC). */
export function today(offset = 0): CalendarDay {
  const d = new Date(Date.now() + offset * 86_400_000);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** The ParameterValue for a JS value: true, 42 (int), 4.2 (double), 42n, "text", a Date (a
 * timestamp), a CalendarDay (a date), or an array of those (a list parameter). */
export function parameterValue(value: ParameterInput): ParameterValue {
  if (isParameterValue(value)) return value;
  if (typeof value === "boolean") return create(ParameterValueSchema, { kind: { case: "boolValue", value } });
  if (typeof value === "bigint") return create(ParameterValueSchema, { kind: { case: "intValue", value } });
  if (typeof value === "number") {
    return Number.isInteger(value)
      ? create(ParameterValueSchema, { kind: { case: "intValue", value: BigInt(value) } })
      : create(ParameterValueSchema, { kind: { case: "doubleValue", value } });
  }
  if (typeof value === "string") return create(ParameterValueSchema, { kind: { case: "stringValue", value } });
  if (value instanceof Date) {
    return create(ParameterValueSchema, { kind: { case: "timestampValue", value: timestampFromDate(value) } });
  }
  if (Array.isArray(value)) {
    const values = (value as readonly ParameterInput[]).map(parameterValue);
    return create(ParameterValueSchema, {
      kind: { case: "listValue", value: create(ParameterValueListSchema, { values }) },
    });
  }
  const calendar = value as CalendarDay;
  return create(ParameterValueSchema, { kind: { case: "dateValue", value: create(DateSchema, calendar) } });
}

/** A DATE_RANGE parameter value (both ends inclusive). */
export function dateRange(start: CalendarDay, end: CalendarDay): ParameterValue {
  return create(ParameterValueSchema, {
    kind: {
      case: "dateRangeValue",
      value: create(DateRangeSchema, { start: create(DateSchema, start), end: create(DateSchema, end) }),
    },
  });
}

/** { name: value } -> { name: ParameterValue } (for parameters, filters, parameter_values). */
export function parameterMap(values: Record<string, ParameterInput>): Record<string, ParameterValue> {
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, parameterValue(value)]));
}
