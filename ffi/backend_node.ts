/**
 * The Node binding of the symbol table, on koffi: every entry of ffi/symbols.ts is declared from
 * its native types (i32 → int32_t, u64 → uint64_t, buffer → void *), so the two runtimes read one
 * table. Handles go in and come out (through BigUint64Array slots) as bigint, as in Deno; typed
 * arrays pass as pointers to their bytes; koffi.view gives an ArrayBuffer over page-locked host
 * memory, as Deno.UnsafePointerView.getArrayBuffer does. Only ffi/library.ts calls it, and only
 * when not running in Deno.
 */
import { createRequire } from "node:module";
import type { BraidLibrary } from "./library.ts";
import { type NativeFunctions, type NativeType, symbols } from "./symbols.ts";

/**
 * The part of koffi used here. koffi is loaded with require() when the first library is opened,
 * not imported: Deno type-checks and loads this file too (it never calls it), and koffi is a
 * dependency of the npm package only.
 */
interface Koffi {
  load(path: string): {
    func(name: string, result: string, parameters: string[]): KoffiFunction;
  };
  view(pointer: bigint, length: number): ArrayBuffer;
}

/** A koffi function: called directly, or with .async on libuv's thread pool. */
interface KoffiFunction {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}

/** A nonblocking entry (symbols.ts) as a promise of its status, like Deno's nonblocking FFI. */
const promised = (f: KoffiFunction) => (...args: unknown[]): Promise<unknown> =>
  new Promise((resolve, reject) =>
    f.async(...args, (error: unknown, status: unknown) => error ? reject(error) : resolve(status))
  );

const KOFFI_TYPE: Record<NativeType, string> = {
  i32: "int32_t",
  u64: "uint64_t",
  buffer: "void *",
};

let koffi: Koffi | undefined;

export function bindNode(path: string): BraidLibrary {
  const ffi = koffi ??= createRequire(import.meta.url)("koffi") as Koffi;
  const lib = ffi.load(path);
  const bound = Object.fromEntries(
    Object.entries(symbols).map(([name, definition]) => {
      const { parameters, result } = definition;
      const f = lib.func(name, KOFFI_TYPE[result], parameters.map((type) => KOFFI_TYPE[type]));
      return [name, "nonblocking" in definition && definition.nonblocking ? promised(f) : f];
    }),
  );
  return {
    symbols: bound as unknown as NativeFunctions,
    view: (address, bytes) => ffi.view(address, bytes),
  };
}
