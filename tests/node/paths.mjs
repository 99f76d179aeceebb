/** Where the Node tests find things: the built package, and the Deno run's expected outputs. */
import { readFile } from "node:fs/promises";

const root = new URL("../../", import.meta.url);
export const repo = decodeURIComponent(root.pathname).replace(/\/$/, "");
/** The package as `deno task build:npm` wrote it. */
export const npm = `${repo}/npm`;
/** Written by tests/node/expected.ts (`make test-node` runs it first). */
export const fixtures = `${repo}/build/node-test`;

export async function expected() {
  return JSON.parse(await readFile(`${fixtures}/expected.json`, "utf8"));
}

/** A file's bytes as a Float32Array of its own (offset 0, so aligned). */
export async function readFloats(path) {
  const bytes = await readFile(path);
  return new Float32Array(new Uint8Array(bytes).buffer);
}
