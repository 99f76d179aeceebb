/**
 * `braid import FILE.onnx -o FILE.braid`: converts an ONNX model and prints what it became.
 * A progress bar goes to stderr while a large model is mapped, on a terminal only. `--check` runs
 * the imported model on CUDA and on the CPU backend and compares them (a GPU is needed).
 */
import { Backend } from "../../ffi/backend.ts";
import { graphFlops, parameterCount } from "../analysis/cost.ts";
import { BraidError } from "../errors.ts";
import { batchOf, type Graph, numel } from "../ir/graph.ts";
import { inferShapes } from "../ir/validate.ts";
import { importOnnx, type ImportSummary } from "../onnx/mod.ts";
import { saveModel } from "../runtime/model.ts";
import { type HostTensor, Session } from "../runtime/session.ts";
import type { SchedulerName } from "../schedule/mod.ts";
import { Random } from "../util/random.ts";
import { relativeError } from "../util/relative_error.ts";
import { bytes, count, flops, paint } from "./output.ts";

export interface ImportCommandOptions {
  output?: string;
  batch?: number;
  /** "NAME=D0,D1,..." for inputs with symbolic dimensions. */
  shapes?: string[];
  check: boolean;
  scheduler: SchedulerName;
}

/** Models at least this large get a progress bar (on a terminal). */
const PROGRESS_BYTES = 8 * 2 ** 20;
/** --check passes when CUDA and the CPU agree this closely (TF32 convolutions on CUDA). */
const CHECK_TOLERANCE = 3e-3;

export async function importCommand(file: string, o: ImportCommandOptions): Promise<number> {
  if (!o.output) throw new BraidError("USAGE", "usage: braid import FILE.onnx -o FILE.braid");
  const size = await fileSize(file);
  const bar = size >= PROGRESS_BYTES && Deno.stderr.isTerminal() ? new ProgressBar() : undefined;
  bar?.draw(0, 1, `reading ${bytes(size)}`);
  const { graph, summary } = await importOnnx(file, {
    batch: o.batch,
    inputShapes: parseShapes(o.shapes ?? []),
    onProgress: bar && ((done, total) => bar.draw(done, total, "mapping nodes")),
  });
  bar?.clear();
  printSummary(graph, summary);
  bar?.draw(1, 1, `writing ${o.output}`);
  const written = await saveModel(graph, o.output);
  bar?.clear();
  console.log(`wrote ${o.output} (${bytes(written)})`);
  return o.check ? await check(graph, o.scheduler) : 0;
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await Deno.stat(file)).size;
  } catch (e) {
    throw new BraidError(
      "MALFORMED_FILE",
      `cannot read ONNX file ${file}: ${(e as Error).message}`,
    );
  }
}

function parseShapes(specs: string[]): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const spec of specs) {
    const m = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(spec);
    if (!m) throw new BraidError("USAGE", `--shape must be NAME=D0,D1,..., got "${spec}"`);
    shapes[m[1]] = m[2].split(",").map(Number);
  }
  return shapes;
}

