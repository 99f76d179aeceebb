/**
 * Where a `braid tune` process's fixed costs go (issue 6 (c): each arm pays them once): one fresh
 * process opens the CUDA library (the dynamic loader maps libbraid_cuda and the cuDNN and cuBLAS
 * libraries it links), counts devices (cuInit), queries a 32-SM split (cudaSetDevice: the primary
 * context), makes a braid context (its stream, cuDNN and cuBLAS handles, cuDNN's sub-libraries
 * loaded), makes a second one (what a context costs once the libraries are in), and tunes a
 * convolution three times (the first loads cuDNN's engine libraries and kernels). Prints one JSON
 * line: each step's ms, and when the script began, ms since the process started. The process
 * then ends as the CLI ends it (lib/cli/exit.ts, BRAID_EXIT): `bash bench/device.sh
 * startup-probe` times each process from outside, so the exit's share is what the outside sees
 * after the printed end.
 *
 *   deno run -A bench/startup_probe.ts
 */
import { Backend } from "../ffi/backend.ts";
import { exitProcess } from "../lib/cli/exit.ts";
import { encodeRecord } from "../ffi/params.ts";

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
// The first context is left to the process's exit, as `braid tune` leaves its last session.
const ctx = step("first context (cuDNN, cuBLAS)", () => backend.contextCreate(0));
step("second context", () => backend.contextDestroy(backend.contextCreate(0)));
/** A 3×3 convolution's kernel, stride and padding. */
const threeByThree = { kh: 3, kw: 3, stride_h: 1, stride_w: 1, pad_top: 1, pad_left: 1 };
/** Tunes a 3×3 convolution of c channels in and out, hw × hw, on buffers of its own. */
const tuneConv = (c: number, hw: number) => {
  const shape = { n: 1, c, h: hw, w: hw, k: c, oh: hw, ow: hw, dilation_h: 1, dilation_w: 1 };
  const params = encodeRecord("conv2d", {
    ...shape,
    ...threeByThree,
    groups: 1,
    activation: 0,
    act_min: 0,
    act_max: 0,
    algorithm: -1,
    workspace_bytes: 1 << 26,
    allow_tf32: 1,
  });
  const floats = (n: number) => backend.bufferAlloc(ctx, n * 4);
  const tensors = [floats(c * hw * hw), floats(c * c * 9), 0n, 0n, floats(c * hw * hw)];
  backend.conv2dTune(ctx, 0n, params, [...tensors, backend.bufferAlloc(ctx, 1 << 26)]);
};
step("first convolution tuned", () => tuneConv(64, 56));
step("the same shape tuned again", () => tuneConv(64, 56));
step("another shape tuned", () => tuneConv(128, 28));
console.log(JSON.stringify({ startedAtMs: began, endedAtMs: performance.now(), steps }));
exitProcess(0);
