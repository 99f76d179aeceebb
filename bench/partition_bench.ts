/**
 * Spatial sharing on one GPU (issue 6), three measurements, each side by side with its baseline
 * in the same run:
 *   (c) tuning four models concurrently for 32-SM partitions (`braid tune --sms 32 --concurrent`:
 *       a pool of one worker thread per 32-SM partition measures every model's stages, then
 *       tunes each model on a partition), against tuning them one after another on the whole GPU
 *       (`braid tune`): total wall time of each command, run as a user runs it (a process each,
 *       its start included);
 *   (b) for N in 16, 32, 64: the schedule tuned at N SMs against the whole-GPU schedule, both run
 *       in the same N-SM partition (median of CUDA-event-timed graph replays, interleaved);
 *   (a) two to four models co-located on disjoint partitions, each serving batch-1 requests in a
 *       closed loop, against the same models time-sharing the whole GPU (one request on the
 *       device at a time) and against sharing it unpartitioned (concurrent streams): aggregate
 *       throughput and p99 latency per model.
 * (c) runs first: its caches (whole GPU and 32 SMs) are the tuning that (b) and (a) start from.
 *
 *   deno run -A bench/partition_bench.ts [--parts c,b,a] [--out bench/results] [--quick]
 *     [--pairs N]      ((c) N times, the arms' order alternating; the median ratio counts)
 *     [--caches DIR]   (keep the tuning caches there; (b) and (a) alone start from them)
 *     [--tag T]        (name the results partition_*-T.json)
 */
import { parseArgs } from "../lib/deps.ts";
import { buildZooModel, Partition, Server, Session, TuningCache } from "../mod.ts";
import { saveModel } from "../lib/runtime/model.ts";
import { randomInputs } from "../lib/cli/run.ts";
import type { TuneRun } from "../lib/cli/tune.ts";
import type { HostTensor } from "../lib/runtime/session.ts";
import { interleavedMs } from "./interleaved.ts";
import { markdownTable, median, runEnvironment } from "./report.ts";
import { addCallTimes } from "../ffi/call_profile.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    parts: { type: "string", default: "c,b,a" },
    out: { type: "string", default: "bench/results" },
    tuned: { type: "string", default: "googlenet,inception_v3,resnet50,densenet121" },
    budgets: { type: "string", default: "16,32,64" },
    compare: { type: "string", default: "googlenet,inception_v3" },
    seconds: { type: "string", default: "1" },
    rounds: { type: "string", default: "3" },
    pairs: { type: "string", default: "1" },
    quick: { type: "boolean", default: false },
    caches: { type: "string" },
    tag: { type: "string", default: "" },
  },
}).values;

const parts = new Set(args.parts!.split(","));
const out = args.out!;
// Names the result files partition_*-TAG.json (two runs of one call kept apart).
const suffix = args.tag ? `-${args.tag}` : "";
const tunedModels = args.tuned!.split(",");
const budgets = args.budgets!.split(",").map(Number);
const compared = args.compare!.split(",");
const seconds = Number(args.seconds) * (args.quick ? 0.3 : 1);
const rounds = Number(args.rounds);
await Deno.mkdir(out, { recursive: true });
const work = await Deno.makeTempDir({ prefix: "braid-partition-bench-" });
// The tuning caches (c) writes, kept in --caches (default: a temporary folder) for (b) and (a).
const caches = args.caches ?? work;
const seqCache = `${caches}/partition_tuning_whole.json`;
const concCache = `${caches}/partition_tuning_32.json`;
const f = (v: number, d = 2) => v.toFixed(d);

/** A `braid tune` process's report, and its wall time from start to exit. */
type TunedRun = TuneRun & { processMs: number };

async function braidTune(extra: string[], json: string): Promise<TunedRun> {
  const main = new URL("../lib/cli/main.ts", import.meta.url).pathname;
  const t0 = performance.now();
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--cached-only", main, "tune", ...extra, "--json", json],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  const processMs = performance.now() - t0;
  if (result.code !== 0) throw new Error(`braid tune ${extra.join(" ")} exited ${result.code}`);
  return { ...JSON.parse(await Deno.readTextFile(json)), processMs };
}

