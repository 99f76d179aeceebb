/** `braid run FILE.braid` and `braid demo`: run on seeded random input, print top-5 and latency. */
import { BraidError } from "../errors.ts";
import { numel } from "../ir/graph.ts";
import { buildZooModel } from "../models/index.ts";
import { loadModel, type Model, saveModel } from "../runtime/model.ts";
import { type DeviceOption, type HostTensor, Session } from "../runtime/session.ts";
import { Random } from "../util/random.ts";
import { bytes, paint } from "./output.ts";
import type { SchedulerName } from "../schedule/mod.ts";

export interface RunOptions {
  device: DeviceOption;
  batch?: number;
  runs: number;
  eager?: boolean;
  scheduler?: SchedulerName;
}

/** Softmax of one row of logits, and its five most likely classes. */
export function topK(logits: Float32Array, k = 5): { index: number; probability: number }[] {
  const max = logits.reduce((m, v) => Math.max(m, v), -Infinity);
  const exp = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exp.reduce((s, v) => s + v, 0);
  return exp.map((e, index) => ({ index, probability: e / sum }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}

/** Seeded random inputs: uniform [0, 1) images, or token ids for integer inputs. */
export function randomInputs(session: Session, seed = 1): Record<string, HostTensor> {
  const random = new Random(seed);
  return Object.fromEntries(session.inputs.map((v) => {
    const n = numel(v.shape);
    const data = v.dtype === "int32"
      ? Int32Array.from({ length: n }, () => random.int(0, 999))
      : random.floats(n, 0, 1);
    return [v.name, data];
  }));
}

export async function run(path: string, options: RunOptions): Promise<number> {
  using model = await loadModel(path);
  return await runModel(model, options);
}

async function runModel(model: Model, options: RunOptions): Promise<number> {
  const start = performance.now();
  using session = await Session.create(model, {
    device: options.device,
    batch: options.batch,
    eager: options.eager,
    scheduler: options.scheduler,
  });
  const prepareMs = performance.now() - start;
  const inputs = randomInputs(session);
  let outputs: Record<string, HostTensor> = {};
  for (let i = 0; i < options.runs; i++) outputs = await session.run(inputs);
  const report = session.report();
  const [first] = session.outputs;
  const logits = outputs[first.name] as Float32Array;
  const row = logits.subarray(0, first.shape.at(-1));
  if (!row.every(Number.isFinite)) {
    throw new BraidError("NATIVE_INTERNAL", `output "${first.name}" is not finite`);
  }
  console.log(
    `${paint("bold", report.model)} on ${report.device.name} (${report.device.backend}), ` +
      `batch ${report.batch}, ${report.scheduler} schedule, ${report.eager ? "eager" : "graph"}`,
  );
  console.log(
    `  ${report.ops} ops (${report.modelOps} before rewrites), ${report.kernelLaunches} kernels, ` +
      `arena ${bytes(report.arenaBytes)} (no reuse: ${bytes(report.noReuseBytes)}), ` +
      `weights ${bytes(report.weightBytes)}, prepared in ${prepareMs.toFixed(0)} ms`,
  );
  console.log(`top-5 of "${first.name}" (first batch item):`);
  for (const { index, probability } of topK(row)) {
    console.log(`  class ${String(index).padStart(4)}  p=${probability.toFixed(5)}`);
  }
  console.log(
    `latency: median ${report.latency.medianMs.toFixed(2)} ms, min ` +
      `${report.latency.minMs.toFixed(2)} ms over ${report.latency.runs} runs`,
  );
  return 0;
}

/** googlenet end to end: write the zoo file once, load it back, run it. */
export async function demo(options: RunOptions): Promise<number> {
  const path = new URL("../../build/googlenet.braid", import.meta.url).pathname;
  try {
    await Deno.stat(path);
  } catch {
    await Deno.mkdir(new URL("../../build/", import.meta.url).pathname, { recursive: true });
    await saveModel(buildZooModel("googlenet"), path);
    console.log(`wrote ${path}`);
  }
  return await run(path, options);
}
