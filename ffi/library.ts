/**
 * Finding and opening libbraid_{cpu,cuda}.so: BRAID_LIB first (for the backend it names), then
 * build/ beside the package (the repository's build/ in Deno; the npm package's build/ folder in
 * Node). A failure lists every path tried and how to build the library. This search is shared by
 * both runtimes; only the last step, binding the symbol table, differs (backend_deno.ts: Deno.dlopen,
 * backend_node.ts: koffi), chosen by the library's one runtime check (RUNTIME, lib/platform.ts).
 */
import { BraidError } from "../lib/errors.ts";
import { env, RUNTIME } from "../lib/platform.ts";
import type { NativeFunctions } from "./symbols.ts";
import { bindDeno } from "./backend_deno.ts";
import { bindNode } from "./backend_node.ts";

export type BackendKind = "cpu" | "cuda";

export const LIBRARY_FILE: Record<BackendKind, string> = {
  cpu: "libbraid_cpu.so",
  cuda: "libbraid_cuda.so",
};

const BUILD_HINT: Record<BackendKind, string> = {
  cpu: "build it with `make cpu`",
  cuda: "build it with `make cuda` on a machine with CUDA and cuDNN",
};

/** An opened library: the symbol table's functions, and views on native host memory. */
export interface BraidLibrary {
  readonly symbols: NativeFunctions;
  /** An ArrayBuffer over `bytes` bytes of native memory at `address`, without a copy. */
  view(address: bigint, bytes: number): ArrayBuffer;
}

/** Opens one library file and binds the symbol table (throws when the file does not load). */
export type Binder = (path: string) => BraidLibrary;

/** Candidate paths for a backend, in the order they are tried. */
export function candidatePaths(kind: BackendKind): string[] {
  const paths: string[] = [];
  const fromEnv = env("BRAID_LIB");
  // BRAID_LIB may name one library file, or a folder holding both.
  if (fromEnv) {
    if (fromEnv.endsWith(".so")) {
      // A file named for the other backend is not tried for this one.
      const file = fromEnv.split("/").at(-1)!;
      const other = kind === "cpu" ? LIBRARY_FILE.cuda : LIBRARY_FILE.cpu;
      if (file !== other) paths.push(fromEnv);
    } else paths.push(`${fromEnv.replace(/\/$/, "")}/${LIBRARY_FILE[kind]}`);
  }
  // This file is ffi/library.ts (ffi/library.js in the npm package): build/ is a sibling of ffi/.
  const beside = new URL(`../build/${LIBRARY_FILE[kind]}`, import.meta.url);
  paths.push(decodeURIComponent(beside.pathname));
  return paths;
}

const opened = new Map<BackendKind, BraidLibrary>();

/** Opens (once per process) the shared library of a backend, from `paths` in order. */
export function openLibrary(
  kind: BackendKind,
  paths: string[] = candidatePaths(kind),
  bind: Binder = RUNTIME === "deno" ? bindDeno : bindNode,
): BraidLibrary {
  const cached = opened.get(kind);
  if (cached) return cached;
  const tried: string[] = [];
  for (const path of paths) {
    try {
      const lib = bind(path);
      opened.set(kind, lib);
      return lib;
    } catch (e) {
      tried.push(`  ${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  throw new BraidError(
    "LIBRARY_NOT_FOUND",
    `could not load the braid ${kind} library ${LIBRARY_FILE[kind]}; tried:\n${
      tried.join("\n") || "  (no paths)"
    }\n` +
      `Set BRAID_LIB to the library (or its folder), or ${BUILD_HINT[kind]}.`,
  );
}
