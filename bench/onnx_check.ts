/**
 * braid's half of the ONNX device check (issue 5); bench/onnx_check.py exports the models and
 * writes PyTorch's outputs and latency into DIR first.
 *
 * For each model: import DIR/NAME.onnx, run it under every scheduler with TF32 convolutions (the
 * "default" precision, as PyTorch) and strict fp32, compare with PyTorch's output of the same
 * precision (relative error ‖a − b‖₂ / ‖b‖₂ as DESIGN.md §7, worst over outputs and schedulers), and
 * time the
 * captured graph of each default-precision session (median of CUDA-event-timed replays). Strict
 * results are also compared with PyTorch's float64 output, beside PyTorch's own fp32 error: two
 * fp32 implementations of a deep network differ by about the sum of their rounding errors. Prints
 * a table and writes JSON.
 *   deno run -A bench/onnx_check.ts --dir /tmp/onnx --json bench/results/onnx_check.json
 *   deno run -A bench/onnx_check.ts --dir /tmp/onnx --device cpu --schedulers sequential
 */
import { parseArgs } from "../lib/deps.ts";
import { BraidError, importOnnx, Session } from "../mod.ts";
import type { SchedulerName } from "../lib/schedule/mod.ts";
import { relativeError } from "../lib/util/relative_error.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    dir: { type: "string", default: "/tmp/onnx" },
    models: { type: "string" },
    device: { type: "string", default: "cuda" },
    schedulers: { type: "string", default: "sequential,auto,opara,nimble,ios" },
    precisions: { type: "string", default: "tf32,fp32" },
    runs: { type: "string", default: "200" },
    /** Stop starting new sessions after this many seconds (results so far are kept). */
    deadline: { type: "string", default: "1e9" },
    json: { type: "string" },
  },
}).values;

interface OutputMeta {
  name: string;
  shape: number[];
  files: { fp32: string; tf32: string; f64?: string };
}
interface ModelMeta {
  onnx: string;
  error?: string;
  input: { name: string; shape: number[]; dtype: string; file: string };
  outputs: OutputMeta[];
  torch_graph_ms?: number;
  torch_timing?: string;
}

const dir = args.dir!.replace(/\/$/, "");
const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as {
  torch: string;
  models: Record<string, ModelMeta>;
};
const device = args.device as "cuda" | "cpu";
const schedulers = args.schedulers!.split(",") as SchedulerName[];
const precisions = args.precisions!.split(",") as ("tf32" | "fp32")[];
const deadline = performance.now() + 1000 * Number(args.deadline);
const names = args.models?.split(",") ?? Object.keys(meta.models);

