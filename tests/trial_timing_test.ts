/**
 * How auto's trials time a candidate: roundStats' rounds of back-to-back replays (on a device
 * whose clock the test drives), the switches that pick the trial timing and the executables'
 * warm-up, and a trial timed each way on the CPU backend.
 */
import { assert } from "./deps.ts";
import { Backend, type Handle } from "../ffi/backend.ts";
import { cpuAsCuda, throwsCode, withEnv } from "./helpers.ts";
import { roundStats } from "../lib/runtime/profiler.ts";
import { timeSchedule, trialTimingFromEnv } from "../lib/runtime/prepare.ts";
import { Executable, takeWarmUpMs, warmUpFromEnv } from "../lib/runtime/executable.ts";
import { lowerNode } from "../lib/runtime/lower.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { planMemory } from "../lib/memory/planner.ts";
import { Resources, Weights } from "../lib/runtime/resources.ts";
import { executableOptions } from "../lib/runtime/session.ts";
import { TuningCache } from "../lib/runtime/tuning.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { sequentialSchedule } from "../lib/schedule/sequential.ts";
import { scheduleContext } from "../lib/schedule/mod.ts";
import { buildZooModel } from "../mod.ts";

/**
 * A device with one stream and a clock: a replay of the graph takes `replayMs[i]` (the last
 * repeating), an event records the clock when the stream reaches it; `log` lists the calls.
 */
function clockedDevice(replayMs: number[]) {
  let clock = 0, replays = 0;
  const stamps = new Map<Handle, number>();
  const log: string[] = [];
  let next = 1n;
  const device = {
    eventCreate: () => next++,
    eventDestroy: (_ctx: Handle, e: Handle) => void stamps.delete(e),
    eventRecord: (_ctx: Handle, e: Handle) => {
      log.push("record");
      stamps.set(e, clock);
    },
    graphLaunch: () => {
      log.push("launch");
      clock += replayMs[Math.min(replays++, replayMs.length - 1)];
    },
    eventSynchronize: () => void log.push("sync"),
    streamSynchronize: () => void log.push("sync"),
    eventElapsed: (_ctx: Handle, a: Handle, b: Handle) => stamps.get(b)! - stamps.get(a)!,
  };
  return { backend: device as unknown as Backend, log, live: () => stamps.size };
}

Deno.test("roundStats: rounds of back-to-back replays, as many as fill a round, host waiting once", () => {
  // A 0.3 ms graph whose first replay is slow: the two warm-up replays average 0.4 ms, so a 1 ms
  // round has three replays.
  const fast = clockedDevice([0.5, 0.3]);
  const stats = roundStats(fast.backend, 1n, 7n, { warmup: 2, rounds: 5, roundMs: 1 });
  assert.equal(stats.replays, 3);
  assert.equal(stats.runs, 5);
  assert.ok(Math.abs(stats.medianMs - 0.3) < 1e-9, `${stats.medianMs}`);
  const timed = fast.log.slice(fast.log.indexOf("sync") + 1);
  assert.deepEqual(
    timed,
    ["record", ...Array(5).fill(["launch", "launch", "launch", "record"]).flat(), "sync"],
    "no wait between the replays of the timed rounds",
  );
  assert.equal(fast.live(), 0, "every event destroyed");

  // A graph longer than a round: one replay a round.
  const slow = clockedDevice([2.5]);
  const long = roundStats(slow.backend, 1n, 7n, { rounds: 3, roundMs: 1 });
  assert.deepEqual([long.replays, long.runs, long.medianMs], [1, 3, 2.5]);
  // A very short one: at most maxReplays.
  const tiny = roundStats(clockedDevice([0.01]).backend, 1n, 7n, { maxReplays: 4 });
  assert.equal(tiny.replays, 4);
  // One too short for the device's clock to see: the most, too.
  const zero = roundStats(clockedDevice([0]).backend, 1n, 7n, { maxReplays: 4 });
  assert.deepEqual([zero.replays, zero.medianMs], [4, 0]);
});

