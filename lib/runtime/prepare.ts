/**
 * Preparing one graph variant for a session: its weights uploaded and its schedule chosen. On a
 * GPU that is where tuning happens: op times and IOS stage costs measured (or read from the tuning
 * cache under the session's SM budget), and every candidate auto builds captured and timed.
 */
import type { Backend, DeviceInfo } from "../../ffi/backend.ts";
import { criticalPath, type Dag } from "../analysis/dag.ts";
import { CPU, type DeviceModel, H200 } from "../analysis/device_model.ts";
import type { Graph, Value } from "../ir/graph.ts";
import { inferShapes } from "../ir/validate.ts";
import { planMemory } from "../memory/planner.ts";
import { mergeCandidates, mergeSiblingConvs } from "../passes/mod.ts";
import { makeSchedule, scheduleContext, type SchedulerName } from "../schedule/mod.ts";
import { type Schedule, verify } from "../schedule/schedule.ts";
import { sequentialSchedule } from "../schedule/sequential.ts";
import { Executable, type ExecutableOptions } from "./executable.ts";
import { Resources, Weights } from "./resources.ts";
import { replayStats, roundStats } from "./profiler.ts";
import { envChoice } from "../platform.ts";
import { measureStages, plannedStages } from "./stage_plan.ts";
import { StageTimer } from "./stage_timer.ts";
import { BudgetTuning } from "./tuning.ts";

/** One schedule measured by auto: its name, streams and median replay time. */
export interface Trial {
  scheduler: string;
  streams: number;
  ms: number;
}

/** A graph variant made ready to run: weights uploaded, schedule chosen (and measured). */
export interface Prepared {
  graph: Graph;
  shapes: Map<string, Value>;
  dag: Dag;
  schedule: Schedule;
  weights: Weights;
  /** Resources holding the weights (adopted by the session if this variant wins). */
  resources: Resources;
  trials: Trial[];
  /** Time spent timing them, ms. */
  trialsMs: number;
  /** How many of them were timed here (the rest were found in the tuning cache). */
  trialsTimed: number;
  /** The chosen schedule's measured replay time (0 when nothing was measured). */
  ms: number;
  stages: StageStats;
}

/**
 * What a caller already holds for this graph on this context (a tuning pool's prefetch of the
 * variant): its weights, and a stage timer over them. prepare() uses them instead of making its
 * own, and leaves them to the caller.
 */
export interface Reused {
  weights: Weights;
  timer: StageTimer;
}

export async function prepare(
  backend: Backend,
  ctx: bigint,
  graph: Graph,
  batch: number,
  scheduler: SchedulerName,
  options: ExecutableOptions,
  label: string,
  reused?: Reused,
): Promise<Prepared> {
  const shapes = inferShapes(graph, batch);
  const resources = new Resources(backend, ctx, false);
  try {
    const weights = reused?.weights ?? new Weights(backend, resources, graph);
    const tuned = budgetTuning(options, graph, shapes);
    const trials: Trial[] = [];
    let trialsMs = 0, trialsTimed = 0;
    const time = cachedTrials(tuned, (schedule) => {
      trialsTimed++;
      return timeSchedule(backend, ctx, graph, shapes, schedule, options, weights);
    });
    const measure = (schedule: Schedule) => {
      const started = performance.now();
      const ms = time(schedule);
      trialsMs += performance.now() - started;
      trials.push({ scheduler: label + schedule.scheduler, streams: schedule.streams, ms });
      return ms;
    };
    const scheduleCtx = scheduleContext(
      graph,
      shapes,
      deviceModelOf(options.device, options.smBudget),
      { measure },
    );
    // What was tuned for this graph under this SM budget: auto's choice ends the search at once.
    const tunes = backend.kind === "cuda" && scheduler === "auto";
    const cached = tunes ? tuned.schedule(label + "auto") : undefined;
    if (cached) {
      const stages = { measured: 0, ms: 0, opSumUs: 0, criticalPathUs: 0 };
      const { dag } = scheduleCtx;
      return {
        graph,
        shapes,
        dag,
        weights,
        resources,
        stages,
        trialsMs: 0,
        trialsTimed: 0,
        ...cached,
      };
    }
    // On a GPU, opara orders by measured op times and ios measures its stages (auto runs both).
    const timer = backend.kind === "cuda" && scheduler !== "sequential" && scheduler !== "nimble"
      ? reused?.timer ??
        new StageTimer(backend, ctx, graph, shapes, scheduleCtx.dag, options, weights)
      : undefined;
    // A reused timer has measured before: only what it measures here counts.
    const [measuredBefore, spentBefore] = [timer?.measured ?? 0, timer?.spentMs ?? 0];
    let schedule: Schedule;
    const stages = { measured: 0, ms: 0, opSumUs: 0, criticalPathUs: 0 };
    try {
      if (timer) {
        const { dag } = scheduleCtx;
        scheduleCtx.opTimeUs = tuned.opTimes(() => timer.opTimes(dag.size));
        stages.opSumUs = scheduleCtx.opTimeUs.reduce((a, b) => a + b, 0);
        stages.criticalPathUs = criticalPath(dag, (v) => scheduleCtx.opTimeUs![v]).length;
        // The stages the scheduler will ask for, measured first in one pipelined batch; the
        // scheduler then finds them cached. A reused timer's (a tuning pool's choose) were
        // measured ahead by the pool's stage jobs: listing them would run the scheduler once more
        // for nothing, and the few left are measured as the scheduler asks.
        const launches = (v: number) => timer.launchesKernel(v);
        if (timer !== reused?.timer) {
          measureStages(await plannedStages(scheduler, scheduleCtx, tuned, launches), tuned, timer);
        }
        scheduleCtx.measureStage = (groups) =>
          tuned.stage(groups, () => timer.measure(groups), launches);
      }
      // The CPU backend runs streams one after another: parallel schedules cannot win there.
      schedule = scheduler === "auto" && backend.kind === "cpu"
        ? { ...sequentialSchedule(scheduleCtx.dag), scheduler: "auto:sequential" }
        : await makeSchedule(scheduler, scheduleCtx);
    } finally {
      stages.measured = (timer?.measured ?? 0) - measuredBefore;
      stages.ms = (timer?.spentMs ?? 0) - spentBefore;
      if (timer !== reused?.timer) timer?.release();
    }
    const name = label + schedule.scheduler.replace(/^auto:/, "");
    const ms = trials.filter((t) => t.scheduler === name).at(-1)?.ms ?? 0;
    if (tunes) tuned.putSchedule(label + "auto", { schedule, ms, trials });
    return {
      graph,
      shapes,
      dag: scheduleCtx.dag,
      schedule,
      weights,
      resources,
      trials,
      trialsMs,
      trialsTimed,
      ms,
      stages,
    };
  } catch (e) {
    resources.release();
    throw e;
  }
}

