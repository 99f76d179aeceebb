/**
 * Which tuning gives the faster sessions: each model is run from each of several tuning caches
 * (the same models tuned two ways, say), every choice read from its cache (tuning off), side by
 * side in one partition of the budget they were tuned for, timed in interleaved rounds (median
 * of CUDA-event-timed graph replays). A cache that lacks a model's choice is reported: that
 * session was tuned here.
 *
 *   deno run -A bench/cache_ab.ts --caches base.json,switched.json [--labels base,switched]
 *     [--sms 32] [--models googlenet,inception_v3,resnet50,densenet121] [--rounds 5]
 *     [--json FILE]      (--sms 0: the whole GPU; --device cpu --sms 0: a check of the script)
 */
import { parseArgs } from "../lib/deps.ts";
import { buildZooModel, Partition, Session, TuningCache } from "../mod.ts";
import { randomInputs } from "../lib/cli/run.ts";
import { interleavedMs } from "./interleaved.ts";
import { markdownTable, runEnvironment } from "./report.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    caches: { type: "string" },
    labels: { type: "string" },
    sms: { type: "string", default: "32" },
    models: { type: "string", default: "googlenet,inception_v3,resnet50,densenet121" },
    rounds: { type: "string", default: "5" },
    json: { type: "string" },
    // "cpu" only checks the script (no partitions there: --sms 0).
    device: { type: "string", default: "cuda" },
  },
}).values;

if (!args.caches) throw new Error("--caches A.json,B.json is required");
const files = args.caches.split(",");
const labels = args.labels?.split(",") ?? files;
if (labels.length !== files.length) throw new Error("--labels needs one label per cache");
// TuningCache.load takes a missing file for an empty cache: here that would be a tuning that
// failed, its sessions tuned afresh and reported as if chosen.
for (const file of files) {
  if (!(await Deno.stat(file).catch(() => undefined))?.isFile) {
    throw new Error(`${file}: no such tuning cache`);
  }
}
const caches = await Promise.all(files.map((file) => TuningCache.load(file)));
const sms = Number(args.sms);

const rows: string[][] = [];
const results: Record<string, unknown>[] = [];
for (const name of args.models.split(",")) {
  const graph = buildZooModel(name);
  const device = args.device as "cuda" | "cpu";
  using partition = sms > 0 ? Partition.create({ sms, device }) : undefined;
  const sessions: Session[] = [];
  try {
    for (const tuning of caches) {
      sessions.push(await Session.create(graph, { device, partition, tuning, tune: false }));
    }
    const inputs = randomInputs(sessions[0]);
    const ms = interleavedMs(sessions, sessions.map(() => inputs), Number(args.rounds));
    const reports = sessions.map((s) => s.report());
    // A cache that lacked the model's choice: the session measured it here.
    const tunedHere = reports.map((r) => r.trialsMs > 0 || r.stages.measured > 0);
    rows.push([
      name,
      ...reports.map((r, i) =>
        `${r.scheduler} (${r.streams}${tunedHere[i] ? ", tuned here" : ""}) ${ms[i].toFixed(3)}`
      ),
      ...ms.slice(1).map((m) => `${(100 * (m / ms[0] - 1)).toFixed(1)}%`),
    ]);
    results.push({
      model: name,
      sms: reports[0].smBudget,
      sessions: reports.map((r, i) => ({
        label: labels[i],
        scheduler: r.scheduler,
        streams: r.streams,
        ms: ms[i],
        tunedHere: tunedHere[i],
        convEngines: r.tuning.engines,
      })),
    });
    console.log(`${name}: ${rows.at(-1)!.slice(1).join(" | ")}`);
  } finally {
    for (const s of sessions) s[Symbol.dispose]();
  }
}

const head = [
  "model",
  ...labels.map((l) => `${l}: schedule (streams) ms`),
  ...labels.slice(1).map((l) => `${l} vs ${labels[0]}`),
];
const table = markdownTable(head, rows);
console.log(`\nsessions at ${sms || "all"} SMs from each cache\n${table}`);
if (args.json) {
  await Deno.writeTextFile(
    args.json,
    JSON.stringify({ files, labels, sms, results, table, environment: runEnvironment() }),
  );
}
