// Errors with their google.rpc details as typed objects: ErrorInfo (reason, domain, metadata),
// BadRequest field violations, RetryInfo. Every failed call of the SDK throws a TesseraError.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
  type BadRequest_FieldViolation,
  type ErrorInfo,
} from "../../../gen/ts/google/rpc/error_details_pb.js";

export { Code };

/** gRPC's canonical names, indexed by code. */
export const CODE_NAMES: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

export type FieldViolation = BadRequest_FieldViolation;

export class TesseraError extends Error {
  override readonly name = "TesseraError";
  /** The status code (Code.NotFound === 5, as in gRPC). */
  readonly code: Code;
  /** "NOT_FOUND", ... */
  readonly codeName: string;
  /** The server's message, without the code prefix. */
  readonly rawMessage: string;
  /** "dashboard.v1.DashboardService/GetDashboard", or "" when not known. */
  readonly method: string;
  readonly errorInfo: ErrorInfo | undefined;
  readonly fieldViolations: readonly FieldViolation[];
  /** The server's RetryInfo advice in milliseconds, when it gave one. */
  readonly retryDelayMs: number | undefined;
  override readonly cause: ConnectError;

  constructor(error: ConnectError, method: string) {
    const codeName = CODE_NAMES[error.code] ?? String(error.code);
    super(`${codeName}${method ? ` (${method})` : ""}: ${error.rawMessage}`);
    this.code = error.code;
    this.codeName = codeName;
    this.rawMessage = error.rawMessage;
    this.method = method;
    this.cause = error;
    this.errorInfo = safeDetails(error, ErrorInfoSchema)[0];
    this.fieldViolations = safeDetails(error, BadRequestSchema).flatMap((bad) => bad.fieldViolations);
    const retry = safeDetails(error, RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = retry ? Number(retry.seconds) * 1000 + retry.nanos / 1e6 : undefined;
  }

  /** ErrorInfo.reason ("ETAG_MISMATCH", "NOT_FOUND", ...), or "" without one. */
  get reason(): string {
    return this.errorInfo?.reason ?? "";
  }

  /** The violations of one field ("dashboard.title"). */
  violationsOf(field: string): FieldViolation[] {
    return this.fieldViolations.filter((violation) => violation.field === field);
  }

  static from(error: unknown, method = ""): TesseraError {
    if (error instanceof TesseraError) return error;
    return new TesseraError(ConnectError.from(error), method);
  }
}

function safeDetails<Desc extends DescMessage>(error: ConnectError, schema: Desc): MessageShape<Desc>[] {
  try {
    return error.findDetails(schema);
  } catch {
    return [];
  }
}

/** A followed job ended FAILED or CANCELLED. */
export class JobFailedError<Job extends { state: number; error?: { reason: string; message: string } }> extends Error {
  override readonly name = "JobFailedError";
  constructor(
    readonly job: Job,
    readonly jobId: string,
  ) {
    super(`job ${jobId} ended in state ${job.state}: ${job.error?.reason ?? ""} ${job.error?.message ?? ""}`.trim());
  }
  get reason(): string {
    return this.job.error?.reason ?? "";
  }
}

/** The downloaded bytes do not match the size or sha256 the server announced. */
export class DownloadVerificationError extends Error {
  override readonly name = "DownloadVerificationError";
  constructor(
    readonly exportId: string,
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`download of ${exportId}: ${what} mismatch (expected ${expected}, got ${actual})`);
  }
}
