// The Node.js entry point: the client over real gRPC (HTTP/2) with @connectrpc/connect-node.
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { roundRobin } from "./balance.js";
import { TesseraClient, type ClientOptions, type Download } from "./client.js";

export * from "./index.js";

export interface NodeClientOptions extends Omit<ClientOptions, "transport"> {
  /**
   * "127.0.0.1:50051" (plaintext) or a URL ("https://tessera.example:443"); several, comma
   * separated ("10.0.0.1:50051,10.0.0.2:50051"), are balanced round robin.
   */
  address: string;
  /** Interceptors of the gRPC transport (logging, metrics, tests). */
  interceptors?: Interceptor[];
}

export function grpcTransport(address: string, interceptors: Interceptor[] = []) {
  const addresses = address.split(",").map((a) => a.trim()).filter((a) => a);
  return roundRobin(
    addresses.map((one) => createGrpcTransport({ baseUrl: one.includes("://") ? one : `http://${one}`, interceptors })),
  );
}

/** A client over gRPC: `createNodeClient({ address: "127.0.0.1:50051", token })`. */
export function createNodeClient(options: NodeClientOptions): TesseraClient {
  const { address, interceptors, ...rest } = options;
  return new TesseraClient({ ...rest, transport: grpcTransport(address, interceptors) });
}

/** TESSERA_ADDRESS (default 127.0.0.1:50051) and TESSERA_TOKEN. */
export function clientFromEnv(overrides: Partial<NodeClientOptions> = {}): TesseraClient {
  return createNodeClient({
    address: process.env.TESSERA_ADDRESS ?? "127.0.0.1:50051",
    token: process.env.TESSERA_TOKEN,
    ...overrides,
  });
}

/**
 * Downloads an export and writes it to `destination` (a file, or an existing directory for the
 * server's suggested name) only once its size and sha256 are verified; returns the path.
 */
export async function downloadToFile(
  client: TesseraClient,
  exportId: string,
  destination: string,
  options: Parameters<TesseraClient["download"]>[1] = {},
): Promise<Download & { path: string }> {
  const download = await client.download(exportId, options);
  let target = destination;
  const isDir = await import("node:fs/promises").then((fs) => fs.stat(destination).then((s) => s.isDirectory(), () => false));
  if (isDir) target = path.join(destination, download.file.filename || exportId);
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.part`;
  await writeFile(partial, download.bytes);
  await rename(partial, target);
  return { ...download, path: target };
}
