/**
 * Joins the PyTorch and braid measurements of one run into a table of medians and ratios, and
 * writes the combined JSON under bench/results/.
 *   deno run -A bench/compare.ts torch.json braid.json [--out bench/results/NAME.json]
 */
import { parseArgs } from "../lib/deps.ts";
import { table } from "../lib/cli/output.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { out: { type: "string" } },
});
const [torchFile, braidFile] = positionals;
const torch = JSON.parse(await Deno.readTextFile(torchFile));
const braid = JSON.parse(await Deno.readTextFile(braidFile));

interface TorchRun {
  median_ms: number;
  peak_bytes?: number;
  streams?: number;
}
interface BraidRun {
  gpu: { medianMs: number };
  compute?: { medianMs: number };
  hostOverheadUs: number;
  /** Absent in results from before run() page-locked the caller's arrays. */
  copiedOverheadUs?: number;
  pinnedOverheadUs: number;
  launchOverheadUs: number;
  report: { scheduler: string; streams: number; deviceBytes: number };
  /** Free device memory the session took, as the driver reports it. */
  driverBytes?: number;
}

const ms = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(3));
const mib = (v: number | undefined) => (v === undefined ? "-" : (v / 2 ** 20).toFixed(0));
const x = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "-" : `${(a / b).toFixed(2)}x`;

const rows = [[
  "model",
  "torch eager",
  "torch graph",
  "torch opara",
  "torch compile",
  "braid",
  "streams",
  "braid kernels",
  "torch graph/braid",
  "(kernels)",
  "torch opara/braid",
  "MiB torch graph",
  "MiB braid",
  "MiB braid (driver)",
  "run() us",
  "run() copied us",
  "run(io) us",
  "launch() us",
]];
for (const [name, t] of Object.entries<Record<string, TorchRun>>(torch.models)) {
  for (const [scheduler, b] of Object.entries<BraidRun>(braid[name] ?? {})) {
    rows.push([
      name,
      ms(t.eager?.median_ms),
      ms(t.graph?.median_ms),
      ms(t.opara?.median_ms),
      ms(t.compile?.median_ms),
      `${ms(b.gpu.medianMs)} ${scheduler === "auto" ? b.report.scheduler : scheduler}`,
      String(b.report.streams),
      ms(b.compute?.medianMs),
      x(t.graph?.median_ms, b.gpu.medianMs),
      x(t.graph?.median_ms, b.compute?.medianMs),
      x(t.opara?.median_ms, b.gpu.medianMs),
      mib(t.graph?.peak_bytes),
      mib(b.report.deviceBytes),
      mib(b.driverBytes),
      b.hostOverheadUs.toFixed(1),
      b.copiedOverheadUs?.toFixed(1) ?? "",
      b.pinnedOverheadUs.toFixed(1),
      b.launchOverheadUs.toFixed(1),
    ]);
  }
}
console.log(`\n${torch.device}, batch ${torch.batch}, torch ${torch.torch}, cuDNN ${torch.cudnn}`);
console.log(
  "medians of CUDA-event-timed graph replays in ms (braid and torch in the same command); " +
    "ratios > 1 mean braid is faster.\nbraid's graph includes copying the input in from and the " +
    "output out to page-locked host memory;\n'braid kernels' is the same schedule captured " +
    "without those copies, as torch's graphs are (static input already on the GPU).\n" +
    "Host overhead (median of each call's wall time minus its GPU time): run() on the same " +
    "caller arrays each call (page-locked in place after their first use), run() copying them " +
    "into page-locked buffers, run(io) on those buffers, launch()\n",
);
console.log(table(rows));
const out = values.out ??
  `bench/results/compare-b${torch.batch}-${
    new Date().toISOString().slice(0, 16).replace(/:/g, "")
  }.json`;
await Deno.writeTextFile(out, JSON.stringify({ torch, braid }, null, 1));
console.log(`\nwrote ${out}`);
