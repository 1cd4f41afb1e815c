// A Node.js client nobody on this team wrote the stubs for: @grpc/grpc-js with
// @grpc/proto-loader reading the .proto contracts at run time. Creates a dashboard, reads it
// back and prints both as JSON for the Python test to check.
import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [address, token, facility] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const definition = protoLoader.loadSync("dashboard/v1/dashboard.proto", {
  includeDirs: [path.join(root, "proto"), path.join(root, "build/proto-deps")],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).dashboard.v1;
const client = new v1.DashboardService(address, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${token}`);

const call = (method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, (err, response) => (err ? reject(err) : resolve(response))),
  );

try {
  const created = await call("CreateDashboard", {
    dashboard: { facility_id: facility, title: "From Node.js", tags: ["node"], visibility: "VISIBILITY_PUBLIC" },
  });
  const fetched = await call("GetDashboard", { id: created.id });
  let notFound = null;
  try {
    await call("GetDashboard", { id: "00000000-0000-4000-8000-000000000000" });
  } catch (err) {
    notFound = { code: err.code, details: err.details };
  }
  console.log(JSON.stringify({ created, fetched, notFound }));
  client.close();
} catch (err) {
  console.error(`rpc failed: ${err.code} ${err.details}`);
  process.exit(1);
}
