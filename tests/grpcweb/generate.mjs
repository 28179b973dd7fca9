// Generates the JavaScript message and service descriptors the test imports (gen/, git-ignored)
// from Cairn's own .proto files, so they never drift from what the server speaks.
//
// protoc: $PROTOC if set (as prost-build reads it), else the binary of the protoc-bin-vendored
// crate that the Rust build unpacked into cargo's registry, else `protoc` on PATH.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const protoRoot = join(here, "..", "..", "proto", "protos");
const out = join(here, "gen");
const plugin = join(here, "node_modules", ".bin", "protoc-gen-es");
const protos = ["mvccpb/kv.proto", "authpb/auth.proto", "etcdserverpb/rpc.proto", "browserpb/browser.proto"];

function vendoredProtoc() {
  const registry = join(process.env.CARGO_HOME || join(homedir(), ".cargo"), "registry", "src");
  if (!existsSync(registry)) return undefined;
  const candidates = [];
  for (const index of readdirSync(registry)) {
    for (const crate of readdirSync(join(registry, index))) {
      if (crate.startsWith("protoc-bin-vendored-linux-x86_64-")) {
        candidates.push(join(registry, index, crate, "bin", "protoc"));
      }
    }
  }
  // The newest version sorts last once its numeric parts are compared as numbers.
  candidates.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return candidates.filter((path) => existsSync(path)).pop();
}

function protoc() {
  if (process.env.PROTOC) return process.env.PROTOC;
  if (process.platform === "linux" && process.arch === "x64") {
    const vendored = vendoredProtoc();
    if (vendored) return vendored;
  }
  return "protoc";
}

if (!existsSync(plugin)) {
  console.error(`missing ${plugin}: run \`npm ci\` in ${here} first`);
  process.exit(1);
}
const compiler = protoc();
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
try {
  execFileSync(
    compiler,
    [
      `--plugin=protoc-gen-es=${plugin}`,
      `--es_out=${out}`,
      // Plain ES modules with `.js` imports: Node 20 runs them without a TypeScript step.
      "--es_opt=target=js,import_extension=js",
      `--proto_path=${protoRoot}`,
      ...protos,
    ],
    { stdio: "inherit" },
  );
} catch (error) {
  console.error(`generating code with ${compiler} failed: ${error.message}`);
  process.exit(1);
}
console.log(`generated ${protos.length} files into ${out} with ${compiler}`);
