/**
 * A graph variant's stages measured ahead of its session's tuning, on any context with the same SM
 * budget (braid tune's pool): its op times first, then the stages its scheduler will ask for
 * (stage_plan.ts), measured in batches into the tuning cache; and auto's candidate schedules that
 * need no stage times, timed into the cache too.
 */
import type { Backend, Handle } from "../../ffi/backend.ts";
import type { Graph } from "../ir/graph.ts";
import { inferShapes } from "../ir/validate.ts";
import { type ScheduleContext, scheduleContext, type SchedulerName } from "../schedule/mod.ts";
import { autoCandidates } from "../schedule/auto.ts";
import type { Schedule } from "../schedule/schedule.ts";
import type { ExecutableOptions } from "./executable.ts";
import { Resources, Weights } from "./resources.ts";
import {
  budgetTuning,
  cachedTrials,
  deviceModelOf,
  prepare,
  type Prepared,
  timeSchedule,
} from "./prepare.ts";
import { measureStages, type PlannedStage, plannedStages } from "./stage_plan.ts";
import { StageTimer } from "./stage_timer.ts";
import type { BudgetTuning } from "./tuning.ts";

/** One graph variant on one context: its weights, a stage timer, and its tuning entries. */
export class StagePrefetch {
  readonly #resources: Resources;
  readonly #weights: Weights;
  readonly #timer: StageTimer;
  readonly #tuned: BudgetTuning;
  readonly #ctx: ScheduleContext;
  /** earlyCandidates(), built once: a worker runs several trials jobs of one variant. */
  #early: Schedule[] | undefined;

  constructor(
    backend: Backend,
    ctx: Handle,
    readonly graph: Graph,
    readonly batch: number,
    readonly options: ExecutableOptions,
  ) {
    const shapes = inferShapes(graph, batch);
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
    const launches = (v: number) => this.#timer.launchesKernel(v);
    const ctx = { ...this.#ctx, opTimeUs: this.#opTimeUs() };
    return await plannedStages(scheduler, ctx, this.#tuned, launches);
  }

  /** Each op's time alone, µs: from the tuning cache, else measured now (and cached). */
  #opTimeUs(): number[] {
    return this.#tuned.opTimes(() => this.#timer.opTimes(this.#ctx.dag.size));
  }

  /**
   * auto's candidates that need no stage times (autoCandidates without ios), as the session's
   * auto will build them: from the op times, which plan() measured (or the cache holds).
   */
  earlyCandidates(): Schedule[] {
    this.#early ??= autoCandidates({ ...this.#ctx, opTimeUs: this.#opTimeUs() }, {}, false);
    return this.#early;
  }

  /**
   * Times earlyCandidates() from `from` to `to` (not included) that the cache lacks, each as the
   * session's auto would (a captured graph's median replay), into the tuning cache; returns how
   * many it timed.
   */
  timeCandidates(from: number, to: number): number {
    const { backend, ctx } = this.#resources;
    const shapes = this.#ctx.shapes;
    let timed = 0;
    const time = cachedTrials(this.#tuned, (schedule) => {
      timed++;
      return timeSchedule(backend, ctx, this.graph, shapes, schedule, this.options, this.#weights);
    });
    for (const schedule of this.earlyCandidates().slice(from, to)) time(schedule);
    return timed;
  }

  /**
   * The variant prepared as a session prepares it (auto's choice made, and cached under the same
   * key), on this prefetch's weights and stage timer: nothing is set up again, and only what the
   * cache lacks is measured. The caller releases the result's resources (none of them this
   * prefetch's).
   */
  prepare(scheduler: SchedulerName, label: string): Promise<Prepared> {
    const { backend, ctx } = this.#resources;
    const reused = { weights: this.#weights, timer: this.#timer };
    return prepare(backend, ctx, this.graph, this.batch, scheduler, this.options, label, reused);
  }

  /** The variant's weights on the device (shared by every executable this prefetch makes). */
  get weights(): Weights {
    return this.#weights;
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
