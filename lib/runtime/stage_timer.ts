/**
 * Times IOS stages on the device, as the IOS paper does: each candidate stage (groups of ops that
 * run concurrently, one stream per group) is captured as a CUDA graph of its own and replayed.
 *
 * One executable holds the whole graph with no buffer reuse, so any subset of its ops can run
 * without disturbing another's operands; its conv algorithms come from the tuning cache as for
 * the real session. Each group gets its own stream and its own conv workspace. A stage's time is
 * the median over `rounds` of the mean of back-to-back replays between two events: `replays` of
 * them, or for a stage whose floor time is known, as many as make a round last `roundUs` (at least
 * `minReplays`), so a long stage (on few SMs, say) is timed as precisely as a short one without
 * costing more device time than it needs. measureMany() overlaps one stage's capture with the
 * previous stage's replays.
 *
 * A stage's graph is captured (each of its ops issued again, on one stream per group), or with
 * `graphs: "compose"` (BRAID_STAGE_GRAPHS=compose) put together from each op's graph template,
 * captured once per op: the same graph without the backend's host-side work of issuing the ops
 * again (cuDNN's costs tens of microseconds a convolution), which four tuning threads at once pay
 * four times.
 *
 * With `batch: K` (BRAID_STAGE_BATCH) K stages are captured into one graph, a timing
 * record before each and after the last, and the graph is launched once a round: a stage costs
 * its ops' captures, not a graph of its own with its instantiation, launches, event records and
 * destruction, which four tuning threads contend for in the driver (bench/NOTES.md v0.19, v0.20).
 * Batches are always captured (`graphs` does not apply).
 */
import type { Backend, Handle } from "../../ffi/backend.ts";
import type { Graph, Value } from "../ir/graph.ts";
import { planMemory } from "../memory/planner.ts";
import { sequentialSchedule } from "../schedule/sequential.ts";
import type { Dag } from "../analysis/dag.ts";
import { Executable, type ExecutableOptions } from "./executable.ts";
import { Resources, type Weights } from "./resources.ts";
import { stats } from "./profiler.ts";
import { envChoice } from "../platform.ts";

/** How a stage's graph is made: captured, or composed from op templates. */
export type StageGraphs = "capture" | "compose";

/** BRAID_STAGE_GRAPHS, else capture. */
export function stageGraphsFromEnv(): StageGraphs {
  return envChoice("BRAID_STAGE_GRAPHS", ["capture", "compose"]);
}

/**
 * Untimed replays before a stage's rounds: BRAID_STAGE_WARMUPS, else 0. A stage graph's first
 * launch (its upload, cold caches) then falls in its first timed round, which the median of the
 * rounds leaves out unless two rounds are slow; on a busy partition, where a stage waits for the
 * device, the warm-ups cost up to a sixth of tuning's stage time (bench/NOTES.md v0.19).
 */
export function stageWarmupsFromEnv(): number {
  return Number(envChoice("BRAID_STAGE_WARMUPS", ["0", "1", "2"]));
}

/**
 * Stages timed together, in one graph: BRAID_STAGE_BATCH (8, 16 or 32), else 0, each stage a graph
 * of its own. Opt-in: the schedules it led to matched the default's in sum, ±2.4% a model, in one
 * pair of tunings, and the GPU suite has not yet run with it on (bench/NOTES.md v0.21, v0.23).
 */
export function stageBatchFromEnv(): number {
  return Number(envChoice("BRAID_STAGE_BATCH", ["0", "8", "16", "32"]));
}

export interface StageTimerOptions {
  /** Replays launched back to back in one timed round (the most, for a stage with a floor). */
  replays?: number;
  /** The fewest replays a round has. */
  minReplays?: number;
  /** How long a round should last, µs, by a stage's floor time. */
  roundUs?: number;
  /** Timed rounds; the median round counts. */
  rounds?: number;
  /** Untimed replays before the rounds (default: stageWarmupsFromEnv()). */
  warmup?: number;
  /** How stage graphs are made (default: stageGraphsFromEnv()). */
  graphs?: StageGraphs;
  /**
   * Stages captured into one graph and timed together (default: stageBatchFromEnv(); 0 or 1: each
   * stage a graph of its own). In a batch each stage runs once a round, timed between timing
   * records before and after it, as it runs in a session's graph: after the previous stage's join.
   */
  batch?: number;
  /** Timed rounds of a batch (each stage once a round); the median round counts. */
  batchRounds?: number;
}

