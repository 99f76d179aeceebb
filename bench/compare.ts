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

const ms = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(3));
const rows = [[
  "model",
  "torch eager",
  "torch graph",
  "torch compile",
  "braid seq graph",
  "braid/torch graph",
  "run() overhead us",
  "launch() overhead us",
]];
for (const [name, t] of Object.entries<Record<string, { median_ms: number }>>(torch.models)) {
  const b = braid[name];
  const ratio = b ? b.gpu.medianMs / t.graph.median_ms : undefined;
  rows.push([
    name,
    ms(t.eager.median_ms),
    ms(t.graph.median_ms),
    ms(t.compile?.median_ms),
    ms(b?.gpu.medianMs),
    ratio === undefined ? "-" : `${ratio.toFixed(2)}x`,
    b ? b.hostOverheadUs.toFixed(1) : "-",
    b ? b.launchOverheadUs.toFixed(1) : "-",
  ]);
}
console.log(`\n${torch.device}, batch ${torch.batch}, torch ${torch.torch}, cuDNN ${torch.cudnn}`);
console.log("medians in ms (CUDA events; braid and torch measured in the same command)\n");
console.log(table(rows));
const out = values.out ??
  `bench/results/compare-b${torch.batch}-${
    new Date().toISOString().slice(0, 16).replace(/:/g, "")
  }.json`;
await Deno.writeTextFile(out, JSON.stringify({ torch, braid }, null, 1));
console.log(`\nwrote ${out}`);
