/**
 * For the npm build's compiler only: the Deno global, untyped. The library reaches Deno's API
 * only where RUNTIME is "deno" (lib/platform.ts, ffi/backend_deno.ts), and `deno check` types
 * those statements against the real declarations; tsc needs just the name. No exported
 * declaration of the package mentions it.
 */
// deno-lint-ignore no-explicit-any
declare const Deno: any;
