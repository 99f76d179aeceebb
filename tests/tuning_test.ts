/**
 * The tuning cache: keys, file round trip, bad files; the conv tuning entry point on CPU; and the
 * keying by SM budget of stage costs, op times and auto's schedule choices.
 */
import { assert } from "./deps.ts";
import { Backend, type DeviceInfo } from "../ffi/backend.ts";
import { encodeRecord } from "../ffi/params.ts";
import { BraidError } from "../lib/errors.ts";
import {
  BudgetTuning,
  graphSignature,
  scheduleStructure,
  stageStructure,
  TuningCache,
} from "../lib/runtime/tuning.ts";
import { cachedTrials } from "../lib/runtime/prepare.ts";
import { autoCandidates } from "../lib/schedule/auto.ts";
import type { Schedule } from "../lib/schedule/schedule.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { buildZooModel } from "../lib/models/index.ts";
import { mergeSiblingConvs, optimize } from "../lib/passes/mod.ts";
import { simulateStage } from "../lib/analysis/device_model.ts";
import { iosSchedule } from "../lib/schedule/ios.ts";
import { scheduleContext } from "../lib/schedule/mod.ts";
import { branchyNet } from "./helpers.ts";

const H200 = scheduleContext(branchyNet(), inferShapes(branchyNet(), 1)).device;

const h200: DeviceInfo = {
  name: "NVIDIA H200",
  backend: "cuda",
  multiprocessors: 132,
  totalMemory: 0,
  freeMemory: 0,
  computeCapability: 90,
  l2Bytes: 0,
  runtimeVersion: 13000,
  libraryVersion: 91400,
};

Deno.test("tuning keys separate devices, SM budgets and library versions", () => {
  const sig = JSON.stringify({ n: 1, c: 64 });
  const keys = new Set([
    TuningCache.key(h200, 132, "conv2d", sig),
    TuningCache.key(h200, 32, "conv2d", sig),
    TuningCache.key({ ...h200, name: "NVIDIA H100" }, 132, "conv2d", sig),
    TuningCache.key({ ...h200, libraryVersion: 91000 }, 132, "conv2d", sig),
    TuningCache.key(h200, 132, "conv2d", JSON.stringify({ n: 2, c: 64 })),
  ]);
  assert.equal(keys.size, 5);
});

Deno.test("a cache's entries since a mark: what a pool worker sends back after a job", () => {
  const cache = new TuningCache();
  cache.set("conv|a", { algorithm: 1, workspaceBytes: 0, ms: 0.1 });
  const mark = cache.mark();
  assert.equal(cache.since(mark).size, 0);
  cache.setStage("stage|x", 12);
  cache.setOpTimes("optimes|g", [1, 2]);
  cache.setStage("stage|x", 13); // set again: sent once, with its latest value
  const delta = cache.since(mark);
  assert.deepEqual(delta.keys().sort(), ["optimes|g", "stage|x"]);
  assert.equal(delta.getStage("stage|x"), 13);
  assert.deepEqual(cache.since(0).keys().sort(), ["conv|a", "optimes|g", "stage|x"]);
  // Merging a delta into another cache makes it that cache's news too (workers pass it on).
  const other = new TuningCache();
  const before = other.mark();
  other.merge(delta);
  assert.deepEqual(other.since(before).keys().sort(), ["optimes|g", "stage|x"]);
});

Deno.test("tuning cache round-trips through a file and rejects bad ones", async () => {
  const cache = new TuningCache();
  cache.set(TuningCache.key(h200, 16, "conv2d", "{}"), {
    algorithm: 6,
    workspaceBytes: 4096,
    ms: 0.01,
  });
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await cache.save(path);
  const back = await TuningCache.load(path);
  assert.deepEqual(back.toJSON(), cache.toJSON());
  assert.equal((await TuningCache.load(`${path}.missing`)).size, 0);
  await Deno.writeTextFile(path, "{not json");
  await assert.rejects(() => TuningCache.load(path), BraidError);
  await Deno.writeTextFile(
    path,
    JSON.stringify({ format: "braid-tuning/1", entries: { k: { algorithm: "x" } } }),
  );
  await assert.rejects(() => TuningCache.load(path), /bad entry "k"/);
  await Deno.remove(path);
});