Deno.test("roundStats: the median round counts, not a slow one", () => {
  // Warm-up 2 × 0.5 ms, then rounds of two replays; the third round's replays are slow.
  const device = clockedDevice([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 3, 3, 0.5, 0.5, 0.5]);
  const stats = roundStats(device.backend, 1n, 7n, { rounds: 5, roundMs: 1 });
  assert.equal(stats.replays, 2);
  assert.equal(stats.medianMs, 0.5);
  assert.equal(stats.p90Ms, 3);
});

Deno.test("BRAID_TRIAL_TIMING and BRAID_WARM_UP: defaults, values, and a clear error", async () => {
  const unset = { BRAID_TRIAL_TIMING: undefined, BRAID_WARM_UP: undefined };
  await withEnv(unset, () => {
    assert.equal(trialTimingFromEnv(), "rounds");
    assert.equal(warmUpFromEnv(), "once");
  });
  await withEnv({ BRAID_TRIAL_TIMING: "isolated", BRAID_WARM_UP: "each" }, () => {
    assert.equal(trialTimingFromEnv(), "isolated");
    assert.equal(warmUpFromEnv(), "each");
  });
  await withEnv({ BRAID_TRIAL_TIMING: "fast", BRAID_WARM_UP: "never" }, async () => {
    await throwsCode(() => trialTimingFromEnv(), "BAD_OPTION", /BRAID_TRIAL_TIMING is "fast"/);
    await throwsCode(() => warmUpFromEnv(), "BAD_OPTION", /BRAID_WARM_UP is "never"/);
  });
});

Deno.test("a trial times a schedule either way on the CPU backend, freeing what it made", async () => {
  const graph = buildZooModel("squeezenet1_1");
  const shapes = inferShapes(graph);
  // Each kind of native resource: made less freed, while the trials run.
  const live = new Map<string, number>();
  const pairs: Record<string, [string, number]> = {
    bufferAlloc: ["buffers", 1],
    bufferFree: ["buffers", -1],
    hostAlloc: ["host buffers", 1],
    hostFree: ["host buffers", -1],
    eventCreate: ["events", 1],
    eventDestroy: ["events", -1],
    streamCreate: ["streams", 1],
    streamDestroy: ["streams", -1],
    captureEnd: ["graphs", 1],
    graphDestroy: ["graphs", -1],
  };
  let counting = false;
  const native = Backend.open("cpu");
  const backend = new Proxy(native, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const pair = pairs[String(prop)];
        if (counting && pair) live.set(pair[0], (live.get(pair[0]) ?? 0) + pair[1]);
        return value.apply(target, args);
      };
    },
  });
  const resources = new Resources(backend, backend.contextCreate(0));
  try {
    const options = executableOptions(backend.deviceInfo(resources.ctx), {
      tuning: new TuningCache(),
    });
    const weights = new Weights(backend, resources, graph);
    const schedule = sequentialSchedule(scheduleContext(graph, shapes).dag);
    counting = true;
    for (const timing of ["isolated", "rounds"]) {
      await withEnv({ BRAID_TRIAL_TIMING: timing }, () => {
        const ms = timeSchedule(backend, resources.ctx, graph, shapes, schedule, options, weights, {
          warmup: 1,
          runs: 3,
        });
        assert.ok(ms > 0 && Number.isFinite(ms), `${timing}: ${ms} ms`);
      });
    }
    assert.ok(live.size >= 4, `every kind counted: ${[...live.keys()]}`);
    for (const [kind, count] of live) assert.equal(count, 0, `${kind} left: ${count}`);
  } finally {
    resources.release();
  }
});

/**
 * Executables of `graph` on the CPU backend under the name "cuda" (executables warm up only
 * there), counting the ops each one issues outside a capture: its warm-up's. `tuning` is the
 * cache their convolutions' algorithms come from (nothing measured: else the backend's heuristic).
 */
