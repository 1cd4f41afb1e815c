// Platform-neutral exports; `node.js` and `browser.js` add a transport factory each.
export { LSN_HEADER, lsnPosition, TesseraClient, TERMINAL_STATES } from "./client.js";
export { roundRobin } from "./balance.js";
export type { RoundRobinOptions } from "./balance.js";
export type { ClientOptions, Download, FollowOptions, FollowResult } from "./client.js";
export { linkToken, RefreshingToken, staticToken, jwtExpiry } from "./credentials.js";
export type { FetchedToken, TokenSource } from "./credentials.js";
export { Code, CODE_NAMES, DownloadVerificationError, JobFailedError, TesseraError } from "./errors.js";
export type { FieldViolation } from "./errors.js";
export {
  backoff,
  backoffCap,
  DEFAULT_RETRY,
  delayBeforeRetry,
  isRefusal,
  isRetryable,
  NO_RETRY,
  NOT_RETRYABLE_REASONS,
  REFUSAL_REASONS,
  RETRYABLE_CODES,
  retryDelay,
  retryPolicy,
} from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { Idempotency, IDEMPOTENCY, idempotencyOf, methodName, SERVICES, tableDrift } from "./rpcs.js";
export { columnValues, dateRange, day, frameRows, parameterMap, parameterValue, today } from "./values.js";
export type { CalendarDay, Cell, ParameterInput } from "./values.js";
