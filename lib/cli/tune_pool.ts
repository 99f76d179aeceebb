/**
 * A pooled `braid tune`: several models tuned at once by a pool of workers, one per partition of
 * the same size (the size the models will run with), so that the tuning jobs share the GPU
 * spatially. Each model's stages are spread over every worker (tune_queue.ts), not tied to one
 * partition: a model with many stages (inception_v3 has several times googlenet's) does not
 * leave the other partitions idle once the small models are done. Every measurement is made on a
 * partition of the budget the model is tuned for, so the entries are the ones a session of that
 * budget looks up. Workers are threads of this process (tune_worker.ts): kernels of different
 * processes' CUDA contexts time-slice the GPU (no MPS here), so one process per partition ran
 * slower than tuning one model after another (measured: 141%).
 */
import { addCallTimes, type CallTimes } from "../../ffi/call_profile.ts";
import { BraidError, type BraidErrorCode } from "../errors.ts";
import type { PlannedStage } from "../runtime/stage_plan.ts";
import { TuningCache } from "../runtime/tuning.ts";
import type { TuneOptions, TuneResult } from "./tune.ts";
import { poolChunkOrderFromEnv, type PoolJob, TuneQueue, variantId } from "./tune_queue.ts";
import type { WorkerMessage } from "./tune_worker.ts";
import { openBackend } from "../../ffi/backend.ts";
import type { DeviceOption } from "../runtime/session.ts";

/** What the pool did besides the models' own tuning. */
export interface PoolReport {
  workers: number;
  /** Jobs run, by kind. */
  jobs: Record<PoolJob["kind"], number>;
  /** Ops and stages measured by plan and stage jobs (before the models' tuning). */
  prefetched: number;
  /** Candidate schedules timed by trials jobs (before the models' choices). */
  trialsAhead: number;
  /** Candidate schedules the chooses timed themselves (ios's, and auto's confirmations). */
  trialsLate: number;
  /** Each worker's time spent in jobs, ms. */
  busyMs: number[];
  /**
   * Each worker's start: its init's start (ms after the worker was made: its modules loaded, and
   * for an early worker its preload and the partition query), an early worker's preload (its
   * first model read and its variants derived, ms; 0 for the others), its init (the partition
   * and the context made, ms), and its answer (ms since the pool started).
   */
  starts: { loadedMs: number; preloadMs: number; initMs: number; readyMs: number }[];
  /** Worker time spent in each kind of job, ms. */
  kindMs: Record<PoolJob["kind"], number>;
  /** Worker time spent setting model variants up (weights, stage timers), ms, within the jobs. */
  setupMs: number;
  /**
   * Worker time spent in executables' warm-ups (an eager run before the first capture, building
   * every op's library plan on the worker's context), ms, within the jobs.
   */
  warmUpMs: number;
  /** Models whose variants the workers were told to free before the end (once their tunes were
   * queued). */
  retired: number;
  /** Model files the workers read from disk: once each (the others get the first one's bytes),
   * unless two workers needed one at the same time. */
  reads: number;
  /** Closing the workers once the jobs are done (each freeing what it still held, unless the
   * process exits next: options.exiting), ms. */
  closeMs: number;
  /** When the pool started (its timeline's zero), ms since the process started. */
  startedAtMs: number;
  /** With BRAID_PROFILE_CALLS=1: the workers' backend calls' host time, ms, by kind of job (init:
   * the workers' start), by call. */
  callMs?: Partial<Record<PoolJob["kind"] | "init", CallTimes>>;
  /** Every job: its worker, kind, model, start and end (ms since the pool started), and the parts
   * of it spent setting a variant up on the worker and warming executables up. */
  timeline: {
    worker: number;
    kind: PoolJob["kind"];
    file: string;
    startMs: number;
    endMs: number;
    setupMs: number;
    warmUpMs: number;
  }[];
}