function printSummary(graph: Graph, s: ImportSummary): void {
  const shapes = inferShapes(graph);
  const ops = Object.entries(s.opTypes).sort((a, b) => b[1] - a[1]);
  console.log(
    `${paint("bold", s.source)}: ${s.producer || "unknown producer"}, IR ${s.irVersion}, ` +
      `opset ${s.opset}${
        s.opset < 13 || s.opset > 21 ? paint("yellow", " (braid maps 13-21)") : ""
      }`,
  );
  console.log(
    `  ONNX nodes   ${count(s.onnxNodes)}: ${ops.map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  console.log(
    `  ops mapped   ${count(s.onnxNodes - s.folded - s.aliased)} nodes → ${count(s.braidNodes)} ` +
      `braid ops; ${count(s.folded)} folded as constants, ${count(s.aliased)} identities ` +
      `removed, ${s.geluFused} Erf chains fused into Gelu, ${s.padsFolded} pads folded into ` +
      `padding`,
  );
  console.log(`  parameters   ${count(parameterCount(graph))}`);
  console.log(`  FLOPs        ${flops(graphFlops(graph, shapes))} at batch ${batchOf(graph)}`);
  console.log(
    `  weights      ${bytes(s.viewBytes + s.copiedBytes)} (${bytes(s.viewBytes)} read in place, ` +
      `${bytes(s.copiedBytes)} converted or copied)`,
  );
  console.log(`  unsupported  ${paint("green", "none")}`);
}

/** Runs the graph on CUDA and on the CPU on the same random inputs and compares the outputs. */
async function check(graph: Graph, scheduler: SchedulerName): Promise<number> {
  const gpu = cudaAvailable();
  if (gpu !== true) {
    console.log(
      `${paint("yellow", "check skipped")}: no GPU here (${gpu}); --check compares the CUDA ` +
        `backend with the CPU backend and needs both`,
    );
    return 0;
  }
  const inputs = randomInputs(graph);
  using cpu = await Session.create(graph, { device: "cpu", scheduler: "sequential" });
  using cuda = await Session.create(graph, { device: "cuda", scheduler });
  const [want, got] = [cpu.runSync(inputs), cuda.runSync(inputs)];
  let worst = 0;
  for (const name of graph.outputs) {
    const error = relativeError(got[name], want[name]);
    worst = Math.max(worst, error);
    console.log(`  ${name}: CUDA vs CPU relative error ${error.toExponential(2)}`);
  }
  const ok = worst <= CHECK_TOLERANCE;
  console.log(
    `check ${ok ? paint("green", "passed") : paint("red", "FAILED")}: ‖cuda − cpu‖ / ‖cpu‖ ` +
      `= ${worst.toExponential(2)} (tolerance ${CHECK_TOLERANCE}, ${cuda.report().scheduler} ` +
      `schedule on ${cuda.report().device.name})`,
  );
  return ok ? 0 : 1;
}

/** true when the CUDA library loads and sees a GPU, else why not. */
function cudaAvailable(): true | string {
  try {
    const backend = Backend.open("cuda");
    return backend.deviceCount() > 0 || "the CUDA library found no GPU";
  } catch (e) {
    return e instanceof Error ? e.message.split("\n")[0] : String(e);
  }
}

/**
 * Seeded inputs: floats in [0, 1); integer inputs (token ids) below the size of every table they
 * index, so that each Gather stays in range.
 */
function randomInputs(graph: Graph): Record<string, HostTensor> {
  const random = new Random(1);
  const shapes = inferShapes(graph);
  return Object.fromEntries(graph.inputs.map((name) => {
    const v = shapes.get(name)!;
    const n = numel(v.shape);
    if (v.dtype !== "int32") return [name, random.floats(n, 0, 1)];
    let bound = 1000;
    for (const node of graph.nodes) {
      if (node.op !== "Gather" || node.inputs[1] !== name) continue;
      const data = shapes.get(node.inputs[0])!.shape;
      const axis = (node.attrs as { axis: number }).axis;
      bound = Math.min(bound, data[axis < 0 ? axis + data.length : axis]);
    }
    return [name, Int32Array.from({ length: n }, () => random.int(0, bound - 1))];
  }));
}

/** A one-line progress bar on stderr, redrawn in place. */
class ProgressBar {
  readonly #encoder = new TextEncoder();
  #last = -1;
  #label = "";

  draw(done: number, total: number, label: string): void {
    const percent = Math.floor((100 * done) / Math.max(1, total));
    if (percent === this.#last && label === this.#label) return;
    this.#last = percent;
    this.#label = label;
    const width = 30;
    const filled = Math.round((width * percent) / 100);
    const text = `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${percent}% ${label}`;
    Deno.stderr.writeSync(this.#encoder.encode(text));
  }

  clear(): void {
    Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[2K"));
    this.#last = -1;
  }
}
