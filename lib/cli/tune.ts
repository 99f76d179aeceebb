/**
 * `braid tune FILE.braid … [--sms N] [--group G] [--fine] [--cache PATH] [--concurrent]`: tunes
 * models for the SM budget they will run with, and saves what was measured (conv algorithms, op
 * and stage times, auto's schedule choice) to a tuning-cache file.
 *
 * With --sms N each model is tuned inside an N-SM partition (group G of the device's split into
 * N-SM groups), and its entries are keyed by that budget; a session later created on an N-SM
 * partition with this cache finds them. Without --sms the whole GPU is the budget. Several models
 * are tuned one after another, or with --concurrent by a pool of workers, one per N-SM group of
 * the device's split (tune_pool.ts): each model's stages, and auto's candidate schedules that need
 * no stage times, are measured ahead of its tuning, spread over every partition, and the models'
 * tunings then run on the partitions side by side.
 */
import { BraidError } from "../errors.ts";
import { loadModel, modelFromBytes } from "../runtime/model.ts";
import { Partition } from "../runtime/partition.ts";
import {
  type Backend,
  checkNativeSwitches,
  type Handle,
  partitionBindingFromEnv,
} from "../../ffi/backend.ts";
import { type CallTimes, profilingCalls, takeCallTimes } from "../../ffi/call_profile.ts";
import { type DeviceOption, ON_CONTEXT, Session } from "../runtime/session.ts";
import { TuningCache } from "../runtime/tuning.ts";
import { takeWarmUpMs, warmUpFromEnv } from "../runtime/executable.ts";
import { trialTimingFromEnv } from "../runtime/prepare.ts";
import {
  stageBatchFromEnv,
  stageGraphsFromEnv,
  stageWarmupsFromEnv,
} from "../runtime/stage_timer.ts";
import type { SchedulerName } from "../schedule/mod.ts";
import { paint } from "./output.ts";
import { EarlyWorkers, type PoolReport, tunePooled } from "./tune_pool.ts";
import { poolChunkOrderFromEnv } from "./tune_queue.ts";

export const DEFAULT_CACHE = "braid-tuning.json";

export interface TuneOptions {
  /** SM budget: tune inside a partition of this many SMs (default: the whole GPU). */
  sms?: number;
  /** The partition's group in the device's split (one model; default 0). */
  group?: number;
  fine?: boolean;
  batch?: number;
  /** The tuning-cache file read and extended. */
  cache: string;
  scheduler: SchedulerName;
  device: DeviceOption;
  /** Several models at once, each in its own partition (needs sms). */
  concurrent?: boolean;
  /** Write the results as JSON here. */
  json?: string;
  quiet?: boolean;
  /**
   * The process exits once the cache is saved (the command line): the native state left at the
   * end (a pool's workers', the last model's session) is not freed, as the driver reclaims it at
   * exit in one go. A library caller leaves this off.
   */
  exiting?: boolean;
}

/** What tuning one model did. */
export interface TuneResult {
  model: string;
  file: string;
  /** The SM budget its entries are keyed by, and its partition (none: the whole GPU). */
  smBudget: number;
  partition?: { sms: number; group: number };
  /** Wall time of loading and tuning it (session creation), ms. */
  wallMs: number;
  scheduler: string;
  streams: number;
  /** The chosen schedule's measured replay time, ms (0 if none was measured). */
  replayMs: number;
  convsMeasured: number;
  convsCached: number;
  /** Convolutions that run a cuDNN engine configuration (the rest: legacy algorithms, direct). */
  convEngines: number;
  /** Ops and stages timed on the device, and schedules auto timed. */
  stagesMeasured: number;
  trials: number;
  /** Where the tuning's time went, ms: measuring conv algorithms, ops and stages, and auto's
   * candidate schedules (the rest: loading, set-up, the final capture). */
  timeMs: { convs: number; stages: number; trials: number };
  /** With BRAID_PROFILE_CALLS=1 (one after another): the backend calls' host time, ms, by call. */
  callMs?: CallTimes;
  /** One after another: the time its executables spent warming up (eager runs), ms. */
  warmUpMs?: number;
}

