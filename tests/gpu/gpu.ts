/**
 * Shared by the GPU tests: the probe that decides whether they run, their registration, and
 * comparison helpers.
 *
 * The probe opens the CUDA backend (ffi/backend.ts) and asks for its device count. Without a
 * usable GPU every GPU test is registered with `ignore: true` and each test file prints one line,
 * `skipped GPU tests: <reason>`; with BRAID_GPU_TESTS=1 (make test-gpu) a missing GPU is an error
 * instead, so a GPU machine can never pass by skipping.
 */
import { Backend } from "../../ffi/backend.ts";
import { relativeError } from "../reference.ts";
import { BASE_SEED, worstElements } from "../helpers.ts";

export { BASE_SEED, relativeError };

/** Whether the GPU tests must run (set by `make test-gpu`). */
export const REQUIRED = Deno.env.get("BRAID_GPU_TESTS") === "1";

export type Probe = { available: true; backend: Backend; devices: number } | {
  available: false;
  reason: string;
};

function probe(): Probe {
  let reason: string;
  try {
    const backend = Backend.open("cuda");
    const devices = backend.deviceCount();
    if (devices > 0) return { available: true, backend, devices };
    reason = "the CUDA backend loaded but reports no GPU (braid_device_count = 0)";
  } catch (e) {
    reason = (e as Error).message.replace(/\s+/g, " ").trim();
  }
  if (REQUIRED) throw new Error(`BRAID_GPU_TESTS=1 but no GPU is usable: ${reason}`);
  return { available: false, reason };
}

export const GPU: Probe = probe();

/** The CUDA backend; only call inside a registered GPU test. */
export function cuda(): Backend {
  if (!GPU.available) throw new Error("no GPU: this test should have been ignored");
  return GPU.backend;
}

type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/**
 * Returns the registration function of one test file; prints the file's one skip line when
 * there is no GPU.
 */
export function gpuSuite(file: string): (name: string, fn: TestFn) => void {
  if (!GPU.available) console.log(`skipped GPU tests: ${GPU.reason} (${file})`);
  return (name, fn) => Deno.test({ name: `[cuda] ${name}`, ignore: !GPU.available, fn });
}

/** Asserts ‖got − want‖ / ‖want‖ < tolerance (NaN never passes); returns the error. */
export function expectClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tolerance: number,
  what: string,
): number {
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length} elements, expected ${want.length}`);
  }
  const error = relativeError(got, want);
  if (!(error < tolerance)) {
    throw new Error(
      `${what}: relative error ${error} >= ${tolerance}; worst: ${worstElements(got, want)}`,
    );
  }
  return error;
}

/**
 * Runs a script in a Deno process of its own (`deno eval`, from the cache only), with `env` added
 * to this one's: for what a process reads once, as the library's environment switches. Its exit
 * code and its output, decoded.
 */
export async function evalInProcess(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--cached-only", script],
    env,
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}
