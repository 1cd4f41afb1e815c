// The browser entry point: the same client over the Connect protocol (default) or gRPC-Web,
// with fetch, against the server's HTTP face.
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { TesseraClient, type ClientOptions } from "./client.js";

export * from "./index.js";

export interface BrowserClientOptions extends Omit<ClientOptions, "transport"> {
  /** The HTTP face's origin and prefix, e.g. "https://tessera.example" (paths are /<service>/<method>). */
  baseUrl: string;
  /** "connect" (default; JSON or binary over HTTP/1.1 or 2) or "grpc-web". */
  protocol?: "connect" | "grpc-web";
  /** Connect only: binary protobuf instead of JSON (default true). */
  binary?: boolean;
}

export function browserTransport(options: Pick<BrowserClientOptions, "baseUrl" | "protocol" | "binary">) {
  if (options.protocol === "grpc-web") {
    return createGrpcWebTransport({ baseUrl: options.baseUrl, useBinaryFormat: true });
  }
  return createConnectTransport({ baseUrl: options.baseUrl, useBinaryFormat: options.binary ?? true });
}

export function createBrowserClient(options: BrowserClientOptions): TesseraClient {
  const { baseUrl, protocol, binary, ...rest } = options;
  return new TesseraClient({ ...rest, transport: browserTransport({ baseUrl, protocol, binary }) });
}