export interface TuneRun {
  mode: "sequential" | "concurrent";
  /** Wall time of the whole run, process starts and cache merges included, ms. */
  wallMs: number;
  /** When the run started, ms since the process started (its imports, the runtime's start). */
  startedAtMs: number;
  /** When the run ended (its wall, then the count of the cache's entries), ms since the process
   * started: what follows is writing this report and the process's exit. */
  endedAtMs: number;
  results: TuneResult[];
  /** Entries in the cache file afterwards. */
  entries: number;
  /** For a concurrent run: the pool of workers and what it measured ahead of the models. */
  pool?: PoolReport;
}

/**
 * The partition `options` ask for: an N-SM group of the device's split, or none when N is the
 * whole device (tuning then runs unpartitioned, under a budget of all SMs) or not given.
 */
export function tuningPartition(options: TuneOptions, group = options.group ?? 0) {
  if (options.sms === undefined) return undefined;
  const { deviceSms } = Partition.query({ sms: 1, fine: options.fine, device: options.device });
  if (options.sms >= deviceSms) return undefined;
  return Partition.create({ sms: options.sms, group, fine: options.fine, device: options.device });
}

/** Where tuneOne runs, and what it leaves. */
export interface TuneOneWhere {
  /** The partition to tune in (it stays the caller's); else the one options.sms asks for. */
  partition?: Partition;
  /**
   * A context already bound to `partition` to tune on (a pool worker's, whose library plans the
   * model's convolutions may already have), instead of a context of the session's own.
   */
  context?: { backend: Backend; ctx: Handle };
  /** The process exits next: the session (and its partition) are left to the driver. */
  last?: boolean;
  /** The model file's bytes, already read (a pool's shared copy): decoded, not read again. */
  bytes?: Uint8Array;
}

/** Tunes one model with `cache`, as a session on its budget is tuned. */
export async function tuneOne(
  file: string,
  options: TuneOptions,
  cache: TuningCache,
  where: TuneOneWhere = {},
): Promise<TuneResult> {
  const start = performance.now();
  using model = where.bytes ? modelFromBytes(where.bytes, file) : await loadModel(file);
  const own = where.partition ? undefined : tuningPartition(options);
  const partition = where.partition ?? own;
  let session: Session | undefined;
  try {
    session = await Session.create(model, {
      device: options.device,
      partition,
      tuning: cache,
      scheduler: options.scheduler,
      batch: options.batch,
      [ON_CONTEXT]: where.context,
    });
    const report = session.report();
    const name = report.scheduler.replace(/^auto:/, "");
    const chosen = report.trials.filter((t) => t.scheduler.replace(/^merged:/, "") === name).at(-1);
    return {
      model: report.model,
      file,
      smBudget: report.smBudget,
      partition: report.partition,
      wallMs: performance.now() - start,
      scheduler: report.scheduler,
      streams: report.streams,
      replayMs: chosen?.ms ?? 0,
      convsMeasured: report.tuning.measured,
      convsCached: report.tuning.cached,
      convEngines: report.tuning.engines,
      stagesMeasured: report.stages?.measured ?? 0,
      trials: report.trials.length,
      timeMs: { convs: report.tuning.ms, stages: report.stages.ms, trials: report.trialsMs },
    } satisfies TuneResult;
  } finally {
    if (!where.last) {
      session?.[Symbol.dispose]();
      own?.[Symbol.dispose]();
    }
  }
}

function describe(r: TuneResult): string {
  const where = r.partition
    ? `a ${r.partition.sms}-SM partition (group ${r.partition.group})`
    : `the whole device (${r.smBudget} SMs)`;
  const replay = r.replayMs > 0 ? `, ${r.replayMs.toFixed(3)} ms per replay` : "";
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  const { convs, stages, trials } = r.timeMs;
  const spent = `${seconds(convs)} s on convolutions, ${seconds(stages)} s on ops and stages, ` +
    `${seconds(trials)} s on auto's candidates`;
  return `tuned ${paint("bold", r.model)} in ${where} in ${(r.wallMs / 1000).toFixed(1)} s: ` +
    `${r.convsMeasured} convolutions measured, ${r.convsCached} cached ` +
    `(${r.convEngines} on cuDNN engine configurations), ` +
    `${r.stagesMeasured} ops/stages timed (${spent}); schedule ${r.scheduler} ` +
    `(${r.streams} streams${replay})`;
}