// ---------------------------------------------------------------- (c) concurrent tuning
if (parts.has("c")) {
  const files: string[] = [];
  for (const name of tunedModels) {
    const file = `${work}/${name}.braid`;
    await saveModel(buildZooModel(name), file);
    files.push(file);
  }
  // An untimed start of the CLI first, so neither timed process is the one that warms Deno's code
  // cache and the driver's first load.
  await braidTune(
    [files.at(-1)!, "--scheduler", "sequential", "--cache", `${work}/warm.json`],
    `${work}/warm-run.json`,
  );
  const tuneSequential = async () => {
    await Deno.remove(seqCache).catch(() => {});
    console.log(`(c) tuning ${tunedModels.join(", ")}: one after another on the whole GPU …`);
    return await braidTune([...files, "--cache", seqCache], `${work}/seq.json`);
  };
  const tuneConcurrent = async () => {
    await Deno.remove(concCache).catch(() => {});
    console.log(`(c) … concurrently, each in its own 32-SM partition …`);
    return await braidTune(
      [...files, "--sms", "32", "--concurrent", "--cache", concCache],
      `${work}/conc.json`,
    );
  };
  // Each pair from empty caches; the arms' order alternates, so neither always runs first.
  type Pair = { sequential: TunedRun; concurrent: TunedRun };
  const ratioOf = (p: Pair) => p.concurrent.processMs / p.sequential.processMs;
  const pairs: Pair[] = [];
  for (let i = 0; i < Number(args.pairs); i++) {
    let sequential: TunedRun, concurrent: TunedRun;
    if (i % 2 === 0) {
      sequential = await tuneSequential();
      concurrent = await tuneConcurrent();
    } else {
      concurrent = await tuneConcurrent();
      sequential = await tuneSequential();
    }
    pairs.push({ sequential, concurrent });
    if (Number(args.pairs) > 1) {
      console.log(
        `(c) pair ${i + 1}: sequential ${f(sequential.processMs / 1000, 1)} s, concurrent ` +
          `${f(concurrent.processMs / 1000, 1)} s, ` +
          `${f(100 * ratioOf(pairs[i]), 0)}%`,
      );
    }
  }
  // The table and breakdown of the pair whose ratio is the median.
  const medianPair = [...pairs].sort((a, b) => ratioOf(a) - ratioOf(b))[
    Math.floor(pairs.length / 2)
  ];
  const { sequential, concurrent } = medianPair;
  const rows = tunedModels.map((name, i) => {
    const s = sequential.results[i], c = concurrent.results[i];
    return [
      name,
      f(s.wallMs / 1000, 1),
      s.stagesMeasured,
      s.scheduler,
      f(c.wallMs / 1000, 1),
      c.stagesMeasured,
      `${c.partition?.sms} SMs, group ${c.partition?.group}`,
      c.scheduler,
    ];
  });
  const ratio = ratioOf(medianPair);
  rows.push([
    "**total wall**",
    f(sequential.processMs / 1000, 1),
    sequential.results.reduce((n, r) => n + r.stagesMeasured, 0),
    "",
    f(concurrent.processMs / 1000, 1),
    concurrent.results.reduce((n, r) => n + r.stagesMeasured, 0),
    `**${f(100 * ratio, 0)}% of sequential**`,
    "",
  ]);
  const md = markdownTable(
    [
      "model",
      "sequential, whole GPU (s)",
      "ops/stages timed",
      "chosen",
      "concurrent: own tuning (s)",
      "ops/stages timed (pool + own)",
      "partition (own tuning)",
      "chosen",
    ],
    rows,
  );
  const pool = concurrent.pool!;
  console.log(
    `(c) pool: ${pool.workers} workers, jobs ${JSON.stringify(pool.jobs)}, ` +
      `${pool.prefetched} ops/stages measured and ${pool.trialsAhead} candidates timed ahead ` +
      `(${pool.trialsLate} by the chooses), ` +
      "busy " + pool.busyMs.map((ms) => f(ms / 1000, 1)).join(" / ") + " s; worker time in plans " +
      `${f(pool.kindMs.plan / 1000, 1)} s, trials ${f(pool.kindMs.trials / 1000, 1)} s, stages ` +
      `${f(pool.kindMs.stages / 1000, 1)} s, chooses ` +
      `${f(pool.kindMs.choose / 1000, 1)} s, tunes ` +
      `${f(pool.kindMs.tune / 1000, 1)} s (of all that, variants set up on workers ` +
      `${f(pool.setupMs / 1000, 1)} s); model files read ${pool.reads} times; ran ` +
      pool.timeline.filter((j) => j.kind === "tune" || j.kind === "choose").map((j) =>
        `${j.kind} ${j.file.replace(/.*\//, "")} ${f(j.startMs / 1000, 1)}–${
          f(j.endMs / 1000, 1)
        } s`
      ).join(", "),
  );
  // The sequential arm's time by kind of work, to set beside the pool's worker time by job kind
  // (bench/NOTES.md v0.9: the ratio follows how much slower each kind runs on 32 SMs).
  const spent = (key: "convs" | "stages" | "trials") =>
    f(sequential.results.reduce((ms, r) => ms + r.timeMs[key], 0) / 1000, 1);
  console.log(
    `(c) sequential arm: ${spent("convs")} s measuring convolutions, ${spent("stages")} s ops ` +
      `and stages, ${spent("trials")} s auto's candidates`,
  );
  // What each arm spends outside its work: the process's start (until the run's wall starts)
  // and exit, the pool's own start (the partition query, the cache read: until its timeline's
  // zero), its workers' start, and its end (closing the workers, saving the cache).
  const lastJob = Math.max(...pool.timeline.map((j) => j.endMs));
  const firstJob = Math.min(...pool.timeline.map((j) => j.startMs));
  const modelsMs = sequential.results.reduce((ms, r) => ms + r.wallMs, 0);
  // The end: counting the cache's entries after the wall, then the report and the exit.
  const endMs = (run: TunedRun) =>
    `${f(run.endedAtMs - run.startedAtMs - run.wallMs, 0)} + ${
      f(run.processMs - run.endedAtMs, 0)
    }`;
  const poolAt = pool.startedAtMs - concurrent.startedAtMs;
  console.log(
    `(c) outside the work (ms): sequential: process start ${f(sequential.startedAtMs, 0)}, ` +
      `end ${endMs(sequential)} (the count, the exit), wall beyond its models ` +
      `${f(sequential.wallMs - modelsMs, 0)}; pool: process start ` +
      `${f(concurrent.startedAtMs, 0)}, end ${endMs(concurrent)}, the pool's start at ` +
      `${f(poolAt, 0)}, first job ${f(firstJob, 0)} later, wall after its last job ` +
      `${f(concurrent.wallMs - poolAt - lastJob, 0)} (closing the workers ${f(pool.closeMs, 0)})`,
  );
  // The workers' start: each thread's modules loaded, then its partition and context made.
  const starts = pool.starts.map((s) =>
    `${f(s.loadedMs, 0)} (preload ${f(s.preloadMs, 0)}) + ${f(s.initMs, 0)} (ready at ${
      f(s.readyMs, 0)
    })`
  );
  if (starts.length > 0) console.log(`(c) the pool's workers' start (ms): ${starts.join(", ")}`);
  // A variant's first use on a worker: its executables' warm-ups (every op's plan built there).
  const warmUps = new Map<string, number>();
  for (const j of pool.timeline) warmUps.set(j.kind, (warmUps.get(j.kind) ?? 0) + j.warmUpMs);
  const sequentialWarmUps = sequential.results.reduce((ms, r) => ms + (r.warmUpMs ?? 0), 0);
  console.log(
    `(c) warm-ups: sequential ${f(sequentialWarmUps / 1000, 2)} s; the pool's ` +
      `${f(pool.warmUpMs / 1000, 2)} s of worker time (` +
      [...warmUps].map(([kind, ms]) => `${kind} ${f(ms / 1000, 2)}`).join(", ") + ")",
  );
  // With BRAID_PROFILE_CALLS=1: where each arm's host time went, by backend call.
  const top = (times: Record<string, number>) =>
    Object.entries(times).sort((a, b) => b[1] - a[1]).slice(0, 8)
      .map(([name, ms]) => `${name} ${f(ms / 1000, 2)}`).join(", ");
  if (sequential.results.every((r) => r.callMs)) {
    const total: Record<string, number> = {};
    for (const r of sequential.results) addCallTimes(total, r.callMs!);
    console.log(`(c) sequential arm's backend calls (s): ${top(total)}`);
  }
  for (const [kind, times] of Object.entries(pool.callMs ?? {})) {
    console.log(`(c) pool's backend calls in ${kind} (s, all workers): ${top(times!)}`);
  }
  console.log(`\n(c) concurrent vs sequential tuning (wall time, process start included)\n${md}\n`);
  await Deno.writeTextFile(
    `${out}/partition_c_tuning${suffix}.json`,
    JSON.stringify(
      { sequential, concurrent, ratio, table: md, pairs, environment: runEnvironment() },
      null,
      1,
    ),
  );
}