interface Reply {
  reply?: {
    stages?: PlannedStage[];
    /** A plan's count of auto's candidates that can be timed ahead. */
    candidates?: number;
    /** A plan's count of the model's graph variants. */
    variants?: number;
    measured?: number;
    /** Candidate schedules a trials job timed. */
    trials?: number;
    /** Candidate schedules a choose timed itself. */
    trialsLate?: number;
    result?: TuneResult;
    setupMs?: number;
    warmUpMs?: number;
    callMs?: CallTimes;
  };
  closed?: boolean;
  cache?: string;
  /** Model files the worker read from disk for this message, in shared memory. */
  read?: Record<string, Uint8Array>;
  /** A preload's answer, and its time, ms. */
  preloaded?: boolean;
  preloadMs?: number;
  error?: { code: BraidErrorCode; message: string };
  ready?: boolean;
  /** An init's start on the worker's clock (its modules loaded), and its own time, ms. */
  loadedMs?: number;
  initMs?: number;
  /** An init's backend call times (BRAID_PROFILE_CALLS=1). */
  callMs?: CallTimes;
}

/** Worker threads started and not yet ended, in this process. */
let threadsRunning = 0;

/** How many of the pool's worker threads are running (for tests: none once a tune is over). */
export function runningWorkers(): number {
  return threadsRunning;
}

/** One worker thread and the mark of the parent's cache it has been sent up to. */
class PoolWorker {
  readonly #worker = new Worker(new URL("./tune_worker.ts", import.meta.url).href, {
    type: "module",
  });
  /** The asks not yet answered, oldest first: the worker answers its messages in order. */
  readonly #answers: ((r: Reply) => void)[] = [];
  sent = 0;
  busyMs = 0;
  /** The model variants this worker has set up (variantId): its plan, stage and choose jobs. */
  readonly holds = new Set<string>();
  /** The model files whose bytes this worker has (read itself, or sent with a job). */
  readonly hasBytes = new Set<string>();
  /** An early worker's preload (of the model of the plan it takes first), answered. */
  preloaded?: Promise<Reply>;

  constructor() {
    threadsRunning++;
    this.#worker.onmessage = (e: MessageEvent<Reply>) => this.#answers.shift()?.(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      const error = { code: "NATIVE_INTERNAL" as const, message: e.message };
      for (const answer of this.#answers.splice(0)) answer({ error });
    };
  }

  /** A message that gets no answer (the worker handles it after its current job). */
  tell(message: WorkerMessage): void {
    this.#worker.postMessage(message);
  }

  ask(message: WorkerMessage): Promise<Reply> {
    return new Promise((resolve) => {
      this.#answers.push(resolve);
      this.#worker.postMessage(message);
    });
  }

  /**
   * Lets the worker free its native resources (unless `free` is false: the process exits next),
   * then ends it (at once if it does not answer).
   */
  async close(free: boolean): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)));
    const reply = await Promise.race([this.ask({ type: "close", free }), late]);
    clearTimeout(timer);
    if (reply?.error) {
      console.error(`braid tune: a worker did not close cleanly: ${reply.error.message}`);
    }
    this.terminate();
  }

  /** Ends the thread (at once: a worker never sent its init holds nothing). */
  terminate(): void {
    this.#worker.terminate();
    threadsRunning--;
  }
}

/**
 * Worker threads started before the pool knows its partitions: `braid tune --concurrent` starts
 * one per model ahead of the partition query, which initializes CUDA (~0.7 s on the H200), so that
 * meanwhile their modules load (~0.1 s each) and each reads the model of the plan it will take
 * first (worker i the i-th file's, up to 0.2 s for a 100 MB file) and derives its graph
 * variants. tunePooled takes them as its first workers.
 */
export class EarlyWorkers {
  #workers: PoolWorker[];

  constructor(files: string[], options: TuneOptions) {
    this.#workers = files.map((file) => {
      const worker = new PoolWorker();
      worker.preloaded = worker.ask({ type: "preload", file, options });
      return worker;
    });
  }

  /** `count` workers: the early ones first, then new ones; the early ones left over end. */
  take(count: number): PoolWorker[] {
    const taken = this.#workers.splice(0, count);
    this.end();
    while (taken.length < count) taken.push(new PoolWorker());
    return taken;
  }

  /** Ends the workers not taken (all of them when the pool never started). */
  end(): void {
    for (const w of this.#workers.splice(0)) w.terminate();
  }
}

/**
 * How many graph variants a model's plan is known to cover before its first plan: none for the
 * schedulers that measure nothing, else one (its first plan says whether there are more).
 */
