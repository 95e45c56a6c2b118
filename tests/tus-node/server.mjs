// A reference tus 1.0 server (@tus/server with @tus/file-store) for the benchmark in
// benches/tus.sh: uploads land in --dir, the endpoint is http://127.0.0.1:PORT/files.
// node server.mjs --port PORT --dir DIR
import { parseArgs } from "node:util";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const { values: args } = parseArgs({
  options: { port: { type: "string" }, dir: { type: "string" } },
});
if (!args.port || !args.dir) {
  process.stderr.write("server.mjs: --port and --dir are required\n");
  process.exit(1);
}
const server = new Server({ path: "/files", datastore: new FileStore({ directory: args.dir }) });
server.listen({ host: "127.0.0.1", port: Number(args.port) }, () => {
  process.stderr.write(`@tus/server listening on http://127.0.0.1:${args.port}/files\n`);
});
