/**
 * braid's side of the comparison: each zoo model on CUDA (sequential schedule, captured graph),
 * timed with device events around graph replays, plus run()'s wall time and host overhead.
 *   deno run -A bench/braid_latency.ts --models googlenet,resnet50 --batch 1 --json out.json
 */
import { parseArgs } from "../lib/deps.ts";
import { numel } from "../lib/ir/graph.ts";
import { buildZooModel, Session, zooNames } from "../mod.ts";
import { Random } from "../lib/util/random.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: zooNames().join(",") },
    batch: { type: "string", default: "1" },
    runs: { type: "string", default: "300" },
    device: { type: "string", default: "cuda" },
    json: { type: "string" },
  },
}).values;

const result: Record<string, unknown> = {};
for (const name of args.models!.split(",")) {
  const t = performance.now();
  using session = await Session.create(buildZooModel(name), {
    device: args.device as "cuda" | "cpu",
    batch: Number(args.batch),
  });
  const prepareMs = performance.now() - t;
  const inputs = Object.fromEntries(
    session.inputs.map((v) => [v.name, new Random(1).floats(numel(v.shape), 0, 1)]),
  );
  const profile = session.profile(inputs, { warmup: 50, runs: Number(args.runs) });
  const report = session.report();
  result[name] = { ...profile, prepareMs, report };
  const f = (v: number, digits: number) => v.toFixed(digits);
  console.log(
    `braid ${name}: gpu ${f(profile.gpu.medianMs, 3)} ms, run() ${
      f(profile.run.medianMs, 3)
    } ms, ` +
      `overhead run() ${f(profile.hostOverheadUs, 1)} us, launch() ${
        f(profile.launchOverheadUs, 1)
      } us, ${report.kernelLaunches} kernels, prepared in ${f(prepareMs, 0)} ms ` +
      `(${report.tuning.measured} convs tuned)`,
  );
}
if (args.json) await Deno.writeTextFile(args.json, JSON.stringify(result, null, 1));
