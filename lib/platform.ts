/**
 * The runtime-specific services the library core needs, kept in one place so that the core
 * stays free of Deno-only APIs. RUNTIME is the library's one runtime check: these helpers and
 * the native binding (ffi/library.ts) pick their Deno or Node version by it. Both versions are
 * plain imports (node: built-ins ship with Deno too), so the files compiled for npm run
 * unchanged on either runtime.
 */
import * as node from "./platform_node.ts";
import { BraidError } from "./errors.ts";

export type Runtime = "deno" | "node";

export const RUNTIME: Runtime = "Deno" in globalThis ? "deno" : "node";

export function readFile(path: string): Promise<Uint8Array> {
  return RUNTIME === "deno" ? Deno.readFile(path) : node.readFile(path);
}

/**
 * A file's bytes in a SharedArrayBuffer (from offset 0): worker threads it is posted to see the
 * same memory, with no copy of their own.
 */
export async function readSharedFile(path: string): Promise<Uint8Array> {
  if (RUNTIME === "node") return await node.readSharedFile(path);
  using file = await Deno.open(path);
  const { size } = await file.stat();
  const bytes = new Uint8Array(new SharedArrayBuffer(size));
  for (let at = 0; at < size;) {
    const n = await file.read(bytes.subarray(at));
    if (n === null) throw new Error(`${path} ended at byte ${at} of ${size}`);
    at += n;
  }
  return bytes;
}

export function writeFile(path: string, bytes: Uint8Array): Promise<void> {
  return RUNTIME === "deno" ? Deno.writeFile(path, bytes) : node.writeFile(path, bytes);
}

export function env(name: string): string | undefined {
  return RUNTIME === "deno" ? Deno.env.get(name) : node.env(name);
}

/**
 * A switch set in the environment: one of `values`, the first when unset or empty; any other
 * value is a BAD_OPTION naming the variable and the values it takes.
 */
export function envChoice<T extends string>(name: string, values: readonly [T, ...T[]]): T {
  const value = env(name) || values[0];
  if (!(values as readonly string[]).includes(value)) {
    throw new BraidError("BAD_OPTION", `${name} is "${value}"; use ${values.join(" or ")}`);
  }
  return value as T;
}
