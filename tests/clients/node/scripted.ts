import { createHash } from "node:crypto";
// The SDK against scripted failing gRPC servers (tests/clients/test_ts_retries.py starts them):
// `node scripted.js <scenario> <address>` runs one scenario and prints what it saw as JSON. Sleeps
// are recorded, not slept; jitter is at its top, so recorded delays are the caps.
import {
  createNodeClient,
  DownloadVerificationError,
  RefreshingToken,
  TesseraError,
  type NodeClientOptions,
  type TesseraClient,
} from "../../../clients/ts/src/node.js";

const [scenario, address] = process.argv.slice(2);
const sleeps: number[] = [];

function client(options: Partial<NodeClientOptions> = {}): TesseraClient {
  return createNodeClient({
    address: address ?? "",
    token: "t",
    retry: { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 1000, random: () => 1 },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...options,
  });
}

function described(error: unknown) {
  if (error instanceof TesseraError) {
    return {
      code: error.codeName,
      reason: error.reason,
      domain: error.errorInfo?.domain ?? "",
      metadata: error.errorInfo?.metadata ?? {},
      fieldViolations: error.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
      retryDelayMs: error.retryDelayMs ?? null,
      message: error.rawMessage,
    };
  }
  if (error instanceof DownloadVerificationError) return { verification: error.what };
  throw error;
}

async function outcome(call: () => Promise<unknown>) {
  try {
    return { ok: await call() };
  } catch (error) {
    return { error: described(error) };
  }
}

const scenarios: Record<string, () => Promise<unknown>> = {
  // KEYED: retried, the same request_id on every attempt.
  create: () => outcome(async () => (await client().dashboards.createDashboard({ dashboard: { title: "Beds" } })).id),
  createWithId: () =>
    outcome(async () =>
      (await client().dashboards.createDashboard({ dashboard: { title: "Beds" }, requestId: "5b0d3f4e-8d4c-4a8e-9a59-0d1f1f1f1f1f" })).id,
    ),
  // UNSAFE: never retried.
  update: () =>
    outcome(() => client().dashboards.updateDashboard({ dashboard: { id: "b-1", title: "x" }, updateMask: { paths: ["title"] } })),
  // Refused before any work (RATE_LIMITED, SERVER_OVERLOADED): retried even when UNSAFE.
  updateRefused: () =>
    outcome(async () => (await client().dashboards.updateDashboard({ dashboard: { id: "b-1", title: "once" }, updateMask: { paths: ["title"] } })).title),
  deleteRefused: () =>
    outcome(async () => {
      await client({ retry: { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 1000, random: () => 1 } }).dashboards.deleteDashboard({ id: "b-1" });
      return "deleted";
    }),
  // A stream refused before its first message is opened again; one failing later is not.
  streamRefused: () =>
    outcome(async () => {
      const seen: string[] = [];
      for await (const event of client().widgets.watchMaterializationJob({ id: "j" })) {
        if (event.event.case === "job") seen.push(String(event.event.value.revision));
      }
      return seen;
    }),
  streamRefusedLate: () =>
    outcome(async () => {
      const seen: string[] = [];
      try {
        for await (const event of client().widgets.watchMaterializationJob({ id: "j" })) {
          if (event.event.case === "job") seen.push(String(event.event.value.revision));
        }
      } catch (error) {
        return { seen, error: described(error) };
      }
      return { seen };
    }),
  watchRefused: () =>
    outcome(async () => {
      const { job, resumes } = await client().followMaterialization("j");
      return { final: String(job.revision), resumes };
    }),
  // SAFE.
  get: () => outcome(async () => (await client().dashboards.getDashboard({ id: "b-9" })).id),
  getThreeAttempts: () =>
    outcome(async () =>
      (await client({ retry: { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 1000, random: () => 1 } }).dashboards.getDashboard({ id: "b-9" })).id,
    ),
  pages: () =>
    outcome(async () => {
      const c = client();
      const ids: string[] = [];
      for await (const d of c.pages(c.dashboards.listDashboards, { pageSize: 3 }, (r) => r.dashboards)) ids.push(d.id);
      return ids;
    }),
  refresh: () =>
    outcome(async () => {
      const tokens = ["old", "new"];
      const source = new RefreshingToken(async () => ({ token: tokens.shift() ?? "none", expiresAt: new Date(Date.now() + 3_600_000) }));
      const id = (await client({ token: source }).dashboards.getDashboard({ id: "x" })).id;
      return { id, fetches: source.fetches };
    }),
  staticExpired: () => outcome(() => client({ token: "old" }).dashboards.getDashboard({ id: "x" })),
  invalid: () => outcome(() => client().dashboards.createDashboard({ dashboard: { title: "" } })),
  notFound: () => outcome(() => client().dashboards.getDashboard({ id: "x" })),
  watch: () =>
    outcome(async () => {
      const seen: string[] = [];
      const { job, resumes } = await client().followMaterialization("j", { onProgress: (j) => seen.push(String(j.revision)) });
      return { seen, final: String(job.revision), state: job.state, resumes };
    }),
  watchStalled: () =>
    outcome(async () => {
      const { job, resumes } = await client({ stallTimeoutMs: 1000 }).followMaterialization("j", { check: false });
      return { final: String(job.revision), state: job.state, resumes };
    }),
  watchMissing: () => outcome(() => client().followMaterialization("j")),
  // The highest write position a server reported goes back on the next calls.
  lsn: () =>
    outcome(async () => {
      const c = client();
      for (const id of ["w1", "w2", "w3", "r1"]) await c.dashboards.getDashboard({ id });
      return "ok";
    }),
  // Several addresses: each call to the next live one; a dead one costs at most a retry.
  balanced: () =>
    outcome(async () => {
      const c = client();
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await c.dashboards.getDashboard({ id: `b-${i}` })).id);
      return ids;
    }),
  download: () =>
    outcome(async () => {
      const progress: number[] = [];
      const got = await client().download("x", { onBytes: (n) => progress.push(n) });
      return {
        size: got.bytes.length,
        sha256: createHash("sha256").update(got.bytes).digest("hex"),
        filename: got.file.filename,
        resumes: got.resumes,
        lastProgress: progress.at(-1),
      };
    }),
};

const run = scenario ? scenarios[scenario] : undefined;
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
console.log(JSON.stringify({ result: await run(), sleeps }));