Deno.test("candidate schedules' times are keyed by SM budget and launches, and round-trip", async () => {
  const graph = branchyNet();
  const shapes = inferShapes(graph, 1);
  const [sequential, ...multi] = autoCandidates(scheduleContext(graph, shapes));
  assert.ok(multi.length >= 2);
  const cache = new TuningCache();
  const at = (sms: number) => new BudgetTuning(cache, h200, sms, graph, shapes, "fp32");
  const [whole, part] = [at(132), at(32)];
  assert.notEqual(whole.trialKey(sequential), part.trialKey(sequential), "keyed by budget");
  assert.notEqual(whole.trialKey(sequential), whole.trialKey(multi[0]), "keyed by schedule");
  // The same launches under another name are the same trial; other priorities are not.
  assert.equal(
    whole.trialKey({ ...multi[0], scheduler: "renamed" }),
    whole.trialKey(multi[0]),
  );
  const ranked = { ...multi[0], priorities: multi[0].priorities?.map((p) => p + 1) ?? [1] };
  assert.notEqual(scheduleStructure(ranked), scheduleStructure(multi[0]));
  let timed = 0;
  assert.equal(whole.trialAt(whole.trialKey(sequential), () => (timed++, 0.5)), 0.5);
  assert.equal(whole.trialAt(whole.trialKey(sequential), () => (timed++, 9)), 0.5, "cached");
  assert.equal(part.trialAt(part.trialKey(sequential), () => (timed++, 0.9)), 0.9);
  assert.equal(timed, 2);
  assert.deepEqual(whole.counts, {
    stagesCached: 0,
    stagesMeasured: 0,
    trialsCached: 1,
    trialsMeasured: 1,
    scheduleCached: false,
  });
  assert.deepEqual([...cache.budgets()].sort((a, b) => a[0] - b[0]), [[32, 1], [132, 1]]);
  // What a pool worker sends back, and the file.
  assert.deepEqual(cache.since(0).toJSON(), cache.toJSON());
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await cache.save(path);
  assert.equal((await TuningCache.load(path)).getTrial(part.trialKey(sequential)), 0.9);
  const text = JSON.stringify({ format: "braid-tuning/2", entries: {}, trials: { t: -1 } });
  await Deno.writeTextFile(path, text);
  await assert.rejects(() => TuningCache.load(path), /bad entry "t"/);
  await Deno.remove(path);
});

Deno.test("auto's measure takes a candidate's first time from the cache, and confirms afresh", () => {
  const graph = branchyNet();
  const shapes = inferShapes(graph, 1);
  const [sequential, other] = autoCandidates(scheduleContext(graph, shapes));
  const tuned = new BudgetTuning(new TuningCache(), h200, 32, graph, shapes, "fp32");
  tuned.trialAt(tuned.trialKey(other), () => 0.25); // timed ahead, as by a pool's trials job
  const measured: string[] = [];
  const time = cachedTrials(tuned, (s: Schedule) => (measured.push(s.scheduler), 1));
  assert.equal(time(other), 0.25, "timed ahead: not measured again");
  assert.equal(time(sequential), 1);
  assert.equal(time(sequential), 1);
  assert.equal(time(other), 1, "the confirmation is measured now");
  assert.deepEqual(measured, [sequential.scheduler, sequential.scheduler, other.scheduler]);
  assert.equal(tuned.cache.getTrial(tuned.trialKey(other)), 0.25, "the first time stays");
});

