/**
 * braid's side of the comparison: each zoo model on CUDA under each scheduler (captured graph),
 * timed with device events around graph replays, plus run()'s and launch()'s host overhead and
 * the device memory each session holds.
 *   deno run -A bench/braid_latency.ts --models googlenet,resnet50 --schedulers sequential,auto \
 *     --batch 1 --json out.json
 * A scheduler written "NAME/copy" runs with every Concat copied by a kernel (concatInPlace off).
 */
import { parseArgs } from "../lib/deps.ts";
import { buildZooModel, Session, zooNames } from "../mod.ts";
import { randomInputs } from "../lib/cli/run.ts";
import type { SchedulerName } from "../lib/schedule/mod.ts";
import { Backend } from "../ffi/backend.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: zooNames().join(",") },
    schedulers: { type: "string", default: "sequential" },
    batch: { type: "string", default: "1" },
    runs: { type: "string", default: "300" },
    device: { type: "string", default: "cuda" },
    json: { type: "string" },
  },
}).values;

const f = (v: number, digits: number) => v.toFixed(digits);
// The driver's free device memory before and after each session: what it really holds, native
// scratch and library handles included (a probe context, open throughout, reads it).
const probe = args.device === "cuda" ? Backend.open("cuda") : undefined;
const probeCtx = probe?.contextCreate(0);
const freeBytes = () => (probe ? probe.deviceInfo(probeCtx!).freeMemory : 0);
// One session first, so loading the libraries' kernels is nobody's memory.
if (probe) {
  using warm = await Session.create(buildZooModel("squeezenet1_1"), { scheduler: "sequential" });
  warm.runSync(randomInputs(warm));
}
const result: Record<string, Record<string, unknown>> = {};
for (const name of args.models!.split(",")) {
  const graph = buildZooModel(name);
  result[name] = {};
  for (const entry of args.schedulers!.split(",")) {
    const [scheduler, variant] = entry.split("/") as [SchedulerName, string | undefined];
    const freeBefore = freeBytes();
    const t = performance.now();
    using session = await Session.create(graph, {
      device: args.device as "cuda" | "cpu",
      batch: Number(args.batch),
      scheduler,
      concatInPlace: variant !== "copy",
      // profile()'s run() then copies from the caller's arrays (reused): its run() copied is the
      // default path, through the page-locked io.inputs.
      pinInputs: true,
    });
    const prepareMs = performance.now() - t;
    const profile = session.profile(randomInputs(session), { runs: Number(args.runs) });
    const report = session.report();
    const driverBytes = freeBefore - freeBytes();
    result[name][entry] = { ...profile, prepareMs, report, driverBytes };
    console.log(
      `braid ${name} ${report.scheduler}${variant ? `/${variant}` : ""}: gpu ${
        f(profile.gpu.medianMs, 3)
      } ms ` +
        `(kernels ${f(profile.compute.medianMs, 3)}), ` +
        `${report.streams} streams, run() ${f(profile.run.medianMs, 3)} ms, overhead run() ` +
        `${f(profile.hostOverheadUs, 1)} us (copied ${
          f(profile.copiedOverheadUs, 1)
        } us), run(io) ${f(profile.pinnedOverheadUs, 1)} us, launch() ${
          f(profile.launchOverheadUs, 1)
        } us, ` +
        `${report.kernelLaunches} kernels, device memory ${
          f(report.deviceBytes / 2 ** 20, 1)
        } MiB (driver: ${f(driverBytes / 2 ** 20, 1)} MiB), ` +
        `prepared in ${f(prepareMs, 0)} ms (${report.tuning.measured} convs tuned, ` +
        `${report.tuning.engines} on cuDNN engine configurations, ` +
        `${report.trials.length} schedules and ${report.stages.measured} stages measured, ` +
        `stages ${f(report.stages.ms, 0)} ms; ops alone sum ${f(report.stages.opSumUs, 0)} us, ` +
        `critical path ${f(report.stages.criticalPathUs, 0)} us)`,
    );
  }
}
if (args.json) await Deno.writeTextFile(args.json, JSON.stringify(result, null, 1));
