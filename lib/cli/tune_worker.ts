/**
 * A worker of a pooled `braid tune` (tune_pool.ts): one thread of the process, holding one
 * partition (group `group` of the device's split), that runs the jobs it is sent (tune_queue.ts)
 * and posts back each one's result with the tuning-cache entries it added. Each job comes with
 * the entries the parent has gathered since this worker's last job, so what one worker measured
 * (conv algorithms, op times, stages) is found by the others. Model files are read once in the
 * pool, into shared memory: a worker that reads one posts its bytes back, and the parent sends
 * them on with the other workers' jobs of that model, which decode them without a copy.
 */
import { type CallTimes, profilingCalls, takeCallTimes } from "../../ffi/call_profile.ts";
import { BraidError, type BraidErrorCode } from "../errors.ts";
import { batchOf, type Graph } from "../ir/graph.ts";
import { loadModel, type Model, modelFromBytes } from "../runtime/model.ts";
import type { Partition } from "../runtime/partition.ts";
import { graphVariants } from "../runtime/prepare.ts";
import { executableOptions } from "../runtime/session.ts";
import { takeWarmUpMs } from "../runtime/executable.ts";
import { openBackend } from "../../ffi/backend.ts";
import { Resources } from "../runtime/resources.ts";
import { StagePrefetch } from "../runtime/stage_prefetch.ts";
import { TuningCache } from "../runtime/tuning.ts";
import { optimize } from "../passes/mod.ts";
import { tuneOne, type TuneOptions, tuningPartition } from "./tune.ts";
import { isVariantOf, type PoolJob, variantId } from "./tune_queue.ts";

export type WorkerMessage =
  /**
   * Sent to an early worker as it starts, before the pool knows its partitions: reads and
   * prepares the model of the plan it will take first (its graph variants), while the partition
   * query initializes CUDA.
   */
  | { type: "preload"; file: string; options: TuneOptions }
  | { type: "init"; group: number; options: TuneOptions }
  /** `models`: model files' bytes (shared memory) this worker has not been sent yet. */
  | { type: "job"; job: PoolJob; cache: string; models?: Record<string, Uint8Array> }
  /** The model's variants are no longer needed (its tune decodes it afresh): freed, no answer. */
  | { type: "retire"; file: string }
  /**
   * The pool is done. `free` false: the process exits next, so nothing is freed (the driver
   * reclaims a process's device state at exit, at once, as clang's -disable-free leaves its memory
   * to the OS); the answer says every earlier message, retires included, has been handled.
   */
  | { type: "close"; free: boolean };

const scope = self as unknown as {
  onmessage: (e: MessageEvent<WorkerMessage>) => void;
  postMessage(message: unknown): void;
  close(): void;
};

let options: TuneOptions;
let partition: Partition | undefined;
const cache = new TuningCache();
/** The context the prefetches run on, and each (file, variant)'s prefetch. */
let native: Resources | undefined;
/** Each model file, with its graph variants as a session derives them and its batch. */
const models = new Map<string, { model: Model; variants: Graph[]; batch: number }>();
/** Each model file's bytes this worker has, in memory shared with the pool (kept to the end: a
 * model's tune, after its retire, decodes them again). */
const fileBytes = new Map<string, Uint8Array>();
/** The model files read from disk while handling the current message (posted back). */
let readHere: Record<string, Uint8Array> = {};
const prefetches = new Map<string, StagePrefetch>();
/** Time the current job spent setting variants up on this worker (weights, stage timer), ms. */
let setupMs = 0;

async function modelFor(file: string) {
  let known = models.get(file);
  if (!known) {
    const shared = fileBytes.get(file);
    const model = shared ? modelFromBytes(shared, file) : await loadModel(file, true);
    if (!shared) fileBytes.set(file, readHere[file] = model.bytes!);
    const variants = graphVariants(optimize(model.graph), "auto", options.scheduler === "auto");
    known = { model, variants, batch: options.batch ?? batchOf(model.graph) };
    models.set(file, known);
  }
  return known;
}

/**
 * The context the prefetches run on, bound to the worker's partition: made when the worker starts
 * (while the parent reads the models), since the process's first one loads cuDNN's libraries.
 */
function openNative(): Resources {
  const backend = partition ? partition.native.backend : openBackend(options.device);
  const resources = new Resources(backend, backend.contextCreate(0));
  try {
    if (partition) backend.contextSetPartition(resources.ctx, partition.native.handle);
  } catch (e) {
    resources.release();
    throw e;
  }
  return resources;
}

async function prefetchFor(file: string, variant: number): Promise<StagePrefetch> {
  const id = variantId(file, variant);
  const known = prefetches.get(id);
  if (known) return known;
  const { variants, batch } = await modelFor(file);
  native ??= openNative();
  const { backend, ctx } = native;
  const execOptions = executableOptions(backend.deviceInfo(ctx), { partition, tuning: cache });
  const started = performance.now();
  const prefetch = new StagePrefetch(backend, ctx, variants[variant], batch, execOptions);
  setupMs += performance.now() - started;
  prefetches.set(id, prefetch);
  return prefetch;
}

