/**
 * Where a tuning pool's time goes (issue 6 (c)): k threads at once, each measuring the same
 * model's first stages on its own partition, as `braid tune --concurrent` does, with the host
 * time of every backend call added up. Run with k = 1, 2, 4 (and k = 1 on the whole device): the
 * calls whose time per stage grows with k are where the threads contend; eventSynchronize is
 * time spent waiting for the device.
 *
 * Each way of making stage graphs (captured, or composed from op templates) is run in turn.
 *
 * `--work trials` times auto's first candidate schedules instead of the stages (each a trial
 * executable captured and replayed, as auto's trials and a pool's trials jobs run);
 * `--work convs` times the set-up itself from an empty cache on every thread at once (each
 * thread tuning the model's convolutions), per convolution.
 *
 * The threads start from a cache primed once per budget by a thread of its own (conv algorithms
 * and op times), as a pool's workers find a model's after its plan: each thread's set-up of the
 * model (weights, executable, the first eager run) is then timed on its own, as the pool's
 * per-variant set-up cost, and how it grows with k.
 *
 *   deno run -A bench/pool_contention.ts [--model inception_v3] [--sms 32] [--threads 1,2,4]
 *     [--stages 400] [--graphs capture,compose] [--work stages|trials|convs] [--trials 8]
 *     [--json FILE]
 *     (--device cpu --sms 0: a check of the script itself)
 */
import { parseArgs } from "../lib/deps.ts";
import type { Figures, Setup } from "./pool_contention_worker.ts";
import { runEnvironment } from "./report.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "inception_v3" },
    sms: { type: "string", default: "32" },
    threads: { type: "string", default: "1,2,4" },
    stages: { type: "string", default: "400" },
    // How the stage timers make stage graphs (BRAID_STAGE_GRAPHS), each in turn.
    graphs: { type: "string", default: "capture,compose" },
    work: { type: "string", default: "stages" },
    trials: { type: "string", default: "8" },
    json: { type: "string" },
    // "cpu" only checks the script (no partitions there: --sms 0 --threads 1).
    device: { type: "string", default: "cuda" },
  },
});

/** The switches as the run was started (it sets BRAID_STAGE_GRAPHS itself for each row). */
const environment = runEnvironment();

/** Each budget's primed cache (JSON), made by prime(). */
const primed = new Map<number, string>();

/** A cache with the model's conv algorithms and op times for `sms`, made by one thread alone. */
async function prime(sms: number): Promise<string> {
  if (!primed.has(sms)) primed.set(sms, (await run(1, sms, "prime"))[0].cache!);
  return primed.get(sms)!;
}

/**
 * Runs `threads` workers together on `sms`-SM partitions (0: the whole device), from the primed
 * cache (or, to prime it, from none).
 */
async function run(threads: number, sms: number, mode: "measure" | "prime" = "measure") {
  const cache = mode === "prime" ? undefined : await prime(sms);
  const workers = Array.from(
    { length: threads },
    () =>
      new Worker(new URL("./pool_contention_worker.ts", import.meta.url).href, { type: "module" }),
  );
  const next = (w: Worker) =>
    new Promise<unknown>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
  try {
    const ready = workers.map(next);
    workers.forEach((w, group) => {
      const setup: Setup = {
        type: "setup",
        model: args.values.model,
        device: args.values.device as "cuda" | "cpu",
        sms,
        group,
        stages: Number(args.values.stages),
        work: args.values.work === "trials" ? "trials" : "stages",
        trials: Number(args.values.trials),
        cache,
      };
      w.postMessage(setup);
    });
    const setups = (await Promise.all(ready)) as Figures[];
    if (mode === "prime") return setups;
    const done = workers.map(next);
    workers.forEach((w) => w.postMessage({ type: "go" }));
    return (await Promise.all(done)) as Figures[];
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

const rows: { graphs: string; threads: number; sms: number; figures: Figures[] }[] = [];
const sms = Number(args.values.sms);
const convs = args.values.work === "convs";
// Each way of making stage graphs in turn (the workers' stage timers read BRAID_STAGE_GRAPHS).
for (const graphs of args.values.graphs.split(",")) {
  Deno.env.set("BRAID_STAGE_GRAPHS", graphs);
  // convs: the set-ups alone, every thread from an empty cache.
  const measure = (threads: number, sms: number) =>
    convs ? run(threads, sms, "prime") : run(threads, sms);
  rows.push({ graphs, threads: 1, sms: 0, figures: await measure(1, 0) });
  for (const threads of sms > 0 ? args.values.threads.split(",").map(Number) : []) {
    rows.push({ graphs, threads, sms, figures: await measure(threads, sms) });
  }
}

// What the table counts per unit: the set-up's calls per convolution tuned, else the
// measurement's per stage (or candidate schedule).
const callsOf = (f: Figures) => convs ? f.setupCallMs : f.callMs;
const unitsOf = (f: Figures) => convs ? f.convsTuned : f.stages;
const wallOf = (f: Figures) => convs ? f.setupMs : f.wallMs;
const calls = [...new Set(rows.flatMap((r) => r.figures.flatMap((f) => Object.keys(callsOf(f)))))];
const perStage = (figures: Figures[], call: string) => {
  const ms = figures.reduce((a, f) => a + (callsOf(f)[call] ?? 0), 0);
  const units = figures.reduce((a, f) => a + unitsOf(f), 0);
  return (1000 * ms) / units;
};
const unit = { stages: "stage", trials: "trial", convs: "conv" }[args.values.work] ?? "stage";
const top = calls
  .map((c) => ({ c, us: Math.max(...rows.map((r) => perStage(r.figures, c))) }))
  .sort((a, b) => b.us - a.us)
  .slice(0, 8)
  .map((x) => x.c);
console.log(`${args.values.model}, work: ${args.values.work}`);
console.log(
  `| stage graphs | threads | SMs | set-up, ms | warm-up, ms | ${unit}s/s (all) | ms/${unit}/thread | ${
    top.join(" | ")
  } (µs/${unit}) |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- | ${top.map(() => "---").join(" | ")} |`);
// A row's set-up and warm-up: the slowest thread's (they run at once).
const slowest = (figures: Figures[], key: "setupMs" | "warmUpMs") =>
  Math.max(...figures.map((f) => f[key])).toFixed(0);
for (const { graphs, threads, sms, figures } of rows) {
  const wall = Math.max(...figures.map(wallOf));
  const stages = figures.reduce((a, f) => a + unitsOf(f), 0);
  const perThread = figures.reduce((a, f) => a + wallOf(f) / unitsOf(f), 0) / figures.length;
  const cells = top.map((c) => perStage(figures, c).toFixed(0));
  console.log(
    `| ${graphs} | ${threads} | ${sms || "whole"} | ${slowest(figures, "setupMs")} | ` +
      `${slowest(figures, "warmUpMs")} | ${(1000 * stages / wall).toFixed(0)} | ` +
      `${perThread.toFixed(2)} | ${cells.join(" | ")} |`,
  );
}
if (args.values.json) {
  const { model, work } = args.values;
  await Deno.writeTextFile(
    args.values.json,
    JSON.stringify({ model, work, rows, environment }),
  );
}
