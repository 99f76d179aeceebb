/**
 * The runtime-specific services the library core needs, kept in one place so that the core
 * stays free of Deno-only APIs. RUNTIME is the library's one runtime check: these helpers and
 * the native binding (ffi/library.ts) pick their Deno or Node version by it. Both versions are
 * plain imports (node: built-ins ship with Deno too), so the files compiled for npm run
 * unchanged on either runtime.
 */
import * as node from "./platform_node.ts";

export type Runtime = "deno" | "node";

export const RUNTIME: Runtime = "Deno" in globalThis ? "deno" : "node";

export function readFile(path: string): Promise<Uint8Array> {
  return RUNTIME === "deno" ? Deno.readFile(path) : node.readFile(path);
}

export function writeFile(path: string, bytes: Uint8Array): Promise<void> {
  return RUNTIME === "deno" ? Deno.writeFile(path, bytes) : node.writeFile(path, bytes);
}

export function env(name: string): string | undefined {
  return RUNTIME === "deno" ? Deno.env.get(name) : node.env(name);
}