async function tuneConcurrently(files: string[], options: TuneOptions) {
  const sms = options.sms;
  if (sms === undefined) {
    throw new BraidError("USAGE", "--concurrent needs --sms N: each model gets an N-SM partition");
  }
  // The workers' threads start first: their modules load while the query initializes CUDA.
  const early = new EarlyWorkers(files, { ...options, quiet: true });
  try {
    const split = Partition.query({ sms, fine: options.fine, device: options.device });
    // One worker per group of the split: every SM that fits a partition of this size works.
    const groups = Array.from({ length: split.groups }, (_, g) => g);
    const cache = await TuningCache.load(options.cache);
    const pooled = await tunePooled(files, { ...options, quiet: true }, groups, cache, early);
    await cache.save(options.cache);
    return pooled;
  } finally {
    early.end();
  }
}

/**
 * Every BRAID_* switch tuning reads, checked before any work: most are read only when their step
 * comes, which may be minutes in.
 */
function checkSwitches(): void {
  checkNativeSwitches();
  partitionBindingFromEnv();
  poolChunkOrderFromEnv();
  profilingCalls();
  stageBatchFromEnv();
  stageGraphsFromEnv();
  stageWarmupsFromEnv();
  trialTimingFromEnv();
  warmUpFromEnv();
}

/** Tunes every model (one after another, or concurrently) and saves the cache file. */
export async function tuneModels(files: string[], options: TuneOptions): Promise<TuneRun> {
  if (files.length === 0) throw new BraidError("USAGE", "usage: braid tune FILE.braid …");
  if (options.group !== undefined && files.length > 1) {
    throw new BraidError("USAGE", "--group applies to one model (--concurrent assigns groups)");
  }
  const twice = files.find((file, i) => files.indexOf(file) !== i);
  if (twice !== undefined) {
    throw new BraidError("USAGE", `${twice} is named twice: tune each model once`);
  }
  checkSwitches();
  const start = performance.now();
  let results: TuneResult[];
  let pool: PoolReport | undefined;
  if (options.concurrent) {
    ({ results, pool } = await tuneConcurrently(files, options));
  } else {
    const cache = await TuningCache.load(options.cache);
    results = [];
    for (const [i, file] of files.entries()) {
      takeCallTimes();
      takeWarmUpMs();
      const last = options.exiting && i === files.length - 1;
      const result = await tuneOne(file, options, cache, { last });
      if (profilingCalls()) result.callMs = takeCallTimes();
      result.warmUpMs = takeWarmUpMs();
      if (!options.quiet) console.log(describe(result));
      results.push(result);
    }
    await cache.save(options.cache);
  }
  const wallMs = performance.now() - start;
  const entries = (await TuningCache.load(options.cache)).size;
  const run: TuneRun = {
    mode: options.concurrent ? "concurrent" : "sequential",
    wallMs,
    startedAtMs: start,
    endedAtMs: performance.now(),
    results,
    entries,
    pool,
  };
  if (options.json) await Deno.writeTextFile(options.json, JSON.stringify(run, null, 1));
  return run;
}

/** The command: tunes, prints one line per model and the total, returns the exit code. */
export async function tune(files: string[], options: TuneOptions): Promise<number> {
  const run = await tuneModels(files, options);
  if (options.quiet) return 0;
  if (run.mode === "concurrent") { for (const r of run.results) console.log(describe(r)); }
  const sum = run.results.reduce((s, r) => s + r.wallMs, 0);
  const how = run.pool
    ? `concurrently by ${run.pool.workers} workers on ${options.sms}-SM partitions ` +
      `(${run.pool.prefetched} ops/stages measured and ${run.pool.trialsAhead} candidate ` +
      "schedules timed ahead)"
    : "one after another";
  console.log(
    `${run.results.length} model${run.results.length === 1 ? "" : "s"} tuned ${how}: ` +
      `${(run.wallMs / 1000).toFixed(1)} s wall (models' own times sum to ` +
      `${(sum / 1000).toFixed(1)} s); ${run.entries} entries in ${options.cache}`,
  );
  return 0;
}