export class StageTimer {
  /** Stages measured so far (each distinct stage once: IOS memoises its stage costs). */
  measured = 0;
  /** Milliseconds spent measuring, host clock. */
  spentMs = 0;
  readonly #resources: Resources;
  readonly #exec: Executable;
  readonly #streams: Handle[] = [];
  readonly #workspaces: bigint[] = [];
  readonly #events: Handle[] = [];
  /** A batch's timing records: one before each stage and one after the last. */
  readonly #marks: Handle[] = [];
  /** Two sets of round boundaries (rounds + 1 events each), one per stage in flight. */
  readonly #roundEvents: Handle[][];
  readonly #options: Required<StageTimerOptions>;

  constructor(
    readonly backend: Backend,
    ctx: Handle,
    graph: Graph,
    shapes: Map<string, Value>,
    dag: Dag,
    options: ExecutableOptions,
    weights: Weights,
    timerOptions: StageTimerOptions = {},
  ) {
    // 100 µs: five replays of a 20 µs stage, the shortest rounds timed before rounds adapted. A
    // stage whose one replay fills a round (long ones, as on a small partition) is replayed once a
    // round: more would only add device time to the same precision.
    this.#options = {
      replays: 5,
      minReplays: 1,
      roundUs: 100,
      rounds: 3,
      warmup: stageWarmupsFromEnv(),
      batchRounds: 5,
      ...timerOptions,
      graphs: timerOptions.graphs ?? stageGraphsFromEnv(),
      batch: timerOptions.batch ?? stageBatchFromEnv(),
    };
    this.#resources = new Resources(backend, ctx, false);
    try {
      const schedule = sequentialSchedule(dag);
      const plan = planMemory(graph, shapes, schedule, {
        reuse: false,
        concatInPlace: options.concatInPlace,
      });
      this.#exec = new Executable(
        backend,
        this.#resources,
        graph,
        shapes,
        schedule,
        plan,
        options,
        weights,
      );
      const { rounds } = this.#options;
      this.#roundEvents = [0, 1].map(() => Array.from({ length: rounds + 1 }, () => this.#event()));
    } catch (e) {
      this.#resources.release();
      throw e;
    }
  }

  /**
   * Each node's time alone, µs: its one-op stage less an empty stage's time (the graph launch and
   * fork/join cost every stage pays); views and in-place concats launch nothing and take 0.
   */
  opTimes(nodes: number): number[] {
    const kernels = this.kernelNodes(nodes);
    const [empty, ...alone] = this.measureMany([[[]], ...kernels.map((v) => [[v]])]);
    const us = new Array<number>(nodes).fill(0);
    kernels.forEach((v, i) => (us[v] = Math.max(0.5, alone[i] - empty)));
    return us;
  }

  /** Whether the node launches a kernel (views and in-place concats do not). */
  launchesKernel(node: number): boolean {
    return this.#exec.launchesKernel(node);
  }

  /** The nodes of 0 … nodes − 1 that launch a kernel, in order. */
  kernelNodes(nodes: number): number[] {
    return Array.from({ length: nodes }, (_, v) => v).filter((v) => this.launchesKernel(v));
  }

  /** Median time of one replay of the stage, in microseconds. */
  measure(groups: number[][]): number {
    return this.measureMany([groups])[0];
  }

  /** Replays in one timed round of a stage with this floor time (µs; none: the most). */
  replaysFor(floorUs?: number): number {
    const { replays, minReplays, roundUs } = this.#options;
    if (!(floorUs !== undefined && floorUs > 0)) return replays;
    return Math.min(replays, Math.max(minReplays, Math.ceil(roundUs / floorUs)));
  }

  /** Untimed replays before a stage's rounds: one for a stage that fills a round by itself. */
  warmupFor(floorUs?: number): number {
    const { warmup } = this.#options;
    return this.#fillsRound(floorUs) ? Math.min(warmup, 1) : warmup;
  }

  /** Whether a stage with this floor time (µs; none: no) lasts a whole round in one replay. */
  #fillsRound(floorUs?: number): boolean {
    return floorUs !== undefined && floorUs >= this.#options.roundUs;
  }

  /**
   * Each stage's median replay time, µs, measured in a pipeline: while the device replays one
   * stage, the host captures and instantiates the next (the device's timing is by events, so the
   * host's work beside it does not count). Each stage is warmed up, then replayed in `rounds`
   * timed rounds, as measure() does; `floorsUs[i]`, where known, sets stage i's replays a round
   * (replaysFor).
   */
  measureMany(stages: number[][][], floorsUs: (number | undefined)[] = []): number[] {
    if (this.#options.batch > 1) return this.#measureBatched(stages, floorsUs);
    const { backend } = this;
    const ctx = this.#resources.ctx;
    const { rounds } = this.#options;
    const times: number[] = [];
    const began = performance.now();
    /** The stage in flight: its graph, its round events and its replays a round. */
    type Flight = { graph: Handle; events: Handle[]; replays: number };
    /** Stages launched and not yet read, oldest first (two at most). */
    const inFlight: Flight[] = [];
    const finish = () => {
      const { graph, events, replays } = inFlight.shift()!;
      try {
        backend.eventSynchronize(ctx, events[rounds]);
        const samples = Array.from(
          { length: rounds },
          (_, r) => backend.eventElapsed(ctx, events[r], events[r + 1]) / replays,
        );
        times.push(stats(samples).medianMs * 1000);
        this.measured++;
      } finally {
        backend.graphDestroy(ctx, graph);
      }
    };
    // Every stream and workspace the batch needs made first: an allocation zero-fills, which
    // would otherwise run beside a stage's timed rounds.
    this.#ensureStreams(stages.reduce((most, groups) => Math.max(most, groups.length), 1));
    try {
      stages.forEach((groups, i) => {
        const graph = this.#options.graphs === "compose"
          ? this.#exec.composeGroups(groups, this.#streams, this.#workspaces)
          : this.#exec.captureGroups(groups, this.#streams, this.#events, this.#workspaces);
        // Two stages in flight at most: each keeps its own round events until it is read.
        const flight = {
          graph,
          events: this.#roundEvents[i % 2],
          replays: this.replaysFor(floorsUs[i]),
        };
        inFlight.push(flight);
        const { events, replays } = flight;
        const warmup = this.warmupFor(floorsUs[i]);
        for (let w = 0; w < warmup; w++) backend.graphLaunch(ctx, graph, 0n);
        for (let r = 0; r < rounds; r++) {
          backend.eventRecord(ctx, events[r], 0n);
          for (let k = 0; k < replays; k++) backend.graphLaunch(ctx, graph, 0n);
        }
        backend.eventRecord(ctx, events[rounds], 0n);
        if (inFlight.length === 2) finish();
      });
      while (inFlight.length > 0) finish();
    } catch (e) {
      // Wait for what is still queued, then free every graph left; the first error is the one thrown.
      try {
        if (inFlight.length > 0) backend.streamSynchronize(ctx, 0n);
      } catch { /* reported by e */ }
      for (const { graph } of inFlight.splice(0)) {
        try {
          backend.graphDestroy(ctx, graph);
        } catch { /* reported by e */ }
      }
      throw e;
    } finally {
      this.spentMs += performance.now() - began;
    }
    return times;
  }

  /**
   * measureMany() in batches: `batch` stages captured into one graph with a timing record between
   * each two (Executable.captureTimedStages), launched warm-up times untimed, then once a round;
   * after each round the host waits and reads each stage's time between its records. While one
   * batch's first round runs, the host captures the next batch.
   *
   * Stages whose floor fills a round by itself (≥ roundUs, as most multi-group stages on a small
   * partition) are batched apart from the others and timed in `rounds` rounds, not `batchRounds`:
   * their times are then the median of as many single replays as the unbatched timer takes for
   * them (replaysFor() gives one a round), and the device time a small partition spends on them
   * is not five replays of each where three do.
   */
  #measureBatched(stages: number[][][], floorsUs: (number | undefined)[]): number[] {
    const { backend } = this;
    const ctx = this.#resources.ctx;
    const { batch, batchRounds, rounds, warmup } = this.#options;
    const times = new Array<number>(stages.length);
    const began = performance.now();
    this.#ensureStreams(stages.reduce((most, groups) => Math.max(most, groups.length), 1));
    while (this.#marks.length < batch + 1) this.#marks.push(this.#event());
    const indices = stages.map((_, i) => i);
    const long = indices.filter((i) => this.#fillsRound(floorsUs[i]));
    const short = indices.filter((i) => !this.#fillsRound(floorsUs[i]));
    /** Each batch: the stages' indices in `stages`, and its timed rounds. */
    const chunks: { indices: number[]; rounds: number }[] = [];
    for (const [indices, roundsOf] of [[short, batchRounds], [long, rounds]] as const) {
      for (let from = 0; from < indices.length; from += batch) {
        chunks.push({ indices: indices.slice(from, from + batch), rounds: roundsOf });
      }
    }
    /** A batch captured, and whether its first round is already launched. */
    type Flight = { graph: Handle; indices: number[]; rounds: number; launched: boolean };
    /** The batch's warm-ups and first round. */
    const launch = (flight: Flight) => {
      for (let w = 0; w < warmup; w++) backend.graphLaunch(ctx, flight.graph, 0n);
      backend.graphLaunch(ctx, flight.graph, 0n);
      flight.launched = true;
    };
    const finish = (flight: Flight) => {
      const samples = flight.indices.map(() => [] as number[]);
      if (!flight.launched) launch(flight);
      for (let r = 0; r < flight.rounds; r++) {
        if (r > 0) backend.graphLaunch(ctx, flight.graph, 0n);
        backend.streamSynchronize(ctx, 0n);
        samples.forEach((s, k) =>
          s.push(backend.eventElapsed(ctx, this.#marks[k], this.#marks[k + 1]))
        );
      }
      samples.forEach((s, k) => (times[flight.indices[k]] = stats(s).medianMs * 1000));
      this.measured += flight.indices.length;
    };
    const finishAndFree = (flight: Flight) => {
      try {
        finish(flight);
      } finally {
        backend.graphDestroy(ctx, flight.graph);
      }
    };
    let previous: Flight | undefined;
    try {
      for (const chunk of chunks) {
        if (previous) launch(previous);
        const graph = this.#exec.captureTimedStages(
          chunk.indices.map((i) => stages[i]),
          this.#streams,
          this.#events,
          this.#workspaces,
          this.#marks,
        );
        const done = previous;
        previous = { graph, ...chunk, launched: false };
        if (done) finishAndFree(done);
      }
      const last = previous;
      previous = undefined;
      if (last) finishAndFree(last);
    } catch (e) {
      try {
        backend.streamSynchronize(ctx, 0n);
      } catch { /* reported by e */ }
      if (previous) {
        try {
          backend.graphDestroy(ctx, previous.graph);
        } catch { /* reported by e */ }
      }
      throw e;
    } finally {
      this.spentMs += performance.now() - began;
    }
    return times;
  }

  /** Frees the executable's arena, streams, workspaces and events (not the shared weights). */
  release(): void {
    this.#resources.release();
  }

  #ensureStreams(count: number): void {
    const bytes = Math.max(this.#exec.maxWorkspaceBytes, 256);
    while (this.#streams.length < count) {
      const stream = this.backend.streamCreate(this.#resources.ctx, 0);
      this.#resources.streams.push(stream);
      this.#streams.push(stream);
      this.#workspaces.push(this.#resources.alloc(bytes));
    }
    while (this.#events.length < count + 1) this.#events.push(this.#event());
  }

  #event(): Handle {
    const e = this.backend.eventCreate(this.#resources.ctx);
    this.#resources.events.push(e);
    return e;
  }
}
