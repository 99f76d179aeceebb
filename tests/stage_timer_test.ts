/**
 * The stage timer on the CPU backend: a pipelined batch measures every stage once, in order,
 * and a stage that cannot be captured fails alone, leaving the timer (and its context) usable;
 * a stage's rounds have as many replays as its floor time asks for; a replay failing mid-batch
 * frees every stage graph in flight; composed stage graphs capture each op once.
 */
import { assert } from "./deps.ts";
import { Backend } from "../ffi/backend.ts";
import { inceptionNet, throwsCode, withEnv } from "./helpers.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { optimize } from "../lib/passes/mod.ts";
import { Resources, Weights } from "../lib/runtime/resources.ts";
import { executableOptions } from "../lib/runtime/session.ts";
import { stageFloorUs } from "../lib/runtime/stage_plan.ts";
import {
  stageBatchFromEnv,
  stageGraphsFromEnv,
  StageTimer,
  type StageTimerOptions,
  stageWarmupsFromEnv,
} from "../lib/runtime/stage_timer.ts";
import { TuningCache } from "../lib/runtime/tuning.ts";
import { scheduleContext } from "../lib/schedule/mod.ts";

/**
 * A timer on inception's graph on the CPU backend, with `launches` counting graph replays and
 * `calls` every backend call by name; the replay numbered `failAt` (from 1) throws.
 */
