/**
 * Finding and opening libbraid_{cpu,cuda}.so: BRAID_LIB first (for the backend it names), then
 * build/ beside this module. A failure lists every path tried and how to build the library.
 */
import { BraidError } from "../lib/errors.ts";
import { type BraidSymbols, symbols } from "./symbols.ts";

export type BackendKind = "cpu" | "cuda";

export const LIBRARY_FILE: Record<BackendKind, string> = {
  cpu: "libbraid_cpu.so",
  cuda: "libbraid_cuda.so",
};

const BUILD_HINT: Record<BackendKind, string> = {
  cpu: "build it with `make cpu`",
  cuda: "build it with `make cuda` on a machine with CUDA and cuDNN",
};

export type BraidLibrary = Deno.DynamicLibrary<BraidSymbols>;

/** Candidate paths for a backend, in the order they are tried. */
export function candidatePaths(kind: BackendKind): string[] {
  const paths: string[] = [];
  const fromEnv = Deno.env.get("BRAID_LIB");
  // BRAID_LIB may name one library file, or a folder holding both.
  if (fromEnv) {
    if (fromEnv.endsWith(".so")) {
      // A file named for the other backend is not tried for this one.
      const file = fromEnv.split("/").at(-1)!;
      const other = kind === "cpu" ? LIBRARY_FILE.cuda : LIBRARY_FILE.cpu;
      if (file !== other) paths.push(fromEnv);
    } else paths.push(`${fromEnv.replace(/\/$/, "")}/${LIBRARY_FILE[kind]}`);
  }
  paths.push(new URL(`../build/${LIBRARY_FILE[kind]}`, import.meta.url).pathname);
  return paths;
}

const opened = new Map<BackendKind, BraidLibrary>();

/** Opens (once per process) the shared library of a backend, from `paths` in order. */
export function openLibrary(kind: BackendKind, paths = candidatePaths(kind)): BraidLibrary {
  const cached = opened.get(kind);
  if (cached) return cached;
  const tried: string[] = [];
  for (const path of paths) {
    try {
      const lib = Deno.dlopen(path, symbols);
      opened.set(kind, lib);
      return lib;
    } catch (e) {
      tried.push(`  ${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  throw new BraidError(
    "LIBRARY_NOT_FOUND",
    `could not load the braid ${kind} library ${LIBRARY_FILE[kind]}; tried:\n${
      tried.join("\n")
    }\n` +
      `Set BRAID_LIB to the library (or its folder), or ${BUILD_HINT[kind]}.`,
  );
}
