/**
 * Where a `braid tune` process's fixed costs go (issue 6 (c): each arm pays them once): one fresh
 * process opens the CUDA library (the dynamic loader maps libbraid_cuda and the cuDNN and cuBLAS
 * libraries it links), counts devices (cuInit), queries a 32-SM split (cudaSetDevice: the primary
 * context), makes a braid context (its stream, cuDNN and cuBLAS handles, cuDNN's sub-libraries
 * loaded), and makes a second one (what a context costs once the libraries are in). Prints one JSON line: each step's ms, and when the
 * script began, ms since the process started. The process then ends as the CLI ends it
 * (lib/cli/exit.ts, BRAID_EXIT): `bash bench/device.sh startup-probe` times each process from
 * outside, so the exit's share is what the outside sees after the printed end.
 *
 *   deno run -A bench/startup_probe.ts
 */
import { Backend } from "../ffi/backend.ts";
import { exitProcess } from "../lib/cli/exit.ts";

const began = performance.now();
const steps: Record<string, number> = {};
let last = began;
const step = <T>(name: string, run: () => T): T => {
  const value = run();
  const now = performance.now();
  steps[name] = now - last;
  last = now;
  return value;
};

const backend = step("open the library", () => Backend.open("cuda"));
step("count devices (cuInit)", () => backend.deviceCount());
step("query a 32-SM split (primary context)", () => backend.partitionQuery(0, 32, 0));
step("first context (cuDNN, cuBLAS)", () => backend.contextCreate(0)); // left to the exit
step("second context", () => backend.contextDestroy(backend.contextCreate(0)));
console.log(JSON.stringify({ startedAtMs: began, endedAtMs: performance.now(), steps }));
exitProcess(0);