function countingTimer(options: StageTimerOptions) {
  const native = Backend.open("cpu");
  const counts = { launches: 0, calls: new Map<string, number>(), failAt: -1 };
  const backend = new Proxy(native, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (prop === "graphLaunch" && ++counts.launches === counts.failAt) {
          throw new Error("a replay failed");
        }
        counts.calls.set(String(prop), (counts.calls.get(String(prop)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  const ctx = backend.contextCreate(0);
  const resources = new Resources(backend, ctx, false);
  const graph = optimize(inceptionNet());
  const shapes = inferShapes(graph, 1);
  const { dag } = scheduleContext(graph, shapes);
  const execOptions = executableOptions(backend.deviceInfo(ctx), { tuning: new TuningCache() });
  const weights = new Weights(backend, resources, graph);
  const timer = new StageTimer(backend, ctx, graph, shapes, dag, execOptions, weights, options);
  const close = () => {
    timer.release();
    resources.release();
    backend.contextDestroy(ctx);
  };
  return { backend, ctx, timer, counts, dag, graph, close };
}

Deno.test("measureMany: a pipelined batch times each stage once; a bad stage fails alone", async () => {
  const { backend, ctx, timer, dag, close } = countingTimer({ replays: 2, rounds: 3, warmup: 1 });
  try {
    const kernels = timer.kernelNodes(dag.size);
    const sources = kernels.filter((v) => dag.preds[v].length === 0);
    const stages = [[[]], [[kernels[0]]], [[kernels[0]], [kernels[1]]], [sources]];
    const times = timer.measureMany(stages);
    assert.equal(times.length, stages.length);
    assert.ok(times.every((us) => Number.isFinite(us) && us >= 0), `${times}`);
    assert.equal(timer.measured, stages.length);
    assert.ok(timer.measure([[kernels[0]]]) >= 0, "one stage alone");
    assert.equal(timer.measured, stages.length + 1);
    // Node 10000 launches nothing: the batch stops there; the stage in flight is waited for and
    // freed, not counted.
    await throwsCode(() => timer.measureMany([[[kernels[0]]], [[10000]]]), "BAD_NODE");
    assert.equal(timer.measured, stages.length + 1);
    assert.equal(
      timer.measureMany([[[kernels[1]]]]).length,
      1,
      "the context is not left capturing",
    );
    await throwsCode(
      () => backend.eventSynchronize(ctx, 0x1234n),
      "NATIVE_INVALID_HANDLE",
      /braid_event_synchronize/,
    );
    // Waiting on an event is refused during a capture (on CUDA it would invalidate the capture).
    const event = backend.eventCreate(ctx);
    backend.captureBegin(ctx, 0n);
    await throwsCode(() => backend.eventSynchronize(ctx, event), "NATIVE_CAPTURE", /capturing/);
    backend.graphDestroy(ctx, backend.captureEnd(ctx, 0n));
    backend.eventDestroy(ctx, event);
    const ops = timer.opTimes(dag.size);
    assert.equal(ops.length, dag.size);
    assert.ok(
      kernels.every((v) => ops[v] >= 0.5) && ops.every((us, v) => kernels.includes(v) || us === 0),
    );
  } finally {
    close();
  }
});

Deno.test("a stage's rounds last roundUs by its floor time, between minReplays and replays", () => {
  const { timer, counts, dag, close } = countingTimer({
    replays: 5,
    minReplays: 2,
    roundUs: 100,
    rounds: 3,
    warmup: 1,
  });
  try {
    assert.equal(timer.replaysFor(undefined), 5, "no floor: the most");
    assert.equal(timer.replaysFor(0), 5);
    assert.equal(timer.replaysFor(10), 5, "a short stage: the most");
    assert.equal(timer.replaysFor(30), 4);
    assert.equal(timer.replaysFor(40), 3);
    assert.equal(timer.replaysFor(60), 2);
    assert.equal(timer.replaysFor(500), 2, "a long stage: the fewest");
    const kernels = timer.kernelNodes(dag.size);
    const stages = [[[kernels[0]]], [[kernels[1]], [kernels[2]]]];
    // 1 warm-up + 3 rounds of the stage's replays: 5 for the first (no floor), 2 for the second.
    const times = timer.measureMany(stages, [undefined, 250]);
    assert.equal(counts.launches, 1 + 3 * 5 + 1 + 3 * 2);
    assert.ok(times.every((us) => Number.isFinite(us) && us >= 0), `${times}`);
  } finally {
    close();
  }
});

Deno.test("a stage that fills a round alone is warmed up once at most and replayed once a round", () => {
  const { timer, counts, dag, close } = countingTimer({ warmup: 2 });
  try {
    assert.equal(timer.replaysFor(500), 1);
    assert.equal(timer.replaysFor(60), 2);
    assert.deepEqual([timer.warmupFor(500), timer.warmupFor(60), timer.warmupFor(undefined)], [
      1,
      2,
      2,
    ]);
    const kernel = timer.kernelNodes(dag.size)[0];
    timer.measureMany([[[kernel]]], [500]);
    assert.equal(counts.launches, 1 + 3 * 1);
  } finally {
    close();
  }
  const byDefault = countingTimer({});
  try {
    assert.deepEqual([byDefault.timer.warmupFor(500), byDefault.timer.warmupFor(60)], [0, 0]);
  } finally {
    byDefault.close();
  }
});

Deno.test("a stage's floor is its longest group's op times summed", () => {
  const us = [10, 20, 30, 40];
  assert.equal(stageFloorUs([[0, 1], [2]], us), 30);
  assert.equal(stageFloorUs([[0], [1, 2, 3]], us), 90);
  assert.equal(stageFloorUs([[]], us), 0);
});

Deno.test("a replay failing mid-batch frees the stages in flight and reports its error", () => {
  const { timer, counts, dag, close } = countingTimer({ replays: 2, rounds: 3, warmup: 1 });
  let closed = false;
  try {
    const kernels = timer.kernelNodes(dag.size);
    // Stage 0 replays 1 + 3 × 2 = 7 times; the first replay of stage 1 fails.
    counts.failAt = counts.launches + 8;
    assert.throws(() => timer.measureMany([[[kernels[0]]], [[kernels[1]]]]), /a replay failed/);
    counts.failAt = -1;
    assert.equal(timer.measureMany([[[kernels[0]]]]).length, 1, "the timer goes on");
    // Destroying the context refuses while any graph of it is left.
    close();
    closed = true;
  } finally {
    if (!closed) close();
  }
});

Deno.test("composed stage graphs capture each op once; captured ones capture every stage", () => {
  // conv a in groups 0 and 1, pool b in groups 1 and 0, conv c in group 0 only.
  const stagesOf = ([a, b, c]: number[]) => [
    [[]],
    [[a]],
    [[a], [b]],
    [[b, c], [a]],
    [[c]],
  ];
  for (const graphs of ["capture", "compose"] as const) {
    const { timer, counts, dag, graph, close } = countingTimer({
      replays: 2,
      rounds: 3,
      warmup: 1,
      graphs,
    });
    try {
      const kernels = timer.kernelNodes(dag.size);
      const convs = kernels.filter((v) => graph.nodes[v].op === "Conv2d");
      const pool = kernels.find((v) => graph.nodes[v].op === "MaxPool2d")!;
      const stages = stagesOf([convs[0], pool, convs[1]]);
      const times = timer.measureMany(stages);
      assert.ok(times.every((us) => Number.isFinite(us) && us >= 0), `${graphs}: ${times}`);
      assert.equal(counts.launches, stages.length * (1 + 3 * 2));
      const captured = counts.calls.get("captureEnd") ?? 0;
      const templates = counts.calls.get("captureEndTemplate") ?? 0;
      if (graphs === "capture") {
        assert.deepEqual([captured, templates], [stages.length, 0]);
      } else {
        // A convolution takes scratch (a workspace, or its stream's): one template for each
        // group it runs in, as the chains run at once; the pool, one template. None more when
        // the stages are measured again.
        assert.equal(captured, 0);
        assert.equal(templates, 4);
        timer.measureMany(stages);
        assert.equal(counts.calls.get("captureEndTemplate"), 4);
        assert.equal(counts.calls.get("graphCompose"), 2 * stages.length);
      }
    } finally {
      close();
    }
  }
});

Deno.test("BRAID_STAGE_WARMUPS: the untimed replays before a stage's rounds (none unless set)", async () => {
  const launchesOf = async (warmups: string | undefined) => {
    let launches = 0;
    await withEnv({ BRAID_STAGE_WARMUPS: warmups }, () => {
      const { timer, counts, dag, close } = countingTimer({ replays: 2 });
      try {
        const kernel = timer.kernelNodes(dag.size)[0];
        timer.measureMany([[[kernel]]], [60]); // two replays a round, three rounds
        launches = counts.launches;
      } finally {
        close();
      }
    });
    return launches;
  };
  const launches = [];
  for (const warmups of [undefined, "2", "1", "0"]) launches.push(await launchesOf(warmups));
  assert.deepEqual(launches, [0 + 6, 2 + 6, 1 + 6, 0 + 6]);
  assert.equal(Deno.env.get("BRAID_STAGE_WARMUPS"), undefined, "put back");
  await withEnv(
    { BRAID_STAGE_WARMUPS: "3" },
    () => throwsCode(() => stageWarmupsFromEnv(), "BAD_OPTION", /BRAID_STAGE_WARMUPS is "3"/),
  );
});

Deno.test("BRAID_STAGE_GRAPHS picks how stage graphs are made", async () => {
  await withEnv(
    { BRAID_STAGE_GRAPHS: undefined },
    () => assert.equal(stageGraphsFromEnv(), "capture"),
  );
  await withEnv(
    { BRAID_STAGE_GRAPHS: "compose" },
    () => assert.equal(stageGraphsFromEnv(), "compose"),
  );
  await withEnv(
    { BRAID_STAGE_GRAPHS: "splice" },
    () => throwsCode(() => stageGraphsFromEnv(), "BAD_OPTION", /BRAID_STAGE_GRAPHS is "splice"/),
  );
});

Deno.test("batched: stages captured together, each timed between timing records, in order", () => {
  const { timer, counts, dag, close } = countingTimer({ batch: 3, batchRounds: 4, warmup: 1 });
  try {
    const kernels = timer.kernelNodes(dag.size);
    // Seven stages: batches of 3, 3 and 1, each captured once and launched 1 + 4 times.
    const stages = kernels.slice(0, 7).map((v) => [[v]]);
    stages[1] = [[kernels[1]], [kernels[2]]];
    const captures = counts.calls.get("captureBegin") ?? 0;
    const launches = counts.launches;
    const times = timer.measureMany(stages);
    assert.equal(times.length, stages.length);
    assert.ok(times.every((us) => Number.isFinite(us) && us >= 0), `${times}`);
    assert.equal(timer.measured, stages.length);
    assert.equal((counts.calls.get("captureBegin") ?? 0) - captures, 3, "one capture a batch");
    assert.equal(counts.launches - launches, 3 * (1 + 4), "warm-up and rounds, per batch");
    assert.equal(
      counts.calls.get("eventRecordTiming"),
      3 + 1 + (3 + 1) + (1 + 1),
      "a timing record before each stage and after each batch's last",
    );
    // A stage's time is its own: a heavy stage against the empty one, in the same batch.
    const heavy = [kernels.slice(0, 12)];
    const [empty, full] = timer.measureMany([[[]], heavy]);
    assert.ok(full > empty, `a stage of 12 ops ${full} µs against an empty one ${empty} µs`);
  } finally {
    close();
  }
});

Deno.test("batched: stages that fill a round alone are batched apart and timed in `rounds` rounds", () => {
  const { timer, counts, dag, close } = countingTimer({
    batch: 3,
    batchRounds: 5,
    rounds: 3,
    roundUs: 100,
    warmup: 0,
  });
  try {
    const kernels = timer.kernelNodes(dag.size);
    const stages = kernels.slice(0, 5).map((v) => [[v]]);
    // Stages 1 and 3 fill a round (floors ≥ 100 µs): one batch of two, 3 rounds; stages 0, 2
    // and 4 one batch of three, 5 rounds.
    const captures = counts.calls.get("captureBegin") ?? 0;
    const launches = counts.launches;
    const times = timer.measureMany(stages, [undefined, 250, 10, 100, undefined]);
    assert.equal((counts.calls.get("captureBegin") ?? 0) - captures, 2);
    assert.equal(counts.launches - launches, 5 + 3);
    assert.equal(times.length, 5);
    assert.ok(times.every((us) => Number.isFinite(us) && us >= 0), `${times}`);
    // Each time goes back to its own stage: a heavy long stage before an empty short one.
    const heavy = [kernels.slice(0, 12)];
    const [full, empty] = timer.measureMany([heavy, [[]]], [500, undefined]);
    assert.ok(full > empty, `a stage of 12 ops ${full} µs against an empty one ${empty} µs`);
  } finally {
    close();
  }
});

Deno.test("batched: a replay failing frees the batches in flight; the timer goes on", async () => {
  const { timer, counts, dag, close } = countingTimer({ batch: 2, batchRounds: 3, warmup: 0 });
  let closed = false;
  try {
    const kernels = timer.kernelNodes(dag.size);
    const stages = kernels.slice(0, 5).map((v) => [[v]]);
    counts.failAt = counts.launches + 4; // the second batch's second round
    assert.throws(() => timer.measureMany(stages), /a replay failed/);
    counts.failAt = -1;
    await throwsCode(() => timer.measureMany([[[kernels[0]]], [[10000]]]), "BAD_NODE");
    assert.equal(timer.measureMany(stages.slice(0, 3)).length, 3, "the timer goes on");
    close(); // refuses while any graph of the context is left
    closed = true;
  } finally {
    if (!closed) close();
  }
});

Deno.test("a timing record in a capture records each time the graph runs", async () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  try {
    const [before, after] = [backend.eventCreate(ctx), backend.eventCreate(ctx)];
    // Outside a capture it records at once, like eventRecord.
    backend.eventRecordTiming(ctx, before, 0n);
    backend.eventRecordTiming(ctx, after, 0n);
    assert.ok(backend.eventElapsed(ctx, before, after) >= 0);
    const buffer = backend.bufferAlloc(ctx, 4 << 20);
    backend.captureBegin(ctx, 0n);
    backend.eventRecordTiming(ctx, before, 0n);
    for (let i = 0; i < 20; i++) backend.memcpyD2D(ctx, 0n, buffer, buffer + (2n << 20n), 2 << 20);
    backend.eventRecordTiming(ctx, after, 0n);
    const graph = backend.captureEnd(ctx, 0n);
    const t0 = performance.now();
    backend.graphLaunch(ctx, graph, 0n);
    const hostMs = performance.now() - t0;
    const ms = backend.eventElapsed(ctx, before, after);
    assert.ok(ms > 0 && ms <= hostMs + 0.01, `${ms} ms inside a replay of ${hostMs} ms`);
    backend.graphDestroy(ctx, graph);
    await throwsCode(
      () => backend.eventRecordTiming(ctx, 0x1234n, 0n),
      "NATIVE_INVALID_HANDLE",
      /braid_event_record_timing/,
    );
    for (const e of [before, after]) backend.eventDestroy(ctx, e);
    backend.bufferFree(ctx, buffer);
  } finally {
    backend.contextDestroy(ctx);
  }
});

Deno.test("BRAID_STAGE_BATCH: stages timed together (none unless set)", async () => {
  await withEnv({ BRAID_STAGE_BATCH: undefined }, () => assert.equal(stageBatchFromEnv(), 0));
  await withEnv({ BRAID_STAGE_BATCH: "16" }, () => assert.equal(stageBatchFromEnv(), 16));
  await withEnv(
    { BRAID_STAGE_BATCH: "12" },
    () => throwsCode(() => stageBatchFromEnv(), "BAD_OPTION", /BRAID_STAGE_BATCH is "12"/),
  );
});
