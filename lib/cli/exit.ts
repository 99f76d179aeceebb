/**
 * How the braid command line ends its process. BRAID_EXIT=fast (the default) ends it through
 * libc's `_exit` once everything is written (files are awaited, and Deno writes stdout and stderr
 * unbuffered): the exit handlers of the CUDA runtime, cuDNN and cuBLAS, which unregister every
 * kernel image and free every handle one by one, are skipped, and the driver reclaims the
 * process's device state as it does after any exit. `teardown` ends it with Deno.exit, running
 * them. The command line is Deno's (lib/cli/main.ts); the library never ends a process.
 */
import { envChoice } from "../platform.ts";

/** BRAID_EXIT, else fast. */
export function exitModeFromEnv(): "fast" | "teardown" {
  return envChoice("BRAID_EXIT", ["fast", "teardown"]);
}

/**
 * Whether the process may end through `_exit`: on Linux, with FFI and BRAID_EXIT's reading
 * granted already (asking now would prompt on a terminal), and BRAID_EXIT not `teardown`. Throws
 * a BraidError for a BRAID_EXIT that is neither.
 */
export function fastExit(): boolean {
  const granted = (p: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(p).state === "granted";
  return Deno.build.os === "linux" && granted({ name: "ffi" }) &&
    granted({ name: "env", variable: "BRAID_EXIT" }) && exitModeFromEnv() === "fast";
}

/** Ends the process with `code`, through `_exit` where fastExit() allows, else Deno.exit. */
export function exitProcess(code: number): never {
  try {
    if (fastExit()) {
      const libc = Deno.dlopen("libc.so.6", { _exit: { parameters: ["i32"], result: "void" } });
      libc.symbols._exit(code);
    }
  } catch {
    // No glibc (musl, say), or a bad BRAID_EXIT (reported before the command ran): Deno.exit.
  }
  Deno.exit(code);
}