/**
 * auto's measure of a candidate schedule: its first time from the tuning cache (where a tuning
 * pool may have timed it ahead), else measured and stored; a second asking for the same schedule
 * (auto's confirmation of its pick against sequential) is always measured now.
 */
export function cachedTrials(
  tuned: BudgetTuning,
  measure: (schedule: Schedule) => number,
): (schedule: Schedule) => number {
  const asked = new Set<string>();
  return (schedule) => {
    const key = tuned.trialKey(schedule);
    if (asked.has(key)) return measure(schedule);
    asked.add(key);
    return tuned.trialAt(key, () => measure(schedule));
  };
}

/** Ops and IOS stages timed on the device as captured graphs while scheduling. */
export interface StageStats {
  measured: number;
  /** Host time spent measuring them. */
  ms: number;
  /** Sum of the ops' measured times alone, and the longest path through them (µs; 0 if unmeasured). */
  opSumUs: number;
  criticalPathUs: number;
}

/** The tuning-cache entries of a graph under the options' device, SM budget and precision. */
export function budgetTuning(
  options: ExecutableOptions,
  graph: Graph,
  shapes: Map<string, Value>,
): BudgetTuning {
  return new BudgetTuning(
    options.tuning,
    options.device,
    options.smBudget,
    graph,
    shapes,
    // Stage and op times depend on the memory layout too: in-place concats take no time.
    [options.precision, options.concatInPlace],
  );
}

/**
 * The graph variants a session prepares: the graph, or its merged-convolution form (merge true),
 * or both when merge is "auto" and auto measures on a GPU (the faster is kept).
 */
export function graphVariants(graph: Graph, merge: boolean | "auto", measuring: boolean): Graph[] {
  const variants = merge === true ? [mergeSiblingConvs(graph)] : [graph];
  if (merge === "auto" && measuring && mergeCandidates(graph).length > 0) {
    variants.push(mergeSiblingConvs(graph));
  }
  return variants;
}

/** The analytic model of the device a session runs on (for the cost-model schedulers). */
export function deviceModelOf(info: DeviceInfo, smBudget: number): DeviceModel {
  const base = info.backend === "cuda" ? H200 : CPU;
  return { ...base, name: info.name, sms: smBudget || info.multiprocessors || base.sms };
}

/**
 * How auto's trials replay a candidate's graph: each replay alone (the host waits for it), or
 * back to back in rounds (roundStats). BRAID_TRIAL_TIMING, else rounds.
 */
export type TrialTiming = "isolated" | "rounds";

export function trialTimingFromEnv(): TrialTiming {
  return envChoice("BRAID_TRIAL_TIMING", ["rounds", "isolated"]);
}

/**
 * Median time of one replay of `schedule`, captured as a graph on the session's context (a trial
 * executable with its own arena and streams, sharing the uploaded weights), then freed. `warmup`
 * and `runs` are the isolated replays' (trialTimingFromEnv); rounds size themselves.
 */
export function timeSchedule(
  backend: Backend,
  ctx: bigint,
  graph: Graph,
  shapes: Map<string, Value>,
  schedule: Schedule,
  options: ExecutableOptions,
  weights: Weights,
  { warmup = 5, runs = 30 } = {},
): number {
  const plan = planMemory(graph, shapes, schedule, { concatInPlace: options.concatInPlace });
  verify(graph, schedule, plan);
  const trial = new Resources(backend, ctx, false);
  try {
    const exec = new Executable(backend, trial, graph, shapes, schedule, plan, options, weights);
    const graphHandle = exec.capture();
    return trialTimingFromEnv() === "rounds"
      ? roundStats(backend, ctx, graphHandle).medianMs
      : replayStats(backend, ctx, graphHandle, { warmup, runs }).medianMs;
  } finally {
    trial.release();
  }
}