/** A job's reply; `measured`: ops and stages the job timed ahead of a model's tuning. */
async function run(job: PoolJob): Promise<Record<string, unknown>> {
  // The model's session on this worker's context: plans its trials built here are found.
  if (job.kind === "tune") {
    const where = { partition, context: native, bytes: fileBytes.get(job.file) };
    return { result: await tuneOne(job.file, options, cache, where) };
  }
  const prefetch = await prefetchFor(job.file, job.variant);
  if (job.kind === "choose") return await choose(prefetch, job.variant);
  if (job.kind === "trials") return { trials: prefetch.timeCandidates(job.from, job.to) };
  const before = prefetch.measured;
  if (job.kind === "stages") {
    prefetch.measure(job.stages);
    return { measured: prefetch.measured - before };
  }
  const stages = await prefetch.plan(options.scheduler);
  // auto's candidates that need no stage times, timed ahead by trials jobs.
  const candidates = options.scheduler === "auto" ? prefetch.earlyCandidates().length : 0;
  // How many graph variants the model has: the parent learns it from the first plan.
  const { variants } = await modelFor(job.file);
  return { stages, candidates, variants: variants.length, measured: prefetch.measured - before };
}

/**
 * Auto's choice for one variant, made as the session would make it (and cached under the same
 * key, which the model's tune then finds), on the worker's weights and stage timer of the
 * variant; returns the ops and stages it had to time, and the candidate schedules (those the
 * trials jobs could not time ahead, and auto's confirmation).
 */
async function choose(prefetch: StagePrefetch, variant: number) {
  const label = variant === 0 ? "" : "merged:";
  const prepared = await prefetch.prepare(options.scheduler, label);
  prepared.resources.release();
  return { measured: prepared.stages.measured, trialsLate: prepared.trialsTimed };
}

/**
 * The preload: the model read (into shared memory, posted back) and its graph variants derived;
 * answers with its time. A failure is not answered as one: the plan job that needs the model
 * meets it again and reports it with the job.
 */
async function preload(file: string, preloadOptions: TuneOptions): Promise<void> {
  const started = performance.now();
  options = preloadOptions;
  try {
    await modelFor(file);
  } catch {
    // Reported by the model's plan.
  }
  scope.postMessage({ preloaded: true, preloadMs: performance.now() - started, read: readHere });
}

/** Frees a retired model's variants on this worker (their weights, stage timers) and its graph. */
function retire(file: string): void {
  for (const [id, prefetch] of prefetches) {
    if (isVariantOf(id, file)) {
      prefetch.release();
      prefetches.delete(id);
    }
  }
  models.get(file)?.model[Symbol.dispose]();
  models.delete(file);
}

/** With BRAID_PROFILE_CALLS=1, the backend calls' host times since the last reply. */
function profile(): { callMs?: CallTimes } {
  return profilingCalls() ? { callMs: takeCallTimes() } : {};
}

/** A thrown error as the parent's BraidError code and message. */
function errorOf(e: unknown): { code: BraidErrorCode; message: string } {
  return {
    code: e instanceof BraidError ? e.code : "NATIVE_INTERNAL",
    message: e instanceof Error ? e.message : String(e),
  };
}

function close(free: boolean): void {
  let error: ReturnType<typeof errorOf> | undefined;
  if (free) {
    try {
      // Every prefetch is of a model read here (prefetchFor reads it first).
      for (const file of [...models.keys()]) retire(file);
      native?.release();
      partition?.[Symbol.dispose]();
    } catch (e) {
      error = errorOf(e); // answered, not thrown: an uncaught error here would end the process
    }
  }
  scope.postMessage({ closed: true, error });
}

/**
 * The messages, one at a time in the order sent: a retire or a close sent while a job runs waits
 * for it (a job awaits file reads, which would otherwise let the next message in mid-job).
 */
let handling = Promise.resolve();
scope.onmessage = ({ data }) => {
  handling = handling.then(() => handle(data));
};

async function handle(data: WorkerMessage): Promise<void> {
  if (data.type === "close") return close(data.free);
  readHere = {};
  if (data.type === "preload") return await preload(data.file, data.options);
  if (data.type === "retire") {
    try {
      return retire(data.file);
    } catch (e) {
      // No answer is awaited; the model's memory stays until the worker closes.
      return console.error(`braid tune: freeing ${data.file}: ${errorOf(e).message}`);
    }
  }
  try {
    if (data.type === "init") {
      // On the worker's clock: its thread started and its modules loaded.
      const loadedMs = performance.now();
      options = data.options;
      partition = tuningPartition(options, data.group);
      native = openNative();
      const initMs = performance.now() - loadedMs;
      return scope.postMessage({ ready: true, loadedMs, initMs, ...profile() });
    }
    for (const [file, bytes] of Object.entries(data.models ?? {})) fileBytes.set(file, bytes);
    cache.merge(TuningCache.fromJSON(data.cache, "the parent's cache"));
    const mark = cache.mark();
    setupMs = 0;
    takeWarmUpMs();
    const reply = { ...await run(data.job), setupMs, warmUpMs: takeWarmUpMs(), ...profile() };
    scope.postMessage({ reply, cache: JSON.stringify(cache.since(mark).toJSON()), read: readHere });
  } catch (e) {
    scope.postMessage({ error: errorOf(e) });
  }
}
