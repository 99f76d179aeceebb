/**
 * The Deno binding of the symbol table: Deno.dlopen, and Deno's pointer views for page-locked
 * host memory. Only ffi/library.ts calls it, and only when running in Deno.
 */
import type { BraidLibrary } from "./library.ts";
import { symbols } from "./symbols.ts";

export function bindDeno(path: string): BraidLibrary {
  const lib = Deno.dlopen(path, symbols);
  return {
    symbols: lib.symbols,
    view: (address, bytes) =>
      Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(address)!, bytes),
  };
}
