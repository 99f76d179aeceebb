/**
 * One thread of bench/pool_contention.ts: a model's stages measured on one partition (or the
 * whole device), with every backend call's host time added up by call, as the tuning pool's
 * workers measure them. Messages: {type: "setup", ...} → its set-up's figures (op times measured
 * or found in the given cache, stages listed; the cache when none was given); {type: "go"} → the
 * measurement's figures.
 */
import { profiled } from "../ffi/call_profile.ts";
import { buildZooModel, Partition, TuningCache } from "../mod.ts";
import { optimize } from "../lib/passes/mod.ts";
import { graphVariants } from "../lib/runtime/prepare.ts";
import { executableOptions } from "../lib/runtime/session.ts";
import { openBackend } from "../ffi/backend.ts";
import { StagePrefetch } from "../lib/runtime/stage_prefetch.ts";
import type { PlannedStage } from "../lib/runtime/stage_plan.ts";

export interface Setup {
  type: "setup";
  model: string;
  device: "cuda" | "cpu";
  sms: number;
  group: number;
  stages: number;
  /** What "go" measures: the planned stages, or auto's first `trials` candidate schedules. */
  work: "stages" | "trials";
  trials: number;
  /** A primed tuning cache (JSON) to start from. */
  cache?: string;
}

export interface Figures {
  wallMs: number;
  /** Stages (or candidate schedules) measured. */
  stages: number;
  /** Host milliseconds spent in each backend call (op calls by op), summed. */
  callMs: Record<string, number>;
  /** The same for the set-up (its convolutions' tuning, when not primed). */
  setupCallMs: Record<string, number>;
  /** Convolutions tuned in the set-up. */
  convsTuned: number;
  /** The model set up on this thread: weights, executable, conv algorithms (from the cache when
   * primed), ms. */
  setupMs: number;
  /** Its first eager run and first stage graph, ms. */
  warmUpMs: number;
  /** This thread's cache (JSON), when it started from none. */
  cache?: string;
}

const scope = self as unknown as {
  onmessage: (e: MessageEvent<Setup | { type: "go" }>) => void;
  postMessage(message: unknown): void;
};

let prefetch: StagePrefetch;
let planned: PlannedStage[];
let setup: Setup;
const callMs: Record<string, number> = {};
const setupFigures = { setupMs: 0, warmUpMs: 0, setupCallMs: {}, convsTuned: 0 };

scope.onmessage = async (e) => {
  const message = e.data;
  if (message.type === "setup") {
    setup = message;
    const partition = message.sms > 0
      ? Partition.create({ sms: message.sms, group: message.group, device: message.device })
      : undefined;
    const native = partition ? partition.native.backend : openBackend(message.device);
    const backend = profiled(native, callMs);
    const ctx = backend.contextCreate(0);
    if (partition) backend.contextSetPartition(ctx, partition.native.handle);
    const graph = graphVariants(optimize(buildZooModel(message.model)), false, true)[0];
    const tuning = message.cache ? TuningCache.fromJSON(message.cache) : new TuningCache();
    const options = executableOptions(backend.deviceInfo(ctx), { partition, tuning });
    // The set-up's calls alone (not the context's creation).
    for (const key of Object.keys(callMs)) delete callMs[key];
    let start = performance.now();
    prefetch = new StagePrefetch(backend, ctx, graph, 1, options);
    setupFigures.setupMs = performance.now() - start;
    setupFigures.setupCallMs = { ...callMs };
    setupFigures.convsTuned = options.convTuning.measured.size;
    // The first stage graph runs the model once eagerly first (the executable's warm-up).
    start = performance.now();
    prefetch.measure([{ key: `pool_contention warm-up ${crypto.randomUUID()}`, groups: [[]] }]);
    setupFigures.warmUpMs = performance.now() - start;
    planned = (await prefetch.plan()).slice(0, message.stages);
    const figures: Figures = {
      wallMs: 0,
      stages: 0,
      callMs: {},
      ...setupFigures,
      cache: message.cache ? undefined : JSON.stringify(tuning.toJSON()),
    };
    scope.postMessage(figures);
    return;
  }
  for (const key of Object.keys(callMs)) delete callMs[key];
  const start = performance.now();
  const stages = setup.work === "trials"
    ? prefetch.timeCandidates(0, setup.trials)
    : (prefetch.measure(planned), planned.length);
  const figures: Figures = {
    wallMs: performance.now() - start,
    stages,
    callMs,
    ...setupFigures,
  };
  scope.postMessage(figures);
};
