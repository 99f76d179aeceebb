/**
 * Session: a model prepared for one device and batch size.
 *   validate → passes → shapes → DAG → schedule → memory plan → verify → upload → capture
 * `run()` copies the inputs in, launches the captured graph once, copies the outputs out and
 * synchronises.
 */
import { type Backend, type DeviceInfo, type Handle, openBackend } from "../../ffi/backend.ts";
import { BraidError, check } from "../errors.ts";
import { batchOf, DTYPE_SIZE, type Graph, numel, shapeString, type Value } from "../ir/graph.ts";
import { inferShapes, validateGraph } from "../ir/validate.ts";
import { planMemory } from "../memory/planner.ts";
import { optimize } from "../passes/mod.ts";
import { type Schedule, verify } from "../schedule/schedule.ts";
import { sequentialSchedule } from "../schedule/sequential.ts";
import { isSchedulerName, type SchedulerName, SCHEDULERS } from "../schedule/mod.ts";
import { Executable, type ExecutableOptions } from "./executable.ts";
import { Resources } from "./resources.ts";
import { Model } from "./model.ts";
import { TuningCache } from "./tuning.ts";
import { InputPinning } from "./input_pinning.ts";
import type { Partition } from "./partition.ts";
import { type Profile, replayStats, type Stats, stats } from "./profiler.ts";
import { graphVariants, prepare, type Prepared, type StageStats, type Trial } from "./prepare.ts";

export type DeviceOption = "auto" | "cpu" | "cuda";
export type SchedulerOption = SchedulerName;
export type { StageStats, Trial };

/**
 * Internal (not exported by mod.ts): an option key for a context the session runs on without
 * owning it, already bound to the session's partition (a tuning worker's). The session frees what
 * it made there when it goes, never the context.
 */
export const ON_CONTEXT: unique symbol = Symbol("braid.onContext");

export interface SessionOptions {
  /** Internal: see ON_CONTEXT. */
  [ON_CONTEXT]?: { backend: Backend; ctx: Handle };
  /** "auto" picks CUDA when its library loads and a GPU is present, else the CPU. */
  device?: DeviceOption;
  scheduler?: SchedulerOption;
  /** Batch size: the first dimension of every graph input (default: as the model was saved). */
  batch?: number;
  /** Issue the schedule op by op on every run instead of replaying a captured graph. */
  eager?: boolean;
  /** Run the graph rewrites (BatchNorm folding, fusion). Default true. */
  optimize?: boolean;
  /** Device index for CUDA. */
  deviceIndex?: number;
  /**
   * "default" follows PyTorch: TF32 allowed in convolutions, strict fp32 in matrix products.
   * "fp32" is strict everywhere; "tf32" allows TF32 everywhere.
   */
  precision?: PrecisionOption;
  /** Measured choices (conv algorithms) to reuse and extend; shared between sessions. */
  tuning?: TuningCache;
  /** Measure choices missing from the tuning cache (default true). */
  tune?: boolean;
  /**
   * IOS's operator merge of sibling convolutions: "auto" (default) tries the graph with and
   * without it when the auto scheduler measures on a GPU and keeps the faster; true or false
   * forces it.
   */
  merge?: boolean | "auto";
  /**
   * Concats whose inputs are contiguous slices of their output (channels at batch 1) launch no
   * kernel: the producers write straight into their slices (default true).
   */
  concatInPlace?: boolean;
  /**
   * Run on these SMs only (a CUDA green context): every kernel stays there, and tuning uses
   * the entries of the partition's SM budget. The partition must outlive the session.
   */
  partition?: Partition;
  /**
   * The SM budget whose tuning-cache entries the session reads and writes (default: the
   * partition's SMs, or the whole device's).
   */
  smBudget?: number;
  /**
   * run() page-locks an input array in place the second time it is given one, and from then on
   * copies that input to the device straight from it, as from `io.inputs` (default false). Up to
   * two arrays of each input stay locked; the session holds them until it is disposed or newer
   * arrays displace them after they go unused. The arrays stay yours to rewrite between calls,
   * but must not be resized while the session may hold them; one transferred is unlocked at the
   * next copy. Dispose such a session before its worker ends (a terminated worker's finalizers
   * never run, and memory left locked after it is freed would be read stale by later copies).
   */
  pinInputs?: boolean;
}

