// What every example shares: where the server is, who the caller is, how a step is printed, and
// the exit status (0 with OK at the end when every step did what the example says, 1 otherwise).
import { parseArgs } from "node:util";
import { createNodeClient, TesseraError, type TesseraClient } from "../src/node.js";

export class ExampleFailed extends Error {}

export function expect(condition: unknown, message: string): void {
  if (!condition) throw new ExampleFailed(message);
}

export function step(title: string): void {
  console.log(`\n== ${title}`);
}

export function say(text: string): void {
  console.log(`   ${text}`);
}

/** Prints an error the way the SDK exposes it: code, ErrorInfo reason, field violations. */
export function explain(error: TesseraError): void {
  say(`${error.codeName} [${error.reason}] ${error.rawMessage}`);
  for (const violation of error.fieldViolations) say(`  field ${violation.field}: ${violation.description}`);
}

/** Runs `call`, which must fail with `codeName`; returns the error. */
export async function refused(codeName: string, call: () => Promise<unknown>): Promise<TesseraError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof TesseraError && error.codeName === codeName) {
      explain(error);
      return error;
    }
    throw error;
  }
  throw new ExampleFailed(`expected ${codeName}, the call succeeded`);
}

export interface Args {
  address: string;
  token: string;
  viewerToken: string;
  keep: boolean;
  out: string;
}

export function args(): Args {
  const { values } = parseArgs({
    options: {
      address: { type: "string", default: process.env.TESSERA_ADDRESS ?? "127.0.0.1:50051" },
      token: { type: "string", default: process.env.TESSERA_TOKEN ?? "" },
      "viewer-token": { type: "string", default: process.env.TESSERA_VIEWER_TOKEN ?? "" },
      out: { type: "string", default: "example-exports" },
      keep: { type: "boolean", default: false },
    },
  });
  if (!values.token) {
    console.error("no token: pass --token or set TESSERA_TOKEN (export TESSERA_TOKEN=$(tessera token))");
    process.exit(2);
  }
  return {
    address: values.address ?? "",
    token: values.token,
    viewerToken: values["viewer-token"] ?? "",
    keep: values.keep ?? false,
    out: values.out ?? "example-exports",
  };
}

export function connect(a: Args, token = a.token): TesseraClient {
  return createNodeClient({
    address: a.address,
    token,
    headers: { "x-correlation-id": `example-ts-${crypto.randomUUID().slice(0, 12)}` },
  });
}

/** A tag of this run's own, so that lists find exactly what this run made. */
export function runTag(): string {
  return `example-${crypto.randomUUID().slice(0, 8)}`;
}

export async function main(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    console.error(`\nFAILED: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  console.log("\nOK");
}

/** Enum value name without its prefix: name(JobState, 3, "JOB_STATE_"). */
export function name(enumObject: Record<string, string | number>, value: number): string {
  return String(enumObject[value] ?? value);
}
