// When to try a failed call again, and after how long: the twin of tessera_client/retry.py.
// Retryable codes are UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED (not with reason ETAG_MISMATCH,
// which no retry of the same request can fix); UNSAFE rpcs are never retried unless asked. The
// delay is exponential with full jitter, never shorter than the server's RetryInfo advice.
// A refusal (RESOURCE_EXHAUSTED with reason SERVER_OVERLOADED or RATE_LIMITED) is answered before
// any work, so it is retried for every rpc, UNSAFE ones too, after the advice plus the jitter.
import { Code } from "@connectrpc/connect";
import type { TesseraError } from "./errors.js";
import { Idempotency } from "./rpcs.js";

export interface RetryPolicy {
  /** Counts the first try. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly retryableCodes: ReadonlySet<Code>;
  /** Also retry UNSAFE rpcs (only for callers who know their writes are harmless to repeat). */
  readonly retryUnsafe: boolean;
  /** Uniform in [0, 1). */
  readonly random: () => number;
}

export const RETRYABLE_CODES: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted, Code.Aborted]);
export const NOT_RETRYABLE_REASONS: ReadonlySet<string> = new Set(["ETAG_MISMATCH"]);
/** Refused before any work (load shedding, rate limits): nothing happened, so any rpc may be sent again. */
export const REFUSAL_REASONS: ReadonlySet<string> = new Set(["SERVER_OVERLOADED", "RATE_LIMITED"]);

export function isRefusal(error: TesseraError): boolean {
  return error.code === Code.ResourceExhausted && REFUSAL_REASONS.has(error.reason);
}

export function retryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy: RetryPolicy = {
    maxAttempts: 5,
    initialBackoffMs: 100,
    maxBackoffMs: 5000,
    multiplier: 2,
    retryableCodes: RETRYABLE_CODES,
    retryUnsafe: false,
    random: Math.random,
    ...overrides,
  };
  if (!(policy.maxAttempts >= 1)) throw new RangeError(`maxAttempts must be at least 1, got ${policy.maxAttempts}`);
  if (policy.initialBackoffMs < 0 || policy.maxBackoffMs < 0) throw new RangeError("backoffs must not be negative");
  if (policy.multiplier < 1) throw new RangeError(`multiplier must be at least 1, got ${policy.multiplier}`);
  return policy;
}

export const DEFAULT_RETRY: RetryPolicy = retryPolicy();
export const NO_RETRY: RetryPolicy = retryPolicy({ maxAttempts: 1 });

/** The longest delay before retry number `retry` (1 for the first retry). */
export function backoffCap(policy: RetryPolicy, retry: number): number {
  return Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (retry - 1));
}

export function backoff(policy: RetryPolicy, retry: number): number {
  return policy.random() * backoffCap(policy, retry);
}

export function isRetryable(policy: RetryPolicy, error: TesseraError, idempotency: Idempotency): boolean {
  if (!policy.retryableCodes.has(error.code)) return false;
  if (isRefusal(error)) return true;
  if (idempotency === Idempotency.UNSAFE && !policy.retryUnsafe) return false;
  return !(error.code === Code.Aborted && NOT_RETRYABLE_REASONS.has(error.reason));
}

/**
 * Milliseconds to wait before retry number `retry` after `error`: the backoff, never shorter than
 * RetryInfo; after a refusal the advice plus the backoff's jitter (spread out after it, never ahead).
 */
export function retryDelay(policy: RetryPolicy, retry: number, error: TesseraError): number {
  const delay = backoff(policy, retry);
  if (error.retryDelayMs === undefined) return delay;
  return isRefusal(error) ? error.retryDelayMs + delay : Math.max(delay, error.retryDelayMs);
}

/** Milliseconds to wait before attempt `attempt + 1`, or null when the error is final. */
export function delayBeforeRetry(
  policy: RetryPolicy,
  attempt: number,
  error: TesseraError,
  idempotency: Idempotency,
): number | null {
  if (attempt >= policy.maxAttempts || !isRetryable(policy, error, idempotency)) return null;
  return retryDelay(policy, attempt, error);
}