Deno.test("braid_conv2d_tune on the CPU backend reports its one algorithm", () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  const buffers: bigint[] = [];
  try {
    const alloc = (n: number) => {
      const a = backend.bufferAlloc(ctx, n * 4);
      buffers.push(a);
      backend.memcpyH2D(ctx, 0n, a, new Float32Array(n).map(() => Math.random()));
      return a;
    };
    const params = encodeRecord("conv2d", {
      n: 1,
      c: 8,
      h: 10,
      w: 10,
      k: 4,
      oh: 10,
      ow: 10,
      kh: 3,
      kw: 3,
      stride_h: 1,
      stride_w: 1,
      pad_top: 1,
      pad_left: 1,
      dilation_h: 1,
      dilation_w: 1,
      groups: 1,
      activation: 0,
      act_min: 0,
      act_max: 0,
      algorithm: -1,
      workspace_bytes: 0,
      allow_tf32: 1,
    });
    const choice = backend.conv2dTune(ctx, 0n, params, [
      alloc(800),
      alloc(288),
      0n,
      0n,
      alloc(400),
      0n,
    ]);
    assert.equal(choice.algorithm, 0);
    assert.equal(choice.workspaceBytes, 0);
    assert.ok(choice.ms >= 0);
    assert.throws(
      () => backend.conv2dTune(ctx, 0n, params, [0n, 0n, 0n, 0n, 0n, 0n]),
      (e: unknown) => e instanceof BraidError && e.code === "NATIVE_INVALID_ARGUMENT",
    );
  } finally {
    for (const b of buffers) backend.bufferFree(ctx, b);
    backend.contextDestroy(ctx);
  }
});