function warmUpCounter(graph: Graph) {
  const shapes = inferShapes(graph);
  let capturing = false, eager = 0;
  const native = Backend.open("cpu");
  const backend = cpuAsCuda(native, (call) => {
    if (call === "captureBegin") capturing = true;
    if (call === "captureEnd") capturing = false;
    if (call === "op" && !capturing) eager++;
  });
  const resources = new Resources(backend, backend.contextCreate(0));
  const tuning = new TuningCache();
  const options = {
    ...executableOptions(native.deviceInfo(resources.ctx), { tuning }),
    tune: false,
  };
  const schedule = sequentialSchedule(scheduleContext(graph, shapes).dag);
  const plan = planMemory(graph, shapes, schedule);
  return {
    resources,
    shapes,
    tuning,
    options,
    weights: () => new Weights(backend, resources, graph),
    /** Ops the warm-up of a new executable on `weights` ran. */
    eagerOps(weights: Weights): number {
      const before = eager;
      new Executable(backend, resources, graph, shapes, schedule, plan, options, weights).capture();
      return eager - before;
    },
  };
}

Deno.test("BRAID_WARM_UP=once: only the first executable of a graph's weights runs it eagerly", async () => {
  const b = new GraphBuilder("mlp", 3);
  b.output(b.linear(b.relu(b.linear(b.input("x", [1, 16]), "fc1", 32)), "fc2", 4));
  const { resources, weights: newWeights, eagerOps } = warmUpCounter(b.build());
  try {
    await withEnv({ BRAID_WARM_UP: "once" }, () => {
      const weights = newWeights();
      assert.equal(weights.warmed, false);
      takeWarmUpMs();
      assert.equal(eagerOps(weights), 3, "the first warms up: its three ops run eagerly");
      const spent = takeWarmUpMs();
      assert.ok(spent > 0, "its warm-up's time is counted");
      assert.ok(weights.warmed);
      assert.equal(eagerOps(weights), 0, "the second captures at once");
      assert.equal(takeWarmUpMs(), 0, "no warm-up, no time");
      assert.equal(eagerOps(newWeights()), 3, "other weights: again");
    });
    await withEnv({ BRAID_WARM_UP: undefined }, () => {
      const weights = newWeights();
      assert.deepEqual([eagerOps(weights), eagerOps(weights)], [3, 0], "once, by default");
    });
    await withEnv({ BRAID_WARM_UP: "each" }, () => {
      const weights = newWeights();
      assert.deepEqual([eagerOps(weights), eagerOps(weights)], [3, 3], "each");
    });
  } finally {
    resources.release();
  }
});

Deno.test("BRAID_WARM_UP=once: an executable whose convolution algorithms changed warms up again", async () => {
  const b = new GraphBuilder("convnet", 5);
  b.output(
    b.relu(b.conv2d(b.input("x", [1, 3, 8, 8]), { name: "conv", out: 4, kernel: 3, padding: 1 })),
  );
  const graph = b.build();
  const { resources, shapes, tuning, options, weights: newWeights, eagerOps } = warmUpCounter(
    graph,
  );
  try {
    const conv = graph.nodes.findIndex((n) => n.op === "Conv2d");
    await withEnv({ BRAID_WARM_UP: "once" }, () => {
      const weights = newWeights();
      const ops = eagerOps(weights);
      assert.ok(ops > 0, "the first warms up");
      assert.equal(eagerOps(weights), 0, "the same algorithms: no warm-up");
      // Another worker's choice arrives: the convolution runs algorithm 0 from now on.
      const lowered = lowerNode(graph.nodes[conv], shapes, options.precision);
      assert.equal(lowered.kind, "op");
      const { algorithm: _a, workspace_bytes: _w, ...signature } =
        (lowered as Extract<typeof lowered, { kind: "op" }>).values;
      const key = TuningCache.key(
        options.device,
        options.smBudget,
        "conv2d",
        JSON.stringify(signature),
      );
      tuning.set(key, { algorithm: 0, workspaceBytes: 0, ms: 0.01 });
      assert.equal(eagerOps(weights), ops, "a new algorithm: its plan built outside the capture");
      assert.equal(eagerOps(weights), 0, "and known from then on");
    });
  } finally {
    resources.release();
  }
});