export type PrecisionOption = "default" | "fp32" | "tf32";

/** One cache for the whole process unless a session is given its own. */
const processTuning = new TuningCache();

export type HostTensor = Float32Array | Int32Array;

export interface SessionReport {
  model: string;
  device: DeviceInfo;
  scheduler: string;
  batch: number;
  eager: boolean;
  /** Nodes in the model, and after the rewrites. */
  modelOps: number;
  ops: number;
  kernelLaunches: number;
  streams: number;
  events: number;
  arenaBytes: number;
  /** The arena without any reuse (every intermediate in its own bytes). */
  noReuseBytes: number;
  /** The arena the sequential schedule would need (the baseline for parallel schedules). */
  sequentialArenaBytes: number;
  weightBytes: number;
  /** The SM budget its tuning entries are keyed by, and the partition it runs in (if any). */
  smBudget: number;
  partition?: { sms: number; group: number };
  /** Device memory this session holds: weights, arena and workspaces. */
  deviceBytes: number;
  precision: PrecisionOption;
  /**
   * The convolutions of the chosen graph whose algorithm was measured while preparing this
   * session, and those found in the tuning cache; `engines`: the convolutions that run a cuDNN
   * engine configuration, `enginesTargeted` those of them whose configuration cuDNN's heuristic
   * chose for an SM budget below the whole device; `ms`: time spent measuring algorithms (every
   * graph variant).
   */
  tuning: {
    measured: number;
    cached: number;
    engines: number;
    enginesTargeted: number;
    ms: number;
  };
  /** Schedules auto measured on the device before choosing (empty otherwise). */
  trials: Trial[];
  /** Time spent timing them, ms. */
  trialsMs: number;
  /** Ops and IOS stages timed on the device as captured graphs while scheduling (all variants). */
  stages: StageStats;
  /** Wall-clock run() latency in milliseconds. */
  latency: { runs: number; lastMs: number; medianMs: number; minMs: number };
}

/** The finalizer's hold on a session's resources, keeping its partition alive until they go. */
interface Held {
  resources: Resources;
  partition?: Partition;
}
const registry = new FinalizationRegistry<Held>((held) => held.resources.release());

/** What a session's executables are built with, from its options and device. */
export function executableOptions(
  device: DeviceInfo,
  options: SessionOptions,
): ExecutableOptions {
  const precision = options.precision ?? "default";
  return {
    precision: { convTf32: precision !== "fp32", matmulTf32: precision === "tf32" },
    device,
    tuning: options.tuning ?? processTuning,
    tune: options.tune ?? true,
    smBudget: options.smBudget ?? options.partition?.sms ?? device.multiprocessors,
    concatInPlace: options.concatInPlace ?? true,
    convTuning: { measured: new Set(), ms: 0 },
  };
}

export class Session {
  #exec: Executable | undefined;
  #graphHandle: bigint | undefined;
  /** The graph without the input copies, for inputs copied in from the caller's arrays. */
  #directGraphHandle: bigint | undefined;
  /** The caller's arrays run() copies from directly (undefined: pinInputs off). */
  readonly #pinning: InputPinning | undefined;
  /** While profile() runs: device events recorded around each replay. */
  #replayTiming: [Handle, Handle] | undefined;
  readonly #inputs: { name: string; value: Value; bytes: number }[];
  readonly #outputs: { name: string; value: Value }[];
  readonly #latencies: number[] = [];
  /** The launchAsync() in flight (they run one at a time), and whether one is waiting. */
  #pending: Promise<void> = Promise.resolve();
  #waiting = false;
  readonly #device: DeviceInfo;
  readonly #info: Omit<SessionReport, "latency" | "device">;