function variantsKnown(options: TuneOptions): number {
  return options.scheduler === "sequential" || options.scheduler === "nimble" ? 0 : 1;
}

/**
 * Makes and frees a context on this thread while the workers load their modules (or, started
 * early, begin their inits): a process's first context loads cuDNN's and cuBLASLt's libraries,
 * which every worker's own context would otherwise wait for. A failure is left to the workers'
 * inits to report.
 */
function preloadDeviceLibraries(device: DeviceOption): void {
  try {
    const backend = openBackend(device);
    backend.contextDestroy(backend.contextCreate(0));
  } catch {
    // The workers meet the same failure and say what it is.
  }
}

const describeJob = (job: PoolJob) =>
  job.kind === "plan"
    ? `planning ${job.file} (variant ${job.variant})`
    : job.kind === "stages"
    ? `measuring ${job.stages.length} stages of ${job.file}`
    : job.kind === "trials"
    ? `timing candidate schedules ${job.from}–${job.to - 1} of ${job.file} (variant ${job.variant})`
    : job.kind === "choose"
    ? `choosing a schedule for ${job.file} (variant ${job.variant})`
    : `tuning ${job.file}`;

/**
 * Tunes `files` with one worker per entry of `groups` (each worker's partition is that group of
 * the device's split into options.sms-SM groups; with no options.sms, workers run unpartitioned).
 * Starts from and extends `cache`. Results come in the order of `files`. Workers in `early` are
 * taken first.
 */
