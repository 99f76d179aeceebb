/**
 * Measuring a session's IOS stages ahead of its tuning, so that many SM partitions can share the
 * work (braid tune's pool). The stages IOS asks to have timed do not depend on their times: the
 * DP costs every ending it enumerates, and the enumeration depends on the DAG, the pruning knobs
 * and the ops' times alone (large endings are packed into groups by op time). So measuring the
 * op times, then running auto once with the cost model standing in for every stage, lists the
 * stages the real tuning will ask for; they can be measured anywhere with the same SM budget,
 * in any order, and the real tuning then finds them all in the tuning cache.
 */
import type { Backend, Handle } from "../../ffi/backend.ts";
import { simulateStage } from "../analysis/device_model.ts";
import type { Graph } from "../ir/graph.ts";
import { inferShapes } from "../ir/validate.ts";
import {
  makeSchedule,
  type ScheduleContext,
  scheduleContext,
  type SchedulerName,
} from "../schedule/mod.ts";
import { type ExecutableOptions, Resources, Weights } from "./executable.ts";
import { budgetTuning, deviceModelOf } from "./prepare.ts";
import { StageTimer } from "./stage_timer.ts";
import type { BudgetTuning } from "./tuning.ts";

/** A stage to measure: its tuning-cache key and its groups of node indices. */
export interface PlannedStage {
  key: string;
  groups: number[][];
}

/** One graph variant on one context: its weights, a stage timer, and its tuning entries. */
export class StagePrefetch {
  readonly #resources: Resources;
  readonly #timer: StageTimer;
  readonly #tuned: BudgetTuning;
  readonly #ctx: ScheduleContext;

  constructor(
    backend: Backend,
    ctx: Handle,
    readonly graph: Graph,
    batch: number,
    readonly options: ExecutableOptions,
  ) {
    const shapes = inferShapes(graph, batch);
    this.#ctx = scheduleContext(graph, shapes, deviceModelOf(options.device, options.smBudget));
    this.#tuned = budgetTuning(options, graph, shapes);
    this.#resources = new Resources(backend, ctx, false);
    try {
      const weights = new Weights(backend, this.#resources, graph);
      this.#timer = new StageTimer(backend, ctx, graph, shapes, this.#ctx.dag, options, weights);
    } catch (e) {
      this.#resources.release();
      throw e;
    }
  }

  /**
   * Measures the op times (unless cached) and lists the stages the scheduler's tuning will ask
   * for that the cache lacks, each once. The scheduler runs here with the cost model for every
   * missing stage (and auto's every candidate); only the list is kept.
   */
  async plan(scheduler: SchedulerName = "auto"): Promise<PlannedStage[]> {
    const dag = this.#ctx.dag;
    const opTimeUs = this.#tuned.opTimes(() => this.#timer.opTimes(dag.size));
    const wanted = new Map<string, number[][]>();
    const launches = (v: number) => this.#timer.launchesKernel(v);
    await makeSchedule(scheduler, {
      ...this.#ctx,
      opTimeUs,
      measureStage: (groups) => {
        const key = this.#tuned.stageKey(groups, launches);
        const cached = this.options.tuning.getStage(key);
        if (cached !== undefined) return cached;
        if (!wanted.has(key)) wanted.set(key, groups);
        return simulateStage(groups, this.#ctx.costs, this.#ctx.device);
      },
    });
    return [...wanted].map(([key, groups]) => ({ key, groups }));
  }

  /** Ops and stages measured so far. */
  get measured(): number {
    return this.#timer.measured;
  }

  /** Measures stages (those not cached meanwhile) into the tuning cache. */
  measure(stages: number[][][]): void {
    const launches = (v: number) => this.#timer.launchesKernel(v);
    for (const groups of stages) {
      this.#tuned.stage(groups, () => this.#timer.measure(groups), launches);
    }
  }

  release(): void {
    this.#timer.release();
    this.#resources.release();
  }
}
