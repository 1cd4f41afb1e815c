// The client both entry points share (Node over gRPC, browsers over Connect or gRPC-Web): the eight
// services (the specification's five, reports, alerts and search) typed from gen/ts, with tokens, deadlines over all attempts, retries by idempotency
// (creates keep their request_id), page iterators, resumable job watches and verified downloads.
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { AlertService } from "../../../gen/ts/dashboard/v1/alert_pb.js";
import { DashboardService } from "../../../gen/ts/dashboard/v1/dashboard_pb.js";
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import { ExportService, type ExportFile, type ExportJob } from "../../../gen/ts/dashboard/v1/export_pb.js";
import { QueryService } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { ReportService } from "../../../gen/ts/dashboard/v1/report_pb.js";
import { SearchService } from "../../../gen/ts/dashboard/v1/search_pb.js";
import { ShareService } from "../../../gen/ts/dashboard/v1/share_pb.js";
import { WidgetService, type MaterializationJob } from "../../../gen/ts/dashboard/v1/widget_pb.js";
import { tokenSource, type TokenSource } from "./credentials.js";
import { DownloadVerificationError, JobFailedError, TesseraError } from "./errors.js";
import {
  DEFAULT_RETRY,
  delayBeforeRetry,
  isRefusal,
  isRetryable,
  retryDelay,
  retryPolicy,
  type RetryPolicy,
} from "./retry.js";
import { Idempotency, idempotencyOf, methodName } from "./rpcs.js";

export interface ClientOptions {
  transport: Transport;
  /** A bearer token, or a TokenSource (RefreshingToken, linkToken(...)). */
  token?: string | TokenSource;
  retry?: RetryPolicy | Partial<RetryPolicy>;
  /** Default deadline of a unary call across all its attempts (default 30 s; 0 for none). */
  timeoutMs?: number;
  /** A watch that sends nothing, not even a heartbeat, for this long is reopened (default 30 s). */
  stallTimeoutMs?: number;
  /** Extra headers on every call. */
  headers?: Record<string, string>;
  /** For tests: how to wait and what time it is. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Called before each retry or resumption (for logs). */
  onRetry?: (event: { method: string; attempt: number; delayMs: number; error: TesseraError }) => void;
  /** Makes request ids for creates (default crypto.randomUUID). */
  newRequestId?: () => string;
}

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([
  JobState.SUCCEEDED,
  JobState.FAILED,
  JobState.CANCELLED,
]);

type Job = MaterializationJob | ExportJob;

export interface FollowOptions<J extends Job> {
  /** Called once per new revision, in order. */
  onProgress?: (job: J) => void;
  /** A snapshot in hand (the create call's answer): reported first; the watch starts after it. */
  start?: J;
  /** Bounds the whole wait (default none). */
  timeoutMs?: number;
  stallTimeoutMs?: number;
  /** Throw JobFailedError when the job ends FAILED or CANCELLED (default true). */
  check?: boolean;
  signal?: AbortSignal;
}

export interface FollowResult<J extends Job> {
  job: J;
  /** How many times the watch was reopened. */
  resumes: number;
}

export interface Download {
  file: ExportFile;
  bytes: Uint8Array;
  resumes: number;
}

type Unary = (request: unknown, options?: CallOptions) => Promise<unknown>;
type ServerStream = (request: unknown, options?: CallOptions) => AsyncIterable<unknown>;

/** Where the server reports a write's WAL position, and where the client sends it back. */
export const LSN_HEADER = "x-tessera-lsn";

