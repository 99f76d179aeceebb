/**
 * Stages listed before they are measured. Which stages IOS asks to have timed does not depend on
 * their times: the DP costs every ending it enumerates, and the enumeration depends on the DAG,
 * the pruning knobs and the ops' times alone (large endings are packed into groups by op time).
 * So running the scheduler once with the cost model standing in for every missing stage lists
 * exactly the stages its real run will ask for. They can then be measured in one pipelined batch
 * (StageTimer.measureMany), or spread over the workers of a tuning pool, and the real run finds
 * them all in the tuning cache.
 */
import { simulateStage } from "../analysis/device_model.ts";
import { makeSchedule, type ScheduleContext, type SchedulerName } from "../schedule/mod.ts";
import type { StageTimer } from "./stage_timer.ts";
import type { BudgetTuning } from "./tuning.ts";

/** A stage to measure: its tuning-cache key, its groups of node indices, and a floor of its time. */
export interface PlannedStage {
  key: string;
  groups: number[][];
  /** Its longest group's measured op times summed, µs (no stage runs faster): how many replays
   * one timed round needs (StageTimer.measureMany). */
  floorUs?: number;
}

/** The longest group's op times summed, µs: a floor of the stage's time. */
export function stageFloorUs(groups: number[][], opTimeUs: number[]): number {
  return Math.max(0, ...groups.map((g) => g.reduce((sum, v) => sum + (opTimeUs[v] ?? 0), 0)));
}

/**
 * The stages `scheduler` will ask to time on `ctx` (which holds the measured op times) that the
 * cache lacks, each once. Whole schedules are not timed here (auto's candidates get the cost
 * model's latency).
 */
export async function plannedStages(
  scheduler: SchedulerName,
  ctx: ScheduleContext,
  tuned: BudgetTuning,
  launchesKernel: (node: number) => boolean,
): Promise<PlannedStage[]> {
  const wanted = new Map<string, number[][]>();
  await makeSchedule(scheduler, {
    ...ctx,
    measure: undefined,
    measureStage: (groups) => {
      const key = tuned.stageKey(groups, launchesKernel);
      const cached = tuned.cache.getStage(key);
      if (cached !== undefined) return cached;
      if (!wanted.has(key)) wanted.set(key, groups);
      return simulateStage(groups, ctx.costs, ctx.device);
    },
  });
  const opTimeUs = ctx.opTimeUs;
  return [...wanted].map(([key, groups]) => ({
    key,
    groups,
    floorUs: opTimeUs ? stageFloorUs(groups, opTimeUs) : undefined,
  }));
}

/** Measures, in one pipelined batch, the planned stages the cache still lacks, and stores them. */
export function measureStages(
  stages: PlannedStage[],
  tuned: BudgetTuning,
  timer: StageTimer,
): void {
  const missing = stages.filter(({ key }) => tuned.cache.getStage(key) === undefined);
  const times = timer.measureMany(missing.map((s) => s.groups), missing.map((s) => s.floorUs));
  missing.forEach(({ key }, i) => tuned.stageAt(key, () => times[i]));
}