Deno.test("tuning under a budget: stage costs, op times and auto's choice are keyed by SM budget", async () => {
  const g = branchyNet();
  const shapes = inferShapes(g, 1);
  const precision = { convTf32: true, matmulTf32: false };
  const cache = new TuningCache();
  let measured = 0;
  const measure = (us: number) => () => (measured++, us);
  const at = (sms: number) => new BudgetTuning(cache, h200, sms, g, shapes, precision);

  assert.equal(at(32).stage([[1], [2]], measure(40)), 40);
  assert.equal(at(32).stage([[1], [2]], measure(99)), 40, "a second session at 32 SMs reuses it");
  assert.equal(at(132).stage([[1], [2]], measure(25)), 25, "the whole GPU measures its own");
  assert.equal(measured, 2);
  const tuned = at(32);
  assert.equal(tuned.stage([[1], [2]], measure(0)), 40);
  assert.deepEqual(tuned.counts, {
    stagesCached: 1,
    stagesMeasured: 0,
    trialsCached: 0,
    trialsMeasured: 0,
    scheduleCached: false,
  });

  assert.deepEqual(at(16).opTimes(() => [3, 4, 5]), [3, 4, 5]);
  assert.deepEqual(at(16).opTimes(() => [9, 9, 9]), [3, 4, 5]);
  assert.deepEqual(at(64).opTimes(() => [1, 1, 1]), [1, 1, 1]);

  const schedule = {
    scheduler: "auto:ios",
    streams: 2,
    events: 1,
    launches: [{ node: 0, stream: 0, waits: [], record: 0 }, { node: 1, stream: 1, waits: [0] }],
  };
  at(32).putSchedule("auto", {
    schedule,
    ms: 0.5,
    trials: [{ scheduler: "ios", streams: 2, ms: 0.5 }],
  });
  assert.equal(at(32).schedule("auto")?.ms, 0.5);
  assert.equal(at(132).schedule("auto"), undefined, "the full-GPU choice is not the 32-SM one");
  assert.equal(at(32).schedule("merged:auto"), undefined);
  assert.equal(
    new BudgetTuning(cache, h200, 32, g, inferShapes(g, 2), precision).schedule("auto"),
    undefined,
    "batch is in the signature",
  );

  // Budgets counted per key; the file keeps every kind and merges.
  assert.deepEqual([...cache.budgets()].sort((x, y) => x[0] - y[0]), [[16, 1], [32, 2], [64, 1], [
    132,
    1,
  ]]);
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await cache.save(path);
    const back = await TuningCache.load(path);
    assert.deepEqual(back.toJSON(), cache.toJSON());
    const other = new TuningCache();
    other.setStage(TuningCache.stageKey(h200, 8, "sig"), 7);
    back.merge(other);
    assert.equal(back.size, cache.size + 1);
    assert.equal(back.getStage(TuningCache.stageKey(h200, 8, "sig")), 7);
    // Both have the key: theirs win, unless ours are preferred (the tuning pool's parent).
    const later = new TuningCache();
    later.setStage(TuningCache.stageKey(h200, 8, "sig"), 9);
    back.merge(later, "ours");
    assert.equal(back.getStage(TuningCache.stageKey(h200, 8, "sig")), 7);
    back.merge(later);
    assert.equal(back.getStage(TuningCache.stageKey(h200, 8, "sig")), 9);
    // A hand-edited file with a broken schedule is refused, naming the entry.
    const data = cache.toJSON();
    const key = Object.keys(data.schedules!)[0];
    data.schedules![key].schedule.launches[1].stream = 5;
    await Deno.writeTextFile(path, JSON.stringify(data));
    await assert.rejects(() => TuningCache.load(path), /bad entry/);
    await Deno.writeTextFile(path, JSON.stringify({ ...data, schedules: {}, stages: { k: -1 } }));
    await assert.rejects(() => TuningCache.load(path), /bad entry "k"/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("stages of repeated blocks are measured once, and ios chooses as before", () => {
  const precision = { convTf32: true, matmulTf32: false };
  for (
    const [name, atLeast] of [["resnet50", 1.3], ["bert_base", 4], ["nasnet_large", 2]] as const
  ) {
    const g = optimize(buildZooModel(name));
    const plain = scheduleContext(g, inferShapes(g, 1));
    const tuned = new BudgetTuning(new TuningCache(), h200, 132, g, plain.shapes, precision);
    let asked = 0, measured = 0;
    const ctx = {
      ...plain,
      measureStage: (groups: number[][]) => {
        asked++;
        return tuned.stage(groups, () => (measured++, simulateStage(groups, plain.costs, H200)));
      },
    };
    const deduped = iosSchedule(ctx);
    assert.deepEqual(deduped.launches, iosSchedule(plain).launches, name);
    assert.equal(tuned.counts.stagesMeasured, measured);
    console.log(`${name}: ${measured} of ${asked} stages measured`);
    assert.ok(asked >= atLeast * measured, `${name}: ${measured} of ${asked} stages measured`);
  }
});

Deno.test("a stage's structure tells shapes, producers inside the stage and kernels apart", () => {
  const g = branchyNet();
  const shapes = inferShapes(g, 1);
  const at = (groups: number[][], kernels?: (v: number) => boolean) =>
    stageStructure(g, shapes, groups, kernels);
  assert.equal(
    at([[1], [2]]),
    stageStructure(branchyNet(), inferShapes(branchyNet(), 1), [[1], [
      2,
    ]]),
  );
  assert.notEqual(at([[1], [2]]), stageStructure(g, inferShapes(g, 2), [[1], [2]]), "batch");
  assert.notEqual(at([[1], [2]]), at([[2], [1]]), "group order");
  assert.notEqual(at([[1]]), at([[1]], () => false), "a view launches nothing");
  // An input produced inside the stage is named by position, not by shape.
  const consumer = g.nodes.findIndex((n) => n.inputs.includes(g.nodes[1].outputs[0]));
  assert.ok(consumer > 1);
  assert.match(at([[1, consumer]]), /"@0\.0"/);
  assert.doesNotMatch(at([[consumer]]), /"@0\.0"/);
});

Deno.test("graph signatures tell batch, precision and the merged variant apart", () => {
  const g = branchyNet();
  const p = { convTf32: true, matmulTf32: false };
  const sig = graphSignature(g, inferShapes(g, 1), p);
  assert.match(sig, /^[0-9a-f]{16}$/);
  assert.equal(graphSignature(branchyNet(), inferShapes(branchyNet(), 1), p), sig, "deterministic");
  assert.notEqual(graphSignature(g, inferShapes(g, 4), p), sig);
  assert.notEqual(graphSignature(g, inferShapes(g, 1), { ...p, convTf32: false }), sig);
  const merged = mergeSiblingConvs(g);
  assert.notEqual(graphSignature(merged, inferShapes(merged, 1), p), sig);
});

Deno.test("conv tuning keys include the SM budget", () => {
  const sig = JSON.stringify({ n: 1, c: 64 });
  assert.notEqual(
    TuningCache.key(h200, 32, "conv2d", sig),
    TuningCache.key(h200, 132, "conv2d", sig),
  );
  assert.equal(TuningCache.budgetOf(TuningCache.key(h200, 32, "conv2d", sig)), 32);
  assert.equal(TuningCache.budgetOf(TuningCache.scheduleKey(h200, 64, "abc", "auto")), 64);
});