  private constructor(
    exec: Executable,
    device: DeviceInfo,
    info: Omit<SessionReport, "latency" | "device">,
    pinInputs: boolean,
  ) {
    this.#exec = exec;
    this.#pinning = pinInputs ? new InputPinning(exec.resources) : undefined;
    // Captured now, not in the middle of the first run that copies from a caller's array.
    if (pinInputs && !info.eager) this.#directGraphHandle = exec.capture("outputs");
    this.#device = device;
    this.#info = info;
    this.#inputs = exec.graph.inputs.map((name) => {
      const value = exec.shapes.get(name)!;
      return { name, value, bytes: numel(value.shape) * DTYPE_SIZE[value.dtype] };
    });
    this.#outputs = exec.graph.outputs.map((name) => ({ name, value: exec.shapes.get(name)! }));
  }

  /** Prepares a model (or a bare graph) for a device. Validates before allocating anything. */
  static create(model: Model | Graph, options: SessionOptions = {}): Promise<Session> {
    return Promise.resolve().then(() => Session.#create(model, options));
  }

  static async #create(model: Model | Graph, options: SessionOptions): Promise<Session> {
    const source = model instanceof Model ? model.graph : model;
    if (!(model instanceof Model)) validateGraph(source);
    const batch = options.batch ?? batchOf(source);
    check(
      Number.isInteger(batch) && batch >= 1,
      "BAD_OPTION",
      () => `batch must be a positive integer, got ${batch}`,
    );
    const device = options.device ?? "auto";
    check(
      ["auto", "cpu", "cuda"].includes(device),
      "BAD_OPTION",
      () => `device must be "auto", "cpu" or "cuda", got "${device}"`,
    );
    const schedulerName = options.scheduler ?? "auto";
    check(
      isSchedulerName(schedulerName),
      "BAD_OPTION",
      () => `scheduler "${schedulerName}" is unknown (have: ${Object.keys(SCHEDULERS).join(", ")})`,
    );
    const precision = options.precision ?? "default";
    check(
      ["default", "fp32", "tf32"].includes(precision),
      "BAD_OPTION",
      () => `precision must be "default", "fp32" or "tf32", got "${precision}"`,
    );
    inferShapes(source, batch); // shape errors at this batch surface before any allocation

    const graph: Graph = options.optimize === false ? source : optimize(source);
    const partition = options.partition;
    check(
      partition === undefined || (device !== "cpu" && !partition.disposed),
      "BAD_OPTION",
      () => `a partition needs the CUDA backend and must be live (device "${device}")`,
    );
    check(
      options.smBudget === undefined ||
        (Number.isInteger(options.smBudget) && options.smBudget > 0),
      "BAD_OPTION",
      () => `smBudget must be a positive integer, got ${options.smBudget}`,
    );
    const borrowed = options[ON_CONTEXT];
    const backend = borrowed?.backend ??
      (partition ? partition.native.backend : openBackend(device));
    const ctx = borrowed?.ctx ?? backend.contextCreate(options.deviceIndex ?? 0);
    const resources = new Resources(backend, ctx, borrowed === undefined);
    /** The fastest variant so far, its resources not yet adopted (freed if a later one throws). */
    let best: Prepared | undefined;
    try {
      if (partition && !borrowed) backend.contextSetPartition(ctx, partition.native.handle);
      const deviceInfo = backend.deviceInfo(ctx);
      const execOptions = executableOptions(deviceInfo, options);
      const measuring = schedulerName === "auto" && backend.kind === "cuda";
      const variants = graphVariants(graph, options.merge ?? "auto", measuring);
      const trials: Trial[] = [];
      let trialsMs = 0;
      const stages: StageStats = { measured: 0, ms: 0, opSumUs: 0, criticalPathUs: 0 };
      for (const [i, variant] of variants.entries()) {
        const prepared = await prepare(
          backend,
          ctx,
          variant,
          batch,
          schedulerName,
          execOptions,
          i === 0 ? "" : "merged:",
        );
        trials.push(...prepared.trials);
        trialsMs += prepared.trialsMs;
        stages.measured += prepared.stages.measured;
        stages.ms += prepared.stages.ms;
        if (i === 0) {
          stages.opSumUs = prepared.stages.opSumUs;
          stages.criticalPathUs = prepared.stages.criticalPathUs;
        }
        if (!best || prepared.ms < best.ms) {
          best?.resources.release();
          best = prepared;
        } else prepared.resources.release();
      }
      const { graph: chosen, shapes, schedule, weights, dag } = best!;
      resources.adopt(best!.resources);
      const layout = { concatInPlace: execOptions.concatInPlace };
      const plan = planMemory(chosen, shapes, schedule, layout);
      verify(chosen, schedule, plan);
      const sequentialArenaBytes = schedule.streams === 1
        ? plan.arenaBytes
        : planMemory(chosen, shapes, sequentialSchedule(dag), layout).arenaBytes;
      const exec = new Executable(
        backend,
        resources,
        chosen,
        shapes,
        schedule,
        plan,
        execOptions,
        weights,
      );
      const session = new Session(exec, deviceInfo, {
        model: source.name,
        scheduler: schedule.scheduler,
        batch,
        eager: options.eager ?? false,
        modelOps: source.nodes.length,
        ops: chosen.nodes.length,
        kernelLaunches: exec.kernelLaunches,
        streams: schedule.streams,
        events: schedule.events,
        arenaBytes: plan.arenaBytes,
        noReuseBytes: plan.noReuseBytes,
        sequentialArenaBytes,
        weightBytes: exec.weightBytes,
        smBudget: execOptions.smBudget,
        partition: partition && { sms: partition.sms, group: partition.group },
        deviceBytes: resources.deviceBytes,
        precision,
        tuning: { ...exec.tuned, ms: execOptions.convTuning.ms },
        trials,
        trialsMs,
        stages,
      }, options.pinInputs ?? false);
      if (!options.eager) session.#graphHandle = exec.capture();
      registry.register(session, { resources, partition }, session);
      return session;
    } catch (e) {
      best?.resources.release(); // empty once adopted
      resources.release();
      throw e;
    }
  }

  #live(): Executable {
    if (!this.#exec) throw new BraidError("DISPOSED", "this session was disposed");
    return this.#exec;
  }

  /** The graph this session runs (after the rewrites). */
  get graph(): Graph {
    return this.#live().graph;
  }

  /** The schedule this session runs. */
  get schedule(): Schedule {
    return this.#live().schedule;
  }

  /**
   * Runs once eagerly with a device event before and after every launch: where each op ran and
   * when, in milliseconds since the input copies began (after `warmup` untimed runs).
   */
  measureTimeline(warmup = 3): { node: number; stream: number; startMs: number; endMs: number }[] {
    const exec = this.#live();
    for (let i = 0; i < warmup; i++) this.#launch(exec);
    const { startMs, endMs } = exec.issueTimed();
    exec.backend.streamSynchronize(exec.resources.ctx, 0n);
    return exec.schedule.launches.map((l, i) => ({
      node: l.node,
      stream: l.stream,
      startMs: startMs[i],
      endMs: endMs[i],
    }));
  }

  /** Input names with their shapes and dtypes at this session's batch. */
  get inputs(): Value[] {
    return this.#inputs.map((i) => i.value);
  }

  get outputs(): Value[] {
    return this.#outputs.map((o) => o.value);
  }

  /** Runs the model once. Inputs and outputs are keyed by graph input and output names. */
  run(inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    return Promise.resolve().then(() => this.runSync(inputs));
  }

  /** run(), without the promise. */
  runSync(inputs: Record<string, HostTensor>): Record<string, HostTensor> {
    return this.#run(inputs, this.#pinning);
  }

  /** run() with the caller's arrays copied directly where `pinning` has them locked. */
  #run(
    inputs: Record<string, HostTensor>,
    pinning: InputPinning | undefined,
  ): Record<string, HostTensor> {
    const exec = this.#live();
    this.#checkInputs(inputs);
    const start = performance.now();
    let direct: Map<string, HostTensor> | undefined;
    for (const [name, host] of exec.hostInputs) {
      const given = inputs[name];
      if (given === host) continue;
      if (pinning?.direct(name, given)) (direct ??= new Map()).set(name, given);
      else host.set(given);
    }
    this.#launch(exec, direct);
    const results: Record<string, HostTensor> = {};
    for (const [name, host] of exec.hostOutputs) results[name] = host.slice();
    this.#latencies.push(performance.now() - start);
    return results;
  }

  /**
   * The page-locked host buffers the captured graph copies from and to. Write `io.inputs`, call
   * launch(), read `io.outputs`: no host copies at all. Valid until the session is disposed.
   * run() copies the caller's inputs into `io.inputs`, except those it copies straight from arrays
   * it holds locked (pinInputs): those it leaves as they were.
   */
  get io(): { inputs: Record<string, HostTensor>; outputs: Record<string, HostTensor> } {
    const exec = this.#live();
    return {
      inputs: Object.fromEntries(exec.hostInputs),
      outputs: Object.fromEntries(exec.hostOutputs),
    };
  }

  /** Runs the model on what `io.inputs` holds; the results are in `io.outputs` on return. */
  launch(): void {
    const exec = this.#live();
    const start = performance.now();
    this.#launch(exec);
    this.#latencies.push(performance.now() - start);
  }

  /**
   * launch() without blocking the thread: the replay is issued now and the promise resolves once
   * the device has finished it (the wait runs on another thread), so several sessions, each on
   * its own partition, run concurrently from one thread. Calls on one session run one at a time.
   */
  launchAsync(): Promise<void> {
    const run = this.#pending.then(() => this.#launchAsync());
    this.#pending = run.catch(() => {});
    return run;
  }

  async #launchAsync(): Promise<void> {
    const exec = this.#live();
    const ctx = exec.resources.ctx;
    const start = performance.now();
    if (this.#graphHandle !== undefined) exec.backend.graphLaunch(ctx, this.#graphHandle, 0n);
    else exec.issue();
    this.#waiting = true;
    try {
      await exec.backend.streamWait(ctx, 0n);
    } finally {
      this.#waiting = false;
      // Disposed while waiting: the release was left to now.
      if (!this.#exec) exec.resources.release();
    }
    this.#latencies.push(performance.now() - start);
  }

  /** The SM ids a probe kernel ran on, launched on this session's stream (where its work runs). */
  probeSms(blocks = 4096): number[] {
    const exec = this.#live();
    return exec.backend.smProbe(exec.resources.ctx, 0n, blocks);
  }

  /**
   * One run on the device, synchronised. `direct`: inputs to copy in from these arrays (locked by
   * the pinning) rather than from `io.inputs`; the other inputs still come from `io.inputs`.
   */
  #launch(exec: Executable, direct?: Map<string, HostTensor>): void {
    const { backend } = exec;
    const ctx = exec.resources.ctx;
    const timing = this.#replayTiming;
    if (timing) backend.eventRecord(ctx, timing[0], 0n);
    if (direct) {
      for (const [name, host] of exec.hostInputs) exec.copyInput(name, direct.get(name) ?? host);
      if (this.#directGraphHandle === undefined) exec.issue("outputs");
      else backend.graphLaunch(ctx, this.#directGraphHandle, 0n);
    } else if (this.#graphHandle !== undefined) backend.graphLaunch(ctx, this.#graphHandle, 0n);
    else exec.issue();
    if (timing) backend.eventRecord(ctx, timing[1], 0n);
    backend.streamSynchronize(ctx, 0n);
  }

  #checkInputs(inputs: Record<string, HostTensor>) {
    const expected = this.#inputs.map((i) => i.name);
    for (const name of Object.keys(inputs)) {
      check(
        expected.includes(name),
        "INPUT_MISSING",
        () => `"${name}" is not an input of this model; its inputs are ${expected.join(", ")}`,
      );
    }
    for (const { name, value } of this.#inputs) {
      const data = inputs[name];
      check(data !== undefined, "INPUT_MISSING", () => `input "${name}" is missing`);
      const wanted = value.dtype === "int32" ? Int32Array : Float32Array;
      check(
        data instanceof wanted,
        "INPUT_TYPE",
        () => `input "${name}" must be a ${wanted.name} (${value.dtype})`,
      );
      check(
        data.length === numel(value.shape),
        "INPUT_SIZE",
        () =>
          `input "${name}" has ${data.length} elements; shape ${shapeString(value.shape)} ` +
          `needs ${numel(value.shape)}`,
      );
    }
  }

  /**
   * Measures this session: `runs` replays of the captured graph timed with device events, and
   * `runs` calls each of run() (as it runs, and with the inputs always copied through `io.inputs`),
   * run(io.inputs) and launch() timed on the wall clock, after untimed calls of each: `warmup` of
   * them, and for `warmupMs` milliseconds at least.
   */
  profile(
    inputs: Record<string, HostTensor>,
    { warmup = 100, warmupMs = 250, runs = 200 } = {},
  ): Profile {
    const exec = this.#live();
    if (this.#graphHandle === undefined) {
      throw new BraidError("BAD_OPTION", "profile() needs a captured graph (eager: false)");
    }
    const { backend } = exec;
    const ctx = exec.resources.ctx;
    const pinned = this.io.inputs;
    for (const [name, data] of Object.entries(inputs)) pinned[name].set(data);
    const ways = [
      () => this.runSync(inputs),
      () => this.#run(inputs, undefined),
      () => this.runSync(pinned),
      () => this.launch(),
    ];
    // Every way warmed up: the first calls of a process run before the JIT has compiled them,
    // and the first session measured would otherwise show that as host overhead (T2139: 21 µs
    // for the first session's run(io), 9–12 µs for later ones; the process was ~1000 calls in).
    const warmStart = performance.now();
    for (let i = 0; i < warmup || performance.now() - warmStart < warmupMs; i++) {
      ways.forEach((f) => f());
    }
    // The same schedule captured without the input and output copies, for the kernels' time.
    const kernelsOnly = exec.capture("none");
    let gpuStats: Stats, compute: Stats;
    try {
      gpuStats = replayStats(backend, ctx, this.#graphHandle, { runs });
      compute = replayStats(backend, ctx, kernelsOnly, { runs });
    } finally {
      backend.graphDestroy(ctx, kernelsOnly);
      exec.resources.graphs = exec.resources.graphs.filter((g) => g !== kernelsOnly);
    }
    // Each call timed on the wall clock, its replay between two device events: the host
    // overhead is the median of the per-call differences (paired, so drifts in GPU time cancel).
    // The four ways to run take turns call by call, so a drift in host speed hits them alike.
    const wall = ways.map(() => [] as number[]);
    const overheadUs = ways.map(() => [] as number[]);
    const timing = this.#replayTiming = [backend.eventCreate(ctx), backend.eventCreate(ctx)];
    try {
      for (let i = 0; i < runs; i++) {
        ways.forEach((f, w) => {
          const t = performance.now();
          f();
          const ms = performance.now() - t;
          wall[w].push(ms);
          overheadUs[w].push(1000 * (ms - backend.eventElapsed(ctx, timing[0], timing[1])));
        });
      }
    } finally {
      this.#replayTiming = undefined;
      for (const e of timing) backend.eventDestroy(ctx, e);
    }
    const [run, runCopied, runPinned, launch] = ways.map((_, w) => ({
      wall: stats(wall[w]),
      overheadUs: stats(overheadUs[w]).medianMs,
    }));
    return {
      gpu: gpuStats,
      compute,
      run: run.wall,
      runCopied: runCopied.wall,
      runPinned: runPinned.wall,
      launch: launch.wall,
      hostOverheadUs: run.overheadUs,
      copiedOverheadUs: runCopied.overheadUs,
      pinnedOverheadUs: runPinned.overheadUs,
      launchOverheadUs: launch.overheadUs,
    };
  }

  /** What this session runs and how fast it has run so far. */
  report(): SessionReport {
    this.#live();
    const { runs, medianMs, minMs } = stats(this.#latencies);
    return {
      ...this.#info,
      device: this.#device,
      latency: { runs, lastMs: this.#latencies.at(-1) ?? NaN, medianMs, minMs },
    };
  }

  [Symbol.dispose](): void {
    const exec = this.#exec;
    if (!exec) return;
    this.#exec = undefined;
    registry.unregister(this);
    this.#pinning?.release();
    // A launchAsync() still waiting on the device releases the resources when it returns.
    if (!this.#waiting) exec.resources.release();
  }
}