// (a) starts from both of (c)'s caches. (b) starts from the whole GPU's alone, so every budget's
// tuning is its own, measured with nothing else on the device: the pool's 32-SM entries were
// measured beside three other workers (their replays slow each other's; auto chose googlenet's
// schedule from those times: sequential, 24% slower at 32 SMs than the whole GPU's, in the first
// run).
const cache = new TuningCache();
for (const file of [seqCache, concCache]) cache.merge(await TuningCache.load(file));
const wholeCache = await TuningCache.load(seqCache);

// ---------------------------------------------------------------- (b) tuned at N vs whole GPU
if (parts.has("b")) {
  const rows: (string | number)[][] = [];
  const results: Record<string, unknown>[] = [];
  for (const name of compared) {
    const graph = buildZooModel(name);
    using whole = await Session.create(graph, { device: "cuda", tuning: wholeCache });
    const wholeMs = interleavedMs([whole], [randomInputs(whole)], rounds)[0];
    for (const sms of budgets) {
      using partition = Partition.create({ sms, device: "cuda" });
      const t0 = performance.now();
      using atN = await Session.create(graph, { partition, tuning: wholeCache });
      const tuneMs = performance.now() - t0;
      // The whole GPU's tuning (budget = all SMs), run inside the same partition.
      using fromWhole = await Session.create(graph, {
        partition,
        tuning: wholeCache,
        smBudget: whole.report().smBudget,
        tune: false,
      });
      const inputs = randomInputs(atN);
      const [tunedMs, wholeTunedMs] = interleavedMs([atN, fromWhole], [inputs, inputs], rounds);
      const gain = wholeTunedMs / tunedMs - 1;
      const a = atN.report(), w = fromWhole.report();
      rows.push([
        name,
        partition.sms,
        `${w.scheduler} (${w.streams})`,
        f(wholeTunedMs, 3),
        `${a.scheduler} (${a.streams})`,
        f(tunedMs, 3),
        `${gain >= 0 ? "+" : ""}${f(100 * gain, 1)}%`,
        `${w.tuning.engines} / ${a.tuning.engines} (${a.tuning.enginesTargeted} targeted)`,
      ]);
      results.push({
        model: name,
        sms: partition.sms,
        wholeGpuMs: wholeMs,
        wholeTuned: {
          scheduler: w.scheduler,
          streams: w.streams,
          ms: wholeTunedMs,
          convEngines: w.tuning.engines,
        },
        tunedAtN: {
          scheduler: a.scheduler,
          streams: a.streams,
          ms: tunedMs,
          tuneMs,
          convEngines: a.tuning.engines,
          convEnginesTargeted: a.tuning.enginesTargeted,
        },
        gain,
      });
      console.log(`(b) ${name} at ${partition.sms} SMs: ${rows.at(-1)!.join(" | ")}`);
    }
    rows.push([
      name,
      `whole (${whole.report().smBudget})`,
      whole.report().scheduler,
      f(wholeMs, 3),
      "",
      "",
      "",
      `${whole.report().tuning.engines}`,
    ]);
  }
  const md = markdownTable(
    [
      "model",
      "SMs",
      "whole-GPU-tuned schedule (streams)",
      "ms at N",
      "tuned-at-N schedule (streams)",
      "ms at N",
      "tuned at N faster by",
      "convs on cuDNN engines (whole-GPU-tuned / tuned at N, of them targeted at N)",
    ],
    rows,
  );
  console.log(`\n(b) schedule tuned at N SMs vs the whole-GPU schedule, run at N\n${md}\n`);
  await Deno.writeTextFile(
    `${out}/partition_b_budget${suffix}.json`,
    JSON.stringify({ results, table: md, environment: runEnvironment() }, null, 1),
  );
  await wholeCache.save(`${caches}/partition_tuning_budgets.json`);
}