export async function tunePooled(
  files: string[],
  options: TuneOptions,
  groups: number[],
  cache: TuningCache,
  early?: EarlyWorkers,
): Promise<{ results: TuneResult[]; pool: PoolReport }> {
  // The workers start (thread, CUDA context, partition); each reads the models it plans.
  const origin = performance.now();
  const workers = early?.take(groups.length) ?? groups.map(() => new PoolWorker());
  const readyMs: number[] = [];
  const starting = Promise.all(
    workers.map((w, i) =>
      w.ask({ type: "init", group: groups[i], options }).then((r) => {
        readyMs[i] = performance.now() - origin;
        return r;
      })
    ),
  );
  preloadDeviceLibraries(options.device);
  const queue = new TuneQueue(
    files.map((file) => ({ file, variants: variantsKnown(options) })),
    undefined,
    undefined,
    poolChunkOrderFromEnv(),
  );
  const results = new Map<string, TuneResult>();
  const prefetched = new Map<string, number>();
  const pool: PoolReport = {
    workers: workers.length,
    jobs: { plan: 0, trials: 0, stages: 0, choose: 0, tune: 0 },
    prefetched: 0,
    trialsAhead: 0,
    trialsLate: 0,
    busyMs: [],
    starts: [],
    kindMs: { plan: 0, trials: 0, stages: 0, choose: 0, tune: 0 },
    setupMs: 0,
    warmUpMs: 0,
    retired: 0,
    reads: 0,
    closeMs: 0,
    startedAtMs: origin,
    timeline: [],
  };
  /** Each model file's bytes, in shared memory, as the first worker to read it posted them. */
  const shared = new Map<string, Uint8Array>();
  const shareRead = (worker: PoolWorker, read: Record<string, Uint8Array> | undefined) => {
    for (const [file, bytes] of Object.entries(read ?? {})) {
      pool.reads++;
      if (!shared.has(file)) shared.set(file, bytes);
      worker.hasBytes.add(file);
    }
  };
  let succeeded = false;
  try {
    const started = await starting;
    const failed = started.find((r) => r.error);
    if (failed) throw new BraidError(failed.error!.code, failed.error!.message);
    const profile = (kind: PoolJob["kind"] | "init", times: CallTimes | undefined) => {
      if (times) addCallTimes((pool.callMs ??= {})[kind] ??= {}, times);
    };
    for (const r of started) profile("init", r.callMs);
    // Answered before the inits (a worker answers in order): the models the early workers read.
    const preloads = await Promise.all(workers.map((w) => w.preloaded));
    preloads.forEach((r, i) => shareRead(workers[i], r?.read));
    pool.starts = started.map((r, i) => ({
      loadedMs: r.loadedMs ?? 0,
      preloadMs: preloads[i]?.preloadMs ?? 0,
      initMs: r.initMs ?? 0,
      readyMs: readyMs[i],
    }));

    // Each idle worker takes the next ready job; a finished job may make more ready. Idle workers
    // are taken from the end: reversed, the first plans go to the workers in order, the i-th
    // file's to the early worker that preloaded its model.
    let failure: BraidError | undefined;
    const idle = [...workers].reverse();
    const running = new Set<Promise<void>>();
    const runJob = async (worker: PoolWorker, job: PoolJob) => {
      const started = performance.now();
      const bytes = worker.hasBytes.has(job.file) ? undefined : shared.get(job.file);
      if (bytes) worker.hasBytes.add(job.file);
      const message: WorkerMessage = {
        type: "job",
        job,
        cache: JSON.stringify(cache.since(worker.sent).toJSON()),
        models: bytes && { [job.file]: bytes },
      };
      worker.sent = cache.mark();
      if (job.kind !== "tune") worker.holds.add(variantId(job.file, job.variant));
      const r = await worker.ask(message);
      shareRead(worker, r.read);
      const ended = performance.now();
      worker.busyMs += ended - started;
      pool.kindMs[job.kind] += ended - started;
      pool.timeline.push({
        worker: workers.indexOf(worker),
        kind: job.kind,
        file: job.file,
        startMs: started - origin,
        endMs: ended - origin,
        setupMs: r.reply?.setupMs ?? 0,
        warmUpMs: r.reply?.warmUpMs ?? 0,
      });
      pool.setupMs += r.reply?.setupMs ?? 0;
      pool.warmUpMs += r.reply?.warmUpMs ?? 0;
      profile(job.kind, r.reply?.callMs);
      if (r.error) {
        failure ??= new BraidError(r.error.code, `${describeJob(job)}: ${r.error.message}`);
        return;
      }
      cache.merge(TuningCache.fromJSON(r.cache!, "a tuning worker's entries"), "ours");
      pool.jobs[job.kind]++;
      const measured = r.reply!.measured ?? 0;
      pool.prefetched += measured;
      prefetched.set(job.file, (prefetched.get(job.file) ?? 0) + measured);
      pool.trialsAhead += r.reply!.trials ?? 0;
      pool.trialsLate += r.reply!.trialsLate ?? 0;
      if (job.kind === "plan") {
        queue.planned(job, r.reply!.stages!, r.reply!.candidates, r.reply!.variants);
      } else {
        if (job.kind === "tune") results.set(job.file, r.reply!.result!);
        queue.finished(job);
      }
      idle.push(worker);
    };
    while (!queue.done && !failure) {
      let job: PoolJob | undefined;
      while (idle.length > 0 && (job = queue.next(idle.at(-1)!.holds))) {
        const p = runJob(idle.pop()!, job).finally(() => running.delete(p));
        running.add(p);
      }
      // Models whose tunes are queued: every worker frees their variants, after the job it was
      // just sent (a model's tune, the pool's serial tail, does not wait for the frees).
      for (const file of queue.retire()) {
        for (const w of workers) w.tell({ type: "retire", file });
        pool.retired++;
      }
      if (running.size === 0) break;
      await Promise.race(running);
    }
    await Promise.all(running);
    if (failure) throw failure;
    if (!queue.done) throw new BraidError("NATIVE_INTERNAL", "the tuning pool ran out of jobs");
    pool.busyMs = workers.map((w) => w.busyMs);
    // Each model's count includes what the pool measured for it ahead of its tuning.
    const counted = (r: TuneResult) => ({
      ...r,
      stagesMeasured: r.stagesMeasured + (prefetched.get(r.file) ?? 0),
    });
    succeeded = true;
    return { results: files.map((f) => counted(results.get(f)!)), pool };
  } finally {
    // A worker still starting answers its init first: a close sent meanwhile would take that
    // answer and end the worker before it freed its context and partition.
    await starting.catch(() => {});
    const closing = performance.now();
    // After a failure everything is freed, exiting or not: the process stays usable.
    const free = !(options.exiting && succeeded);
    await Promise.all(workers.map((w) => w.close(free)));
    pool.closeMs = performance.now() - closing;
  }
}
