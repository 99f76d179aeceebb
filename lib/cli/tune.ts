/**
 * `braid tune FILE.braid … [--sms N] [--group G] [--fine] [--cache PATH] [--concurrent]`: tunes
 * models for the SM budget they will run with, and saves what was measured (conv algorithms, op
 * and stage times, auto's schedule choice) to a tuning-cache file.
 *
 * With --sms N each model is tuned inside an N-SM partition (group G of the device's split into
 * N-SM groups), and its entries are keyed by that budget; a session later created on an N-SM
 * partition with this cache finds them. Without --sms the whole GPU is the budget. Several models
 * are tuned one after another, or with --concurrent each in its own partition at the same time:
 * one Worker (thread) of this process per model, model i taking group i of the same split, so
 * their SMs are disjoint. Each starts from the cache file's entries; the parent merges what they
 * measured. Workers, not processes: kernels of different processes' CUDA contexts time-slice the
 * GPU (no MPS here), so four processes in four partitions ran slower than one after another
 * (measured: 141% of the sequential wall time); one process's green contexts run concurrently.
 */
import { BraidError } from "../errors.ts";
import { loadModel } from "../runtime/model.ts";
import { Partition } from "../runtime/partition.ts";
import { type DeviceOption, Session } from "../runtime/session.ts";
import { TuningCache } from "../runtime/tuning.ts";
import type { SchedulerName } from "../schedule/mod.ts";
import { paint } from "./output.ts";

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
  /** Ops and stages timed on the device, and schedules auto timed. */
  stagesMeasured: number;
  trials: number;
}

export interface TuneRun {
  mode: "sequential" | "concurrent";
  /** Wall time of the whole run, process starts and cache merges included, ms. */
  wallMs: number;
  results: TuneResult[];
  /** Entries in the cache file afterwards. */
  entries: number;
}

/** Tunes one model with `cache`, inside a partition when options.sms asks for one. */
export async function tuneOne(file: string, options: TuneOptions, cache: TuningCache) {
  const start = performance.now();
  using model = await loadModel(file);
  let partition: Partition | undefined;
  if (options.sms !== undefined) {
    const { deviceSms } = Partition.query({ sms: 1, fine: options.fine, device: options.device });
    // A "partition" as large as the device is the device: tune unpartitioned, budget = all SMs.
    if (options.sms < deviceSms) {
      partition = Partition.create({
        sms: options.sms,
        group: options.group ?? 0,
        fine: options.fine,
        device: options.device,
      });
    }
  }
  try {
    using session = await Session.create(model, {
      device: options.device,
      partition,
      tuning: cache,
      scheduler: options.scheduler,
      batch: options.batch,
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
      stagesMeasured: report.stages?.measured ?? 0,
      trials: report.trials.length,
    } satisfies TuneResult;
  } finally {
    partition?.[Symbol.dispose]();
  }
}

function describe(r: TuneResult): string {
  const where = r.partition
    ? `a ${r.partition.sms}-SM partition (group ${r.partition.group})`
    : `the whole device (${r.smBudget} SMs)`;
  const replay = r.replayMs > 0 ? `, ${r.replayMs.toFixed(3)} ms per replay` : "";
  return `tuned ${paint("bold", r.model)} in ${where} in ${(r.wallMs / 1000).toFixed(1)} s: ` +
    `${r.convsMeasured} convolutions measured, ${r.convsCached} cached, ` +
    `${r.stagesMeasured} ops/stages timed; schedule ${r.scheduler} (${r.streams} streams${replay})`;
}

/**
 * Tunes one model in a Worker of this process (tune_worker.ts), starting from `cache`'s entries;
 * resolves with its result and the worker's cache.
 */
export function tuneInWorker(
  file: string,
  options: TuneOptions,
  cache: TuningCache,
): Promise<{ result: TuneResult; cache: TuningCache }> {
  const worker = new Worker(new URL("./tune_worker.ts", import.meta.url).href, { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent) => {
      worker.terminate();
      const { result, cache, error } = e.data;
      if (error) reject(new BraidError(error.code, `tuning ${file}: ${error.message}`));
      else resolve({ result, cache: TuningCache.fromJSON(cache, `the worker tuning ${file}`) });
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      worker.terminate();
      reject(new BraidError("NATIVE_INTERNAL", `the worker tuning ${file} failed: ${e.message}`));
    };
    worker.postMessage({ file, options, cache: JSON.stringify(cache.toJSON()) });
  });
}

async function tuneConcurrently(files: string[], options: TuneOptions): Promise<TuneResult[]> {
  const sms = options.sms;
  if (sms === undefined) {
    throw new BraidError("USAGE", "--concurrent needs --sms N: each model gets an N-SM partition");
  }
  const split = Partition.query({ sms, fine: options.fine, device: options.device });
  if (files.length > split.groups) {
    throw new BraidError(
      "BAD_OPTION",
      `${files.length} models need ${files.length} disjoint partitions of ${sms} SMs, but the ` +
        `device's ${split.deviceSms} SMs split into ${split.groups} groups of ${split.smsPerGroup}`,
    );
  }
  const base = await TuningCache.load(options.cache);
  const done = await Promise.all(
    files.map((file, group) => tuneInWorker(file, { ...options, group, quiet: true }, base)),
  );
  for (const { cache } of done) base.merge(cache);
  await base.save(options.cache);
  return done.map((d) => d.result);
}

/** Tunes every model (one after another, or concurrently) and saves the cache file. */
export async function tuneModels(files: string[], options: TuneOptions): Promise<TuneRun> {
  if (files.length === 0) throw new BraidError("USAGE", "usage: braid tune FILE.braid …");
  if (options.group !== undefined && files.length > 1) {
    throw new BraidError("USAGE", "--group applies to one model (--concurrent assigns groups)");
  }
  const start = performance.now();
  let results: TuneResult[];
  if (options.concurrent) {
    results = await tuneConcurrently(files, options);
  } else {
    const cache = await TuningCache.load(options.cache);
    results = [];
    for (const file of files) {
      const result = await tuneOne(file, options, cache);
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
    results,
    entries,
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
  const how = run.mode === "concurrent"
    ? `concurrently, each in its own ${options.sms}-SM partition`
    : "one after another";
  console.log(
    `${run.results.length} model${run.results.length === 1 ? "" : "s"} tuned ${how}: ` +
      `${(run.wallMs / 1000).toFixed(1)} s wall (models' own times sum to ` +
      `${(sum / 1000).toFixed(1)} s); ${run.entries} entries in ${options.cache}`,
  );
  return 0;
}