// ---------------------------------------------------------------- (a) co-location
interface Measured {
  throughput: number;
  lanes: { name: string; throughput: number; p50Ms: number; p99Ms: number }[];
}

/** Closed loop: every lane keeps one request outstanding for `seconds`; reports the window. */
async function serve(server: Server, inputs: Map<string, Record<string, HostTensor>>) {
  const loop = async (name: string, until: number) => {
    while (performance.now() < until) await server.submit(name, inputs.get(name)!);
  };
  await Promise.all(server.names.map((n) => loop(n, performance.now() + 200))); // warm-up
  server.reset();
  const until = performance.now() + seconds * 1000;
  await Promise.all(server.names.map((n) => loop(n, until)));
  return server.report();
}

if (parts.has("a")) {
  const sets = args.quick
    ? [tunedModels.slice(0, 4)]
    : [tunedModels.slice(0, 4), compared.slice(0, 2)];
  const results: Record<string, unknown>[] = [];
  const rows: (string | number)[][] = [];
  for (const models of sets) {
    const sms = models.length === 4 ? 32 : 64;
    const partitions = Partition.split(models.length, { sms, device: "cuda" });
    const placed: Session[] = [];
    const whole: Session[] = [];
    try {
      for (const [i, name] of models.entries()) {
        const graph = buildZooModel(name);
        placed.push(await Session.create(graph, { partition: partitions[i], tuning: cache }));
        whole.push(await Session.create(graph, { device: "cuda", tuning: cache }));
      }
      const inputs = new Map(models.map((name, i) => [name, randomInputs(whole[i])]));
      const lanes = (sessions: Session[]) =>
        models.map((name, i) => ({ name, session: sessions[i] }));
      const modes = {
        partitioned: () => new Server(lanes(placed)),
        "time-sharing": () => new Server(lanes(whole), { exclusive: true }),
        "shared streams": () => new Server(lanes(whole)),
      };
      const runs: Record<string, Measured[]> = {};
      for (let r = 0; r < rounds; r++) {
        for (const [mode, make] of Object.entries(modes)) {
          (runs[mode] ??= []).push(await serve(make(), inputs));
        }
      }
      // Per mode: median aggregate throughput over rounds; p99 per model pooled as the median
      // of the rounds' p99s.
      const summary = Object.fromEntries(
        Object.entries(runs).map(([mode, list]) => [mode, {
          throughput: median(list.map((m) => m.throughput)),
          lanes: models.map((name) => ({
            name,
            throughput: median(list.map((m) => m.lanes.find((l) => l.name === name)!.throughput)),
            p50Ms: median(list.map((m) => m.lanes.find((l) => l.name === name)!.p50Ms)),
            p99Ms: median(list.map((m) => m.lanes.find((l) => l.name === name)!.p99Ms)),
          })),
        }]),
      ) as Record<string, Measured>;
      const base = summary["time-sharing"].throughput;
      for (const [mode, m] of Object.entries(summary)) {
        rows.push([
          models.join(" + "),
          mode === "partitioned" ? `${models.length}×${partitions[0].sms} SMs` : mode,
          f(m.throughput, 0),
          `${f(m.throughput / base, 2)}×`,
          m.lanes.map((l) => `${l.name} ${f(l.p99Ms, 2)}`).join(", "),
        ]);
      }
      results.push({ models, sms: partitions[0].sms, summary, runs });
      console.log(`(a) ${models.join(" + ")}: ${JSON.stringify(summary)}`);
    } finally {
      for (const s of [...placed, ...whole]) s[Symbol.dispose]();
      for (const p of partitions) p[Symbol.dispose]();
    }
  }
  const md = markdownTable(
    ["models (batch 1)", "placement", "requests/s", "vs time-sharing", "p99 ms per model"],
    rows,
  );
  console.log(`\n(a) co-located on disjoint partitions vs time-sharing the whole GPU\n${md}\n`);
  await Deno.writeTextFile(
    `${out}/partition_a_colocation${suffix}.json`,
    JSON.stringify({ seconds, rounds, results, table: md, environment: runEnvironment() }, null, 1),
  );
}
await Deno.remove(work, { recursive: true });
