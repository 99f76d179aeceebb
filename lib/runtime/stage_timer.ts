/**
 * Times IOS stages on the device, as the IOS paper does: each candidate stage (groups of ops that
 * run concurrently, one stream per group) is captured as a CUDA graph of its own and replayed.
 *
 * One executable holds the whole graph with no buffer reuse, so any subset of its ops can run
 * without disturbing another's operands; its conv algorithms come from the tuning cache as for
 * the real session. Each group gets its own stream and its own conv workspace. A stage's time is
 * the median over `rounds` of the mean of `replays` back-to-back replays between two events.
 */
import type { Backend, Handle } from "../../ffi/backend.ts";
import type { Graph, Value } from "../ir/graph.ts";
import { planMemory } from "../memory/planner.ts";
import { sequentialSchedule } from "../schedule/sequential.ts";
import type { Dag } from "../analysis/dag.ts";
import { Executable, type ExecutableOptions, Resources, type Weights } from "./executable.ts";
import { stats } from "./profiler.ts";

export interface StageTimerOptions {
  /** Replays launched back to back in one timed round. */
  replays?: number;
  /** Timed rounds; the median round counts. */
  rounds?: number;
  warmup?: number;
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
  readonly #timing: [Handle, Handle];
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
    this.#options = { replays: 5, rounds: 3, warmup: 2, ...timerOptions };
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
      this.#timing = [this.#event(), this.#event()];
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
    const empty = this.measure([[]]);
    return Array.from(
      { length: nodes },
      (_, v) => (this.launchesKernel(v) ? Math.max(0.5, this.measure([[v]]) - empty) : 0),
    );
  }

  /** Whether the node launches a kernel (views and in-place concats do not). */
  launchesKernel(node: number): boolean {
    return this.#exec.launchesKernel(node);
  }

  /** Median time of one replay of the stage, in microseconds. */
  measure(groups: number[][]): number {
    const started = performance.now();
    this.#ensureStreams(groups.length);
    const { backend } = this;
    const ctx = this.#resources.ctx;
    const graph = this.#exec.captureGroups(groups, this.#streams, this.#events, this.#workspaces);
    try {
      const { replays, rounds, warmup } = this.#options;
      for (let i = 0; i < warmup; i++) backend.graphLaunch(ctx, graph, 0n);
      const [start, end] = this.#timing;
      const samples: number[] = [];
      for (let r = 0; r < rounds; r++) {
        backend.eventRecord(ctx, start, 0n);
        for (let i = 0; i < replays; i++) backend.graphLaunch(ctx, graph, 0n);
        backend.eventRecord(ctx, end, 0n);
        backend.streamSynchronize(ctx, 0n);
        samples.push(backend.eventElapsed(ctx, start, end) / replays);
      }
      return stats(samples).medianMs * 1000;
    } finally {
      backend.graphDestroy(ctx, graph);
      this.measured++;
      this.spentMs += performance.now() - started;
    }
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
