/**
 * A graph variant's stages measured ahead of its session's tuning, on any context with the same SM
 * budget (braid tune's pool): its op times first, then the stages its scheduler will ask for
 * (stage_plan.ts), measured in batches into the tuning cache; then, once they are all in, auto's
 * candidate schedules timed (a share of them each), so that auto only compares.
 */
import type { Backend, Handle } from "../../ffi/backend.ts";
import type { Graph, Value } from "../ir/graph.ts";
import { inferShapes } from "../ir/validate.ts";
import { type ScheduleContext, scheduleContext, type SchedulerName } from "../schedule/mod.ts";
import { autoCandidates } from "../schedule/auto.ts";
import { type ExecutableOptions, Resources, Weights } from "./executable.ts";
import { budgetTuning, deviceModelOf, timeSchedule } from "./prepare.ts";
import { measureStages, type PlannedStage, plannedStages } from "./stage_plan.ts";
import { StageTimer } from "./stage_timer.ts";
import type { BudgetTuning } from "./tuning.ts";

/** One graph variant on one context: its weights, a stage timer, and its tuning entries. */
export class StagePrefetch {
  readonly #resources: Resources;
  readonly #weights: Weights;
  readonly #shapes: Map<string, Value>;
  readonly #timer: StageTimer;
  readonly #tuned: BudgetTuning;
  readonly #ctx: ScheduleContext;

  constructor(
    backend: Backend,
    ctx: Handle,
    readonly graph: Graph,
    readonly batch: number,
    readonly options: ExecutableOptions,
  ) {
    const shapes = inferShapes(graph, batch);
    this.#shapes = shapes;
    this.#ctx = scheduleContext(graph, shapes, deviceModelOf(options.device, options.smBudget));
    this.#tuned = budgetTuning(options, graph, shapes);
    this.#resources = new Resources(backend, ctx, false);
    try {
      this.#weights = new Weights(backend, this.#resources, graph);
      this.#timer = new StageTimer(
        backend,
        ctx,
        graph,
        shapes,
        this.#ctx.dag,
        options,
        this.#weights,
      );
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
    const opTimeUs = this.#tuned.opTimes(() => this.#timer.opTimes(this.#ctx.dag.size));
    const launches = (v: number) => this.#timer.launchesKernel(v);
    return await plannedStages(scheduler, { ...this.#ctx, opTimeUs }, this.#tuned, launches);
  }

  /**
   * Times share `part` of `parts` of auto's candidate schedules (every parts-th, from the part-th)
   * into the tuning cache, as auto's own first timing of each would; returns how many. The op
   * times and stage costs come from the cache (measured by plan() and measure() first). None on
   * the CPU backend, where auto does not time candidates.
   */
  trials(part: number, parts: number): number {
    const { backend, ctx } = this.#resources;
    if (backend.kind === "cpu") return 0;
    const launches = (v: number) => this.#timer.launchesKernel(v);
    const schedulingCtx = {
      ...this.#ctx,
      opTimeUs: this.#tuned.opTimes(() => this.#timer.opTimes(this.#ctx.dag.size)),
      measureStage: (groups: number[][]) =>
        this.#tuned.stage(groups, () => this.#timer.measure(groups), launches),
    };
    const mine = autoCandidates(schedulingCtx).filter((_, i) => i % parts === part);
    for (const schedule of mine) {
      this.#tuned.trial(schedule, () =>
        timeSchedule(
          backend,
          ctx,
          this.graph,
          this.#shapes,
          schedule,
          this.options,
          this.#weights,
        ));
    }
    return mine.length;
  }

  /** Ops and stages measured so far. */
  get measured(): number {
    return this.#timer.measured;
  }

  /** Measures planned stages (those not cached meanwhile) into the tuning cache, pipelined. */
  measure(stages: PlannedStage[]): void {
    measureStages(stages, this.#tuned, this.#timer);
  }

  release(): void {
    this.#timer.release();
    this.#resources.release();
  }
}