async function readFloats(file: string): Promise<Float32Array> {
  const bytes = await Deno.readFile(`${dir}/${file}`);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

async function readDoubles(file: string): Promise<Float64Array> {
  const bytes = await Deno.readFile(`${dir}/${file}`);
  return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
}

/** The input PyTorch ran on: float32 images, or int64 token ids as braid's int32. */
async function readInput(m: ModelMeta): Promise<Float32Array | Int32Array> {
  const bytes = await Deno.readFile(`${dir}/${m.input.file}`);
  if (m.input.dtype === "int64") {
    const ids = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    return Int32Array.from(ids, (v) => Number(v));
  }
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

interface Trial {
  scheduler: string;
  precision: string;
  /** Against PyTorch's output of the same precision. */
  relError: number;
  /** Against PyTorch's float64 output (strict fp32 trials). */
  relErrorF64?: number;
  gpuMs?: number;
  streams?: number;
  prepareMs: number;
  error?: string;
}

const results: Record<string, unknown>[] = [];
/** Writes the JSON so far (after every model: a run stopped from outside keeps what it had). */
async function save() {
  if (!args.json) return;
  await Deno.writeTextFile(
    args.json,
    JSON.stringify({ device, torch: meta.torch, schedulers, precisions, results }, null, 1),
  );
}
for (const name of names) {
  await save();
  const m = meta.models[name];
  const row: Record<string, unknown> = {
    model: name,
    torchGraphMs: m?.torch_graph_ms,
    torchTiming: m?.torch_timing,
  };
  results.push(row);
  if (!m || m.error) {
    row.error = m?.error ?? "not exported";
    console.log(`${name}: skipped (${row.error})`);
    continue;
  }
  let t = performance.now();
  let imported;
  try {
    imported = await importOnnx(`${dir}/${m.onnx}`);
  } catch (e) {
    row.error = e instanceof BraidError ? `[${e.code}] ${e.message}` : String(e);
    row.unsupported = e instanceof BraidError && e.code === "UNKNOWN_OP" ? e.message : undefined;
    console.log(`${name}: import failed: ${row.error}`);
    continue;
  }
  const { graph, summary } = imported;
  row.importMs = performance.now() - t;
  row.summary = summary;
  row.ops = summary.braidNodes;
  const input = { [m.input.name]: await readInput(m) };
  const expected: Record<string, Record<string, Float32Array>> = {};
  for (const p of precisions) {
    expected[p] = {};
    for (const o of m.outputs) expected[p][o.name] = await readFloats(o.files[p]);
  }
  const exact: Record<string, Float64Array> = {};
  for (const o of m.outputs) if (o.files.f64) exact[o.name] = await readDoubles(o.files.f64);
  const haveExact = Object.keys(exact).length === m.outputs.length;
  /** Worst relative error over the outputs. */
  const worstOf = (
    out: Record<string, ArrayLike<number>>,
    want: Record<string, ArrayLike<number>>,
  ) => Math.max(...m.outputs.map((o) => relativeError(out[o.name], want[o.name])));
  // PyTorch's own distance from float64: the yardstick for braid's, per precision.
  if (haveExact) {
    row.torchF64 = Object.fromEntries(precisions.map((p) => [p, worstOf(expected[p], exact)]));
  }
  const trials: Trial[] = [];
  row.trials = trials;
  for (const precision of precisions) {
    for (const scheduler of schedulers) {
      if (performance.now() > deadline) {
        trials.push({ scheduler, precision, relError: NaN, prepareMs: 0, error: "deadline" });
        continue;
      }
      t = performance.now();
      try {
        using session = await Session.create(graph, {
          device,
          scheduler,
          precision: precision === "tf32" ? "default" : "fp32",
        });
        const prepareMs = performance.now() - t;
        const out = session.runSync(input);
        const relErr = worstOf(out, expected[precision]);
        const trial: Trial = { scheduler, precision, relError: relErr, prepareMs };
        if (haveExact) trial.relErrorF64 = worstOf(out, exact);
        if (device === "cuda" && precision === "tf32") {
          const profile = session.profile(input, { warmup: 20, runs: Number(args.runs) });
          trial.gpuMs = profile.gpu.medianMs;
          trial.streams = session.report().streams;
          trial.scheduler = session.report().scheduler;
        }
        trials.push(trial);
        console.log(
          `${name} ${trial.scheduler} ${precision}: rel err ${relErr.toExponential(2)}` +
            (trial.gpuMs ? `, ${trial.gpuMs.toFixed(3)} ms, ${trial.streams} streams` : "") +
            `, prepared in ${prepareMs.toFixed(0)} ms`,
        );
      } catch (e) {
        const error = e instanceof BraidError ? `[${e.code}] ${e.message}` : String(e);
        trials.push({ scheduler, precision, relError: NaN, prepareMs: 0, error });
        console.log(`${name} ${scheduler} ${precision}: ${error}`);
      }
    }
  }
  const worst = (p: string) => {
    const errs = trials.filter((x) => x.precision === p && !x.error).map((x) => x.relError);
    return errs.length ? Math.max(...errs) : NaN;
  };
  row.relErrTf32 = worst("tf32");
  row.relErrFp32 = worst("fp32");
  const braidF64: Record<string, number> = {};
  for (const p of precisions) {
    const errs = trials.filter((x) => x.precision === p && x.relErrorF64 !== undefined);
    if (errs.length) braidF64[p] = Math.max(...errs.map((x) => x.relErrorF64!));
  }
  row.braidF64 = braidF64;
  const timed = trials.filter((x) => x.gpuMs !== undefined);
  const best = timed.sort((a, b) => a.gpuMs! - b.gpuMs!)[0];
  if (best) row.best = { scheduler: best.scheduler, ms: best.gpuMs };
}

const f = (v: unknown, digits = 3) =>
  typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "-";
const e = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v.toExponential(1) : "-");
const rows = [[
  "model",
  "ops",
  "unsupported",
  "rel err (TF32)",
  "rel err (strict)",
  "TF32 vs f64: braid / torch",
  "strict vs f64: braid / torch",
  "braid best ms (scheduler)",
  "torch graph ms",
  "ratio",
]];
for (const r of results) {
  const best = r.best as { scheduler: string; ms: number } | undefined;
  const torch = r.torchGraphMs as number | undefined;
  rows.push([
    String(r.model),
    r.ops === undefined ? "-" : String(r.ops),
    r.unsupported ? "yes" : r.error ? "error" : "none",
    e(r.relErrTf32),
    e(r.relErrFp32),
    ...(["tf32", "fp32"] as const).map((p) =>
      `${e((r.braidF64 as Record<string, number> | undefined)?.[p])} / ` +
      e((r.torchF64 as Record<string, number> | undefined)?.[p])
    ),
    best ? `${f(best.ms)} (${best.scheduler})` : "-",
    // A mark where PyTorch's time is not of a plain graph capture (see torchTiming in the JSON).
    f(torch) + (r.torchTiming && r.torchTiming !== "graph" ? "*" : ""),
    best && torch ? `${(torch / best.ms).toFixed(2)}x` : "-",
  ]);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
console.log(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join(" | ")).join("\n"));
await save();