/** "16/B374D848" as one number; undefined for anything else. */
export function lsnPosition(text: string): bigint | undefined {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  return match ? (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`) : undefined;
}

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class TesseraClient {
  readonly dashboards: Client<typeof DashboardService>;
  readonly widgets: Client<typeof WidgetService>;
  readonly queries: Client<typeof QueryService>;
  readonly exports: Client<typeof ExportService>;
  readonly shares: Client<typeof ShareService>;
  readonly reports: Client<typeof ReportService>;
  readonly alerts: Client<typeof AlertService>;
  readonly search: Client<typeof SearchService>;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly transport: Transport;
  private readonly auth: TokenSource | undefined;
  private readonly headers: Record<string, string>;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly onRetry: ClientOptions["onRetry"];
  private readonly newRequestId: () => string;
  /** The WAL position of this client's last write, sent back so reads are no older than it. */
  private lsn: { position: bigint; text: string } | undefined;

  constructor(options: ClientOptions) {
    this.transport = options.transport;
    this.auth = tokenSource(options.token);
    this.retry = options.retry === undefined ? DEFAULT_RETRY : retryPolicy(options.retry);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.headers = options.headers ?? {};
    this.sleep = options.sleep ?? sleepFor;
    this.now = options.now ?? Date.now;
    this.onRetry = options.onRetry;
    this.newRequestId = options.newRequestId ?? (() => globalThis.crypto.randomUUID());
    this.dashboards = this.wrap(DashboardService);
    this.widgets = this.wrap(WidgetService);
    this.queries = this.wrap(QueryService);
    this.exports = this.wrap(ExportService);
    this.shares = this.wrap(ShareService);
    this.reports = this.wrap(ReportService);
    this.alerts = this.wrap(AlertService);
    this.search = this.wrap(SearchService);
  }

  // --- calls ---------------------------------------------------------------------------------

  private wrap<S extends DescService>(service: S): Client<S> {
    const raw = createClient(service, this.transport) as unknown as Record<string, Unary | ServerStream>;
    const wrapped: Record<string, unknown> = {};
    for (const method of service.methods) {
      const call = raw[method.localName];
      if (method.methodKind === "unary") {
        wrapped[method.localName] = (request: unknown, options?: CallOptions) =>
          this.unary(method, call as Unary, request, options);
      } else if (method.methodKind === "server_streaming") {
        wrapped[method.localName] = (request: unknown, options?: CallOptions) =>
          this.stream(method, call as ServerStream, request, options);
      }
    }
    return wrapped as Client<S>;
  }

  private async callHeaders(extra?: HeadersInit): Promise<Headers> {
    const headers = new Headers(this.headers);
    if (extra) new Headers(extra).forEach((value, key) => headers.set(key, value));
    if (this.lsn) headers.set(LSN_HEADER, this.lsn.text);
    if (this.auth) {
      const token = await this.auth.token();
      headers.set(this.auth.header, this.auth.header === "authorization" ? `Bearer ${token}` : token);
    }
    return headers;
  }

  /** After UNAUTHENTICATED with a refreshable token: forget it and try once more. */
  private refreshAfter(error: TesseraError, alreadyRefreshed: boolean): boolean {
    if (error.code !== Code.Unauthenticated || alreadyRefreshed || !this.auth?.invalidate) return false;
    this.auth.invalidate();
    return true;
  }

  private remaining(deadline: number | undefined, method: string, last: TesseraError | undefined): number | undefined {
    if (deadline === undefined) return undefined;
    const left = deadline - this.now();
    if (left <= 0) {
      if (last) throw last;
      throw new TesseraError(new ConnectError(`deadline exceeded before ${method} was sent`, Code.DeadlineExceeded), method);
    }
    return left;
  }

  private async unary(method: DescMethod, call: Unary, init: unknown, options: CallOptions = {}): Promise<unknown> {
    const name = methodName(method);
    const idempotency = idempotencyOf(method);
    const request = create(method.input, init as never) as Message & Record<string, unknown>;
    if (idempotency === Idempotency.KEYED) this.fillRequestIds(request);
    const timeout = options.timeoutMs ?? this.timeoutMs;
    const deadline = timeout > 0 ? this.now() + timeout : undefined;
    let refreshed = false;
    let last: TesseraError | undefined;
    for (let attempt = 1; ; attempt++) {
      const timeoutMs = this.remaining(deadline, name, last);
      try {
        return await call(request, {
          ...options,
          timeoutMs,
          headers: await this.callHeaders(options.headers),
          onTrailer: (trailer) => {
            this.saw(trailer);
            options.onTrailer?.(trailer);
          },
        });
      } catch (caught) {
        if (caught instanceof ConnectError) this.saw(caught.metadata);
        last = dropped(TesseraError.from(caught, name), options.signal);
      }
      if (options.signal?.aborted) throw last;
      if (this.refreshAfter(last, refreshed)) {
        refreshed = true;
        attempt--;
        continue;
      }
      const delay = delayBeforeRetry(this.retry, attempt, last, idempotency);
      if (delay === null || (deadline !== undefined && this.now() + delay >= deadline)) throw last;
      this.onRetry?.({ method: name, attempt, delayMs: delay, error: last });
      await this.sleep(delay);
    }
  }

  /** Keeps the highest write position a server reported in its trailers (read replicas). */
  private saw(trailer: Headers): void {
    const text = trailer.get(LSN_HEADER);
    const position = text === null ? undefined : lsnPosition(text);
    if (text !== null && position !== undefined && (!this.lsn || position > this.lsn.position)) {
      this.lsn = { position, text };
    }
  }

  private fillRequestIds(request: Record<string, unknown>): void {
    if ("requestId" in request) {
      if (!request.requestId) request.requestId = this.newRequestId();
      return;
    }
    const items = request.requests;
    if (Array.isArray(items)) {
      for (const item of items as Array<Record<string, unknown>>) {
        if ("requestId" in item && !item.requestId) item.requestId = this.newRequestId();
      }
    }
  }

  private async *stream(
    method: DescMethod,
    call: ServerStream,
    request: unknown,
    options: CallOptions = {},
  ): AsyncGenerator<unknown> {
    const name = methodName(method);
    const onTrailer = (trailer: Headers) => {
      this.saw(trailer);
      options.onTrailer?.(trailer);
    };
    // Only a refusal before the first message is retried here (nothing of the stream was seen or
    // done); resuming later is rpc-specific (follow, download).
    const deadline = options.timeoutMs ? this.now() + options.timeoutMs : undefined;
    let last: TesseraError | undefined;
    for (let attempt = 1; ; attempt++) {
      const timeoutMs = this.remaining(deadline, name, last);
      const headers = await this.callHeaders(options.headers);
      let received = false;
      try {
        for await (const message of call(request, { ...options, timeoutMs, headers, onTrailer })) {
          received = true;
          yield message;
        }
        return;
      } catch (caught) {
        last = TesseraError.from(caught, name);
      }
      if (received || options.signal?.aborted || !isRefusal(last)) throw last;
      const delay = delayBeforeRetry(this.retry, attempt, last, idempotencyOf(method));
      if (delay === null || (deadline !== undefined && this.now() + delay >= deadline)) throw last;
      this.onRetry?.({ method: name, attempt, delayMs: delay, error: last });
      await this.sleep(delay);
    }
  }

  // --- pages ---------------------------------------------------------------------------------

  /**
   * Every item of every page: `for await (const d of client.pages(client.dashboards.listDashboards,
   * { pageSize: 50 }, (r) => r.dashboards))`.
   */
  async *pages<Req extends { pageToken?: string }, Res extends { nextPageToken: string }, T>(
    list: (request: Req, options?: CallOptions) => Promise<Res>,
    request: Req,
    items: (response: Res) => readonly T[],
    options?: CallOptions,
  ): AsyncGenerator<T> {
    let current: Req = { ...request };
    for (;;) {
      const response = await list(current, options);
      yield* items(response);
      if (!response.nextPageToken) return;
      current = { ...current, pageToken: response.nextPageToken };
    }
  }

  // --- jobs ----------------------------------------------------------------------------------

  /** Follows a materialization job to its end (resuming a dropped or stalled watch). */
  followMaterialization(jobId: string, options: FollowOptions<MaterializationJob> = {}): Promise<FollowResult<MaterializationJob>> {
    return this.follow(
      jobId,
      (since, callOptions) => this.widgets.watchMaterializationJob({ id: jobId, sinceRevision: since }, callOptions),
      (event) => (event.event.case === "job" ? event.event.value : undefined),
      () => this.widgets.getMaterializationJob({ id: jobId }),
      options,
    );
  }

  /** Follows an export to its end (resuming a dropped or stalled watch). */
  followExport(exportId: string, options: FollowOptions<ExportJob> = {}): Promise<FollowResult<ExportJob>> {
    return this.follow(
      exportId,
      (since, callOptions) => this.exports.watchExport({ id: exportId, sinceRevision: since }, callOptions),
      (event) => (event.event.case === "export" ? event.event.value : undefined),
      () => this.exports.getExport({ id: exportId }),
      options,
    );
  }

  private async follow<J extends Job, E>(
    jobId: string,
    watch: (since: bigint, options: CallOptions) => AsyncIterable<E>,
    jobOf: (event: E) => J | undefined,
    get: () => Promise<J>,
    options: FollowOptions<J>,
  ): Promise<FollowResult<J>> {
    let since = 0n;
    let latest: J | undefined;
    let resumes = 0;
    const accept = (job: J): boolean => {
      if (job.revision <= since) return false; // already seen
      since = job.revision;
      latest = job;
      options.onProgress?.(job);
      return true;
    };
    const finish = (): FollowResult<J> => {
      const job = latest as J;
      if (options.check !== false && (job.state === JobState.FAILED || job.state === JobState.CANCELLED)) {
        throw new JobFailedError(job, jobId);
      }
      return { job, resumes };
    };
    const done = () => latest !== undefined && TERMINAL_STATES.has(latest.state);
    if (options.start) {
      accept(options.start);
      if (done()) return finish();
    }
    const deadline = options.timeoutMs ? this.now() + options.timeoutMs : undefined;
    const stallMs = options.stallTimeoutMs ?? this.stallTimeoutMs;
    const name = `watch of job ${jobId}`;
    let failures = 0;
    let refreshed = false;
    let last: TesseraError | undefined;
    for (;;) {
      const timeoutMs = this.remaining(deadline, name, last);
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      options.signal?.addEventListener("abort", onOuterAbort);
      let stalled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const kick = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          stalled = true;
          abort.abort();
        }, stallMs);
      };
      let error: TesseraError | undefined;
      try {
        kick();
        for await (const event of watch(since, { signal: abort.signal, timeoutMs })) {
          kick();
          const job = jobOf(event);
          if (job !== undefined && accept(job)) {
            failures = 0;
            if (done()) {
              abort.abort();
              return finish();
            }
          }
        }
      } catch (caught) {
        error = stalled ? undefined : dropped(TesseraError.from(caught, name), abort.signal);
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onOuterAbort);
      }
      if (options.signal?.aborted) throw error ?? new Error("aborted");
      if (stalled) {
        error = unavailable(`the watch of job ${jobId} sent nothing for ${stallMs} ms`, name);
      } else if (error === undefined) {
        // Ended without a terminal state (the server went away cleanly): ask the row.
        accept(await get());
        if (done()) return finish();
        error = unavailable(`the watch of job ${jobId} ended early`, name);
      } else if (this.refreshAfter(error, refreshed)) {
        refreshed = true;
        continue;
      } else if (!isRetryable(this.retry, error, Idempotency.SAFE)) {
        throw error;
      }
      last = error;
      failures += 1;
      if (failures >= this.retry.maxAttempts) throw error;
      resumes += 1;
      const delay = retryDelay(this.retry, failures, error);
      this.onRetry?.({ method: name, attempt: failures, delayMs: delay, error });
      await this.sleep(delay);
    }
  }

  // --- downloads -----------------------------------------------------------------------------

  /**
   * Downloads a SUCCEEDED export into memory; a dropped stream resumes at the byte offset already
   * received. Resolves only when size and sha256 match what the server announced
   * (DownloadVerificationError otherwise).
   */
  async download(
    exportId: string,
    options: { chunkSize?: number; onBytes?: (received: number, total: number) => void; timeoutMs?: number } = {},
  ): Promise<Download> {
    const name = "dashboard.v1.ExportService/DownloadExport";
    const chunks: Uint8Array[] = [];
    let received = 0;
    let expected: ExportFile | undefined;
    let failures = 0;
    let resumes = 0;
    let refreshed = false;
    let last: TesseraError | undefined;
    const deadline = options.timeoutMs ? this.now() + options.timeoutMs : undefined;
    for (;;) {
      const timeoutMs = this.remaining(deadline, name, last);
      try {
        const stream = this.exports.downloadExport(
          { id: exportId, chunkSize: options.chunkSize ?? 0, offset: BigInt(received) },
          { timeoutMs },
        );
        for await (const part of stream) {
          if (part.part.case === "file") {
            const file = part.part.value;
            if (expected === undefined) expected = file;
            else if (file.sha256 !== expected.sha256 || file.sizeBytes !== expected.sizeBytes) {
              throw new DownloadVerificationError(exportId, "file (it changed between resumed streams)", expected.sha256, file.sha256);
            }
          } else if (part.part.case === "chunk") {
            chunks.push(part.part.value);
            received += part.part.value.length;
            failures = 0;
            options.onBytes?.(received, Number(expected?.sizeBytes ?? 0n));
          }
        }
        if (expected === undefined) throw new DownloadVerificationError(exportId, "file announcement", "a file", "none");
        return { file: expected, bytes: await verify(exportId, expected, chunks, received), resumes };
      } catch (caught) {
        if (caught instanceof DownloadVerificationError) throw caught;
        last = dropped(TesseraError.from(caught, name), undefined);
      }
      if (this.refreshAfter(last, refreshed)) {
        refreshed = true;
        continue;
      }
      failures += 1;
      if (failures >= this.retry.maxAttempts || !isRetryable(this.retry, last, Idempotency.SAFE)) throw last;
      resumes += 1;
      const delay = retryDelay(this.retry, failures, last);
      this.onRetry?.({ method: name, attempt: failures, delayMs: delay, error: last });
      await this.sleep(delay);
    }
  }
}

async function verify(exportId: string, file: ExportFile, chunks: Uint8Array[], size: number): Promise<Uint8Array> {
  if (BigInt(size) !== file.sizeBytes) {
    throw new DownloadVerificationError(exportId, "size", String(file.sizeBytes), String(size));
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  const digest = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== file.sha256) throw new DownloadVerificationError(exportId, "sha256", file.sha256, hex);
  return bytes;
}

/**
 * connect-node reports a connection cut under a call as CANCELLED ("http/2 stream closed with
 * error code CANCEL"); when the caller did not cancel it, it is a lost connection: UNAVAILABLE
 * (what gRPC's own clients report), so that it is retried where that is safe.
 */
function dropped(error: TesseraError, signal: AbortSignal | undefined): TesseraError {
  if (error.code !== Code.Canceled || signal?.aborted) return error;
  return unavailable(`the connection was lost: ${error.rawMessage}`, error.method);
}

function unavailable(message: string, method: string): TesseraError {
  return new TesseraError(new ConnectError(message, Code.Unavailable), method);
}
