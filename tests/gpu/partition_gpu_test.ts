/**
 * SM partitions (green contexts) on the GPU: the device's split and its rounding, the native
 * error paths (sizes, groups, a driver without green contexts), confinement measured with the SM
 * probe (a partition's work runs on its SMs only, two groups never share one), zoo models inside
 * partitions against the CPU backend, concurrent launches, caller arrays page-locked for a
 * partition's session, the tuning cache's budgets, a pooled tune, a context's buffers from a
 * memory pool (BRAID_ALLOC=pool) beside another partition's work, and a context that makes its
 * partition's green context current (BRAID_PARTITION_BINDING=current).
 */
import { Partition, Session, TuningCache } from "../../mod.ts";
import { caseSeed, smallNet, throwsCode, withEnv, withEnvSync } from "../helpers.ts";
import { encodeRecord } from "../../ffi/params.ts";
import { Device, GEMM } from "./scenario.ts";
import { pinningScenario } from "../pinning_scenario.ts";
import { saveModel } from "../../lib/runtime/model.ts";
import { tunePooled } from "../../lib/cli/tune_pool.ts";
import { buildZooModel } from "../../lib/models/index.ts";
import { numel } from "../../lib/ir/graph.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";
import { cuda, expectClose, gpuSuite, relativeError } from "./gpu.ts";

const gpuTest = gpuSuite("partition_gpu_test.ts");

gpuTest("the device's split: sizes rounded up to the granularity, groups disjoint", () => {
  const rows: string[] = [];
  for (const fine of [false, true]) {
    for (const sms of [1, 8, 12, 16, 20, 32, 64, 100]) {
      const s = Partition.query({ sms, fine, device: "cuda" });
      rows.push(`${sms}${fine ? " fine" : ""} → ${s.groups}×${s.smsPerGroup}`);
      assert.ok(s.smsPerGroup >= sms && s.smsPerGroup >= s.smallest, `${sms}: ${s.smsPerGroup}`);
      assert.ok(s.groups >= 1 && s.groups * s.smsPerGroup <= s.deviceSms);
      assert.equal(s.smsPerGroup % s.smallest === 0 || fine, true);
    }
  }
  const { deviceSms, smallest } = Partition.query({ sms: 1, device: "cuda" });
  console.log(`  ${deviceSms} SMs, smallest partition ${smallest}: ${rows.join(", ")}`);
  using p = Partition.create({ sms: 20, device: "cuda" });
  assert.equal(p.requested, 20);
  assert.equal(p.sms, Partition.query({ sms: 20, device: "cuda" }).smsPerGroup, "rounding");
  assert.equal(p.users, 0);
  const t0 = performance.now();
  const made = Partition.split(3, { sms: 16, device: "cuda" });
  console.log(`  3 partitions of 16 SMs created in ${(performance.now() - t0).toFixed(1)} ms`);
  assert.deepEqual(made.map((m) => m.group), [0, 1, 2]);
  for (const m of made) m[Symbol.dispose]();
});

gpuTest("partition error paths: size and group out of range, no green contexts", async () => {
  const { deviceSms } = Partition.query({ sms: 8, device: "cuda" });
  await throwsCode(
    () => Partition.create({ sms: deviceSms + 1, device: "cuda" }),
    "NATIVE_INVALID_ARGUMENT",
    new RegExp(`has ${deviceSms} SMs`),
  );
  const { groups } = Partition.query({ sms: 32, device: "cuda" });
  await throwsCode(
    () => Partition.create({ sms: 32, group: groups, device: "cuda" }),
    "NATIVE_INVALID_ARGUMENT",
    new RegExp(`group ${groups} is out of range.*${groups} groups`),
  );
  await throwsCode(
    () => Partition.split(groups + 1, { sms: 32, device: "cuda" }),
    "BAD_OPTION",
    /do not fit/,
  );
  // A driver without green contexts, as the lookup sees it.
  await withEnv({ BRAID_NO_GREEN_CONTEXTS: "1" }, async () => {
    await throwsCode(
      () => Partition.create({ sms: 16, device: "cuda" }),
      "NATIVE_UNSUPPORTED",
      /green contexts.*has no cuDeviceGet.*BRAID_NO_GREEN_CONTEXTS/,
    );
  });
  using p = Partition.create({ sms: 16, device: "cuda" });
  assert.equal(p.sms, 16, "green contexts work again once the lookup is allowed");
});

gpuTest(
  "confinement: a partition's streams run on its SMs only, and groups are disjoint",
  async () => {
    const backend = cuda();
    const { deviceSms } = Partition.query({ sms: 8, device: "cuda" });
    const [a, b] = Partition.split(2, { sms: 32, device: "cuda" });
    const ctx = backend.contextCreate(0);
    const bound = backend.contextCreate(0);
    const streams: bigint[] = [];
    try {
      const whole = backend.smProbe(ctx, 0n);
      for (const p of [a, b]) streams.push(backend.partitionStreamCreate(ctx, p.native.handle, 1));
      const [inA, inB] = streams.map((s) => backend.smProbe(ctx, s));
      backend.contextSetPartition(bound, b.native.handle);
      const boundSms = backend.smProbe(bound, 0n);
      console.log(
        `  SMs used: whole device ${whole.length}, group 0 ${inA.length}, group 1 ${inB.length}, ` +
          `a context bound to group 1 ${boundSms.length}`,
      );
      assert.ok(whole.length > 64, `the whole device ran on ${whole.length} SMs`);
      assert.ok(inA.length <= a.sms && inA.length >= a.sms / 2, `group 0: ${inA.length}`);
      assert.ok(inB.length <= b.sms, `group 1: ${inB.length}`);
      assert.deepEqual(inA.filter((sm) => inB.includes(sm)), [], "groups 0 and 1 share no SM");
      assert.ok(boundSms.every((sm) => !inA.includes(sm)), "the bound context stays off group 0");
      assert.equal(backend.streamSms(ctx, streams[0]), a.sms);
      assert.equal(backend.streamSms(bound, 0n), b.sms);
      assert.equal(backend.streamSms(ctx, 0n), deviceSms);
      assert.equal(b.users, 2, "a stream and a bound context use group 1");
      await throwsCode(
        () => b[Symbol.dispose](),
        "NATIVE_INVALID_ARGUMENT",
        /still use the partition/,
      );
    } finally {
      for (const s of streams) backend.streamDestroy(ctx, s);
      backend.contextDestroy(ctx);
      backend.contextDestroy(bound);
    }
    assert.equal(b.users, 0);
    a[Symbol.dispose]();
    b[Symbol.dispose]();
  },
);

gpuTest("zoo models inside partitions match the CPU backend, and run concurrently", async () => {
  const [p0, p1] = Partition.split(2, { sms: 32, device: "cuda" });
  try {
    const outputs: Float32Array[] = [];
    const sessions: Session[] = [];
    const feeds: Record<string, Float32Array>[] = [];
    for (const [i, name] of ["googlenet", "squeezenet1_1"].entries()) {
      const graph = buildZooModel(name);
      const input = graph.values.get(graph.inputs[0])!;
      const feed = { [input.name]: new Random(caseSeed(name)).floats(numel(input.shape), 0, 1) };
      using cpu = await Session.create(graph, { device: "cpu" });
      const want = Object.values(cpu.runSync(feed))[0] as Float32Array;
      const session = await Session.create(graph, {
        partition: [p0, p1][i],
        precision: "fp32",
        scheduler: "opara",
      });
      sessions.push(session);
      feeds.push(feed);
      const got = Object.values(session.runSync(feed))[0] as Float32Array;
      const error = expectClose(got, want, 1e-5, `${name} in a ${[p0, p1][i].sms}-SM partition`);
      const report = session.report();
      assert.equal(report.smBudget, [p0, p1][i].sms);
      assert.deepEqual(report.partition, { sms: [p0, p1][i].sms, group: i });
      const used = session.probeSms();
      assert.ok(used.length <= [p0, p1][i].sms, `${name}'s stream ran on ${used.length} SMs`);
      console.log(
        `  ${name}: ${report.scheduler}, ${report.streams} streams in group ${i} ` +
          `(${used.length} SMs used), fp32 error ${error.toExponential(2)}`,
      );
      outputs.push(got);
    }
    // Both at once from this thread: launchAsync waits on another thread.
    for (const [i, s] of sessions.entries()) {
      for (const [name, data] of Object.entries(feeds[i])) s.io.inputs[name].set(data);
    }
    await Promise.all(sessions.map((s) => s.launchAsync()));
    sessions.forEach((s, i) => {
      assert.deepEqual(Object.values(s.io.outputs)[0], outputs[i], "concurrent launches agree");
    });
    await throwsCode(() => p0[Symbol.dispose](), "NATIVE_INVALID_ARGUMENT", /still use/);
    for (const s of sessions) s[Symbol.dispose]();
  } finally {
    p0[Symbol.dispose]();
    p1[Symbol.dispose]();
  }
});

gpuTest("run() copies reused caller arrays straight from them inside a partition too", async () => {
  using partition = Partition.create({ sms: 16, device: "cuda" });
  await pinningScenario("cuda", smallNet(), { partition });
});

gpuTest("a session on an N-SM partition uses the tuning entries of budget N", async () => {
  const graph = buildZooModel("squeezenet1_1");
  const tuning = new TuningCache();
  const [p0, p1] = Partition.split(2, { sms: 32, device: "cuda" });
  try {
    const create = async (partition?: Partition) => {
      const t0 = performance.now();
      const s = await Session.create(graph, { partition, device: "cuda", tuning });
      const ms = performance.now() - t0;
      const r = s.report();
      s[Symbol.dispose]();
      return { r, ms };
    };
    const first = await create(p0);
    const entries = tuning.size;
    assert.ok(first.r.stages.measured > 0 && entries > 0, "tuned inside the partition");
    // Its convolutions were measured by its stage timer's executable, before the final one.
    assert.ok(
      first.r.tuning.measured > 0 && first.r.tuning.ms > 0 && first.r.trialsMs > 0,
      JSON.stringify({ tuning: first.r.tuning, trialsMs: first.r.trialsMs }),
    );
    const keys = tuning.keys();
    assert.ok(keys.every((k) => k.includes(`|sms=${p0.sms}|`)), "every entry is keyed by 32 SMs");
    assert.ok(keys.some((k) => k.includes("|schedule|")), "auto's choice is cached");
    const again = await create(p1);
    assert.equal(again.r.tuning.measured, 0, "a second 32-SM session measures no convolution");
    assert.equal(again.r.tuning.cached, first.r.tuning.measured + first.r.tuning.cached);
    assert.equal(again.r.stages.measured, 0, "nor any op or stage");
    assert.equal(tuning.size, entries, "nothing new in the cache");
    assert.equal(again.r.scheduler, first.r.scheduler);
    assert.deepEqual(again.r.trials, first.r.trials, "auto's trials come from the cache");
    const whole = await create(undefined);
    assert.ok(
      tuning.size > entries && whole.r.stages.measured > 0,
      "the whole GPU is another budget",
    );
    assert.deepEqual(
      [...tuning.budgets().keys()].sort((a, b) => a - b),
      [p0.sms, whole.r.smBudget],
    );
    console.log(
      `  squeezenet1_1: tuned at ${p0.sms} SMs in ${first.ms.toFixed(0)} ms, reused in ` +
        `${again.ms.toFixed(0)} ms; whole GPU ${whole.ms.toFixed(0)} ms (${whole.r.scheduler})`,
    );
  } finally {
    p0[Symbol.dispose]();
    p1[Symbol.dispose]();
  }
});

gpuTest(
  "a pooled tune on two 32-SM partitions: its tunings time no stage, and a session finds them",
  async () => {
    const dir = await Deno.makeTempDir();
    const tuning = new TuningCache();
    try {
      const files = [`${dir}/squeezenet1_1.braid`, `${dir}/googlenet.braid`];
      await saveModel(buildZooModel("squeezenet1_1"), files[0]);
      await saveModel(buildZooModel("googlenet"), files[1]);
      const options = {
        cache: `${dir}/c.json`,
        scheduler: "auto",
        device: "cuda",
        sms: 32,
      } as const;
      const { results, pool } = await tunePooled(files, options, [0, 1], tuning);
      assert.equal(pool.jobs.tune, 2);
      assert.ok(pool.prefetched > 0 && pool.jobs.stages > 0, JSON.stringify(pool.jobs));
      // auto's candidates timed ahead: each choose timed only ios's three and its confirmation.
      assert.ok(pool.jobs.trials > 0 && pool.trialsAhead >= 10, JSON.stringify(pool));
      assert.ok(pool.trialsLate <= 5 * pool.jobs.choose, `${pool.trialsLate} timed late`);
      for (const r of results) assert.equal(r.smBudget, 32, `${r.model}: tuned for 32 SMs`);
      // The models' own tunings found every op and stage the pool measured.
      const own = pool.timeline.filter((j) => j.kind === "tune");
      assert.equal(own.length, 2);
      // (All but a few: one bench run saw 1 of 17595 measured in a model's own tuning.)
      const late = results.reduce((n, r) => n + r.stagesMeasured, 0) - pool.prefetched;
      assert.ok(late >= 0 && late <= 0.01 * pool.prefetched, `${late} measured late`);
      assert.ok(tuning.keys().every((k) => k.includes("|sms=32|")), "every entry keyed by 32 SMs");
      using partition = Partition.create({ sms: 32, group: 2, device: "cuda" });
      using session = await Session.create(buildZooModel("googlenet"), { partition, tuning });
      const r = session.report();
      assert.equal(r.stages.measured, 0, "a 32-SM session measures nothing");
      assert.equal(r.tuning.measured, 0);
      assert.equal(r.scheduler, results[1].scheduler, "and runs the pool's choice");
      console.log(
        `  pool of 2: ${pool.prefetched} ops/stages and ${pool.trialsAhead} candidates ahead ` +
          `(${pool.trialsLate} late), jobs ${JSON.stringify(pool.jobs)}, ` +
          `busy ${pool.busyMs.map((ms) => (ms / 1000).toFixed(1)).join(" / ")} s`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

gpuTest(
  "BRAID_ALLOC=pool: buffers (host ones too) come back zero-filled, a free while capturing " +
    "waits for its end, scratch first needed in a capture comes from the pool, and an " +
    "allocation and free do not wait for another partition's work",
  async () => {
    const backend = cuda();
    const [busyPart, ownPart] = Partition.split(2, { sms: 32, device: "cuda" });
    const busy = new Device(backend);
    try {
      // Work that keeps one partition busy: strict-fp32 products of 4096² matrices.
      backend.contextSetPartition(busy.ctx, busyPart.native.handle);
      const n = 4096;
      const [a, b, y] = [busy.alloc(n * n), busy.alloc(n * n), busy.alloc(n * n)];
      const gemm = () => busy.op("braid_gemm", "gemm", { ...GEMM, m: n, n, k: n }, [a, b, 0n, y]);
      gemm();
      backend.streamSynchronize(busy.ctx, 0n);
      const started = performance.now();
      gemm();
      backend.streamSynchronize(busy.ctx, 0n);
      const reps = Math.max(4, Math.ceil(150 / (performance.now() - started)));
      /**
       * ms a free of 1 MiB (allocated before) takes on `ctx` while the other partition is busy,
       * then an allocation (its zero-fill runs on this context's stream: reported, not asserted,
       * since the two partitions' streams may share a hardware queue); and how long the other
       * partition stayed busy.
       */
      const whileBusy = (ctx: bigint) => {
        const buffer = backend.bufferAlloc(ctx, 2 ** 20);
        for (let i = 0; i < reps; i++) gemm();
        const t0 = performance.now();
        backend.bufferFree(ctx, buffer);
        const t1 = performance.now();
        backend.bufferFree(ctx, backend.bufferAlloc(ctx, 2 ** 20));
        const t2 = performance.now();
        backend.streamSynchronize(busy.ctx, 0n);
        return { freeMs: t1 - t0, allocMs: t2 - t1, busyMs: performance.now() - t0 };
      };
      const timed = async (alloc: "direct" | "pool") => {
        let result = { freeMs: 0, allocMs: 0, busyMs: 0 };
        await withEnv({ BRAID_ALLOC: alloc }, () => {
          const ctx = backend.contextCreate(0);
          try {
            backend.contextSetPartition(ctx, ownPart.native.handle);
            whileBusy(ctx); // the first allocation of a context reserves memory
            result = whileBusy(ctx);
            if (alloc === "pool") pooledChecks(ctx);
          } finally {
            backend.contextDestroy(ctx);
          }
        });
        return result;
      };
      /** Reuse comes back zero-filled; a free during a capture is issued after it. */
      const pooledChecks = (ctx: bigint) => {
        const count = 4096;
        const first = backend.bufferAlloc(ctx, 4 * count);
        backend.memcpyH2D(ctx, 0n, first, new Float32Array(count).fill(7));
        backend.streamSynchronize(ctx, 0n);
        backend.bufferFree(ctx, first);
        const again = backend.bufferAlloc(ctx, 4 * count);
        const back = new Float32Array(count);
        backend.memcpyD2H(ctx, 0n, back, again);
        backend.streamSynchronize(ctx, 0n);
        // Asserted once everything is freed, so that a failure is not hidden by the context's
        // destruction refusing live buffers.
        const zeroed = back.every((v) => v === 0);
        console.log(
          `  pooled: the freed buffer's memory ${again === first ? "was" : "was not"} reused`,
        );
        const out = backend.bufferAlloc(ctx, 4 * count);
        backend.captureBegin(ctx, 0n);
        backend.op(
          "braid_unary",
          ctx,
          0n,
          encodeRecord("unary", { count, kind: 1, act_min: 0, act_max: 0 }),
          [again, out],
        );
        backend.bufferFree(ctx, again); // deferred: the capture would record it
        const graph = backend.captureEnd(ctx, 0n);
        backend.graphDestroy(ctx, graph);
        backend.bufferFree(ctx, out);
        // A product on a stream of its own: its cuBLASLt scratch comes from the pool too, and
        // goes back with the stream.
        const stream = backend.streamCreate(ctx, 0);
        const [x, w, y] = [64 * 64, 64 * 64, 64 * 64].map((n) => backend.bufferAlloc(ctx, 4 * n));
        for (const m of [x, w]) backend.memcpyH2D(ctx, 0n, m, new Float32Array(64 * 64).fill(1));
        backend.streamSynchronize(ctx, 0n);
        /** `into` = x · w (ones, 64 × 64) on stream `on`. */
        const multiply = (on: bigint, into: bigint) =>
          backend.op(
            "braid_gemm",
            ctx,
            on,
            encodeRecord("gemm", { ...GEMM, m: 64, n: 64, k: 64 }),
            [x, w, 0n, into],
          );
        multiply(stream, y);
        backend.streamSynchronize(ctx, stream);
        backend.streamDestroy(ctx, stream);
        const product = new Float32Array(64 * 64);
        backend.memcpyD2H(ctx, 0n, product, y);
        backend.streamSynchronize(ctx, 0n);
        // The same product first issued inside a capture, on a stream of its own: its scratch
        // comes from the pool through the context's side stream, outside the graph.
        const capturing = backend.streamCreate(ctx, 0);
        const yCaptured = backend.bufferAlloc(ctx, 4 * 64 * 64);
        backend.captureBegin(ctx, capturing);
        multiply(capturing, yCaptured);
        const productGraph = backend.captureEnd(ctx, capturing);
        backend.graphLaunch(ctx, productGraph, 0n);
        const productCaptured = new Float32Array(64 * 64);
        backend.memcpyD2H(ctx, 0n, productCaptured, yCaptured);
        backend.streamSynchronize(ctx, 0n);
        backend.graphDestroy(ctx, productGraph);
        backend.streamDestroy(ctx, capturing);
        for (const m of [x, w, y, yCaptured]) backend.bufferFree(ctx, m);
        // Page-locked host memory: kept when freed, and given out again zero-filled.
        const host = backend.hostAlloc(ctx, 4 * count);
        new Float32Array(host.buffer).fill(3);
        backend.hostFree(ctx, host.address);
        const hostAgain = backend.hostAlloc(ctx, 4 * count);
        const hostZeroed = new Float32Array(hostAgain.buffer).every((v) => v === 0);
        const hostReused = hostAgain.address === host.address;
        backend.hostFree(ctx, hostAgain.address);
        assert.ok(
          hostReused && hostZeroed,
          `host buffer reused ${hostReused}, zeroed ${hostZeroed}`,
        );
        assert.ok(zeroed, "a reused buffer is zero-filled");
        assert.ok(product.every((v) => v === 64), "ones times ones: 64 everywhere");
        assert.ok(productCaptured.every((v) => v === 64), "captured: 64 everywhere");
      };
      const direct = await timed("direct");
      const pooled = await timed("pool");
      const ms = (t: { freeMs: number; allocMs: number }) =>
        `free ${t.freeMs.toFixed(2)} ms, allocate ${t.allocMs.toFixed(2)} ms`;
      console.log(
        `  1 MiB beside ${reps} GEMMs on another partition (${direct.busyMs.toFixed(0)} ms): ` +
          `cudaMalloc/cudaFree ${ms(direct)}; pool ${ms(pooled)}`,
      );
      assert.ok(
        pooled.freeMs < pooled.busyMs / 4,
        `a pooled free took ${pooled.freeMs.toFixed(1)} of ${pooled.busyMs.toFixed(0)} ms`,
      );
    } finally {
      busy.close();
      busyPart[Symbol.dispose]();
      ownPart[Symbol.dispose]();
    }
  },
);

gpuTest(
  "BRAID_PARTITION_BINDING=current: a context runs confined with its green context current, " +
    "agrees with the default binding, and gives the thread back to the primary context",
  async () => {
    const backend = cuda();
    const [a, b] = Partition.split(2, { sms: 32, device: "cuda" });
    const graph = buildZooModel("squeezenet1_1");
    const input = graph.values.get(graph.inputs[0])!;
    const feed = {
      [input.name]: new Random(caseSeed("bound current")).floats(numel(input.shape), 0, 1),
    };
    const options = { partition: a, precision: "fp32", scheduler: "opara" } as const;
    try {
      const run = async () => {
        using session = await Session.create(graph, options);
        return {
          out: Object.values(session.runSync(feed))[0] as Float32Array,
          sms: session.probeSms(),
        };
      };
      let streams: Awaited<ReturnType<typeof run>> | undefined;
      await withEnv({ BRAID_PARTITION_BINDING: "streams" }, async () => (streams = await run()));
      await withEnv({ BRAID_PARTITION_BINDING: "current" }, async () => {
        // A context bound through its streams is not silently left so by binding it again.
        const plain = backend.contextCreate(0);
        try {
          withEnvSync(
            { BRAID_PARTITION_BINDING: "streams" },
            () => backend.contextSetPartition(plain, b.native.handle),
          );
          await throwsCode(
            () => backend.contextSetPartition(plain, b.native.handle),
            "NATIVE_INVALID_ARGUMENT",
            /through its streams only/,
          );
        } finally {
          backend.contextDestroy(plain);
        }
        const ctx = backend.contextCreate(0);
        const whole = backend.contextCreate(0);
        try {
          backend.contextSetPartition(ctx, a.native.handle);
          const inA = backend.smProbe(ctx, 0n);
          // Another context on this thread, unbound: a stream it makes now is the whole
          // device's (the primary context current again for its calls).
          const stream = backend.streamCreate(whole, 0);
          const all = backend.smProbe(whole, stream);
          backend.streamDestroy(whole, stream);
          const again = backend.smProbe(ctx, 0n);
          // A session on the same partition, from the same thread: a second bound context.
          const current = await run();
          console.log(
            `  SMs used: bound current ${inA.length} (again ${again.length}), unbound ` +
              `${all.length} between, a session ${current.sms.length}; squeezenet1_1 ` +
              `${relativeError(current.out, streams!.out).toExponential(2)} from the default`,
          );
          assert.ok(inA.length <= a.sms && inA.length >= a.sms / 2, `bound: ${inA.length}`);
          assert.ok(again.length <= a.sms, `bound, after the unbound context: ${again.length}`);
          assert.ok(all.length > 64, `the unbound context ran on ${all.length} SMs`);
          assert.ok(current.sms.length <= a.sms, `the session ran on ${current.sms.length}`);
          expectClose(current.out, streams!.out, 1e-5, "squeezenet1_1, bound current");
          await throwsCode(
            () => backend.contextSetPartition(ctx, b.native.handle),
            "NATIVE_INVALID_ARGUMENT",
            /cannot be bound again/,
          );
          // Another thread: refused on the partition this one holds, bound on the other.
          const worker = new Worker(new URL("./bind_worker.ts", import.meta.url).href, {
            type: "module",
          });
          try {
            const bind = (p: Partition) =>
              new Promise<{ bound: boolean; code?: string; message?: string }>((resolve) => {
                worker.onmessage = (e) => resolve(e.data);
                worker.postMessage({ partition: p.native.handle });
              });
            const held = await bind(a);
            assert.equal(held.code, "NATIVE_INVALID_ARGUMENT", JSON.stringify(held));
            assert.match(held.message!, /current on another thread/);
            assert.ok((await bind(b)).bound, "a partition no thread holds");
          } finally {
            worker.terminate();
          }
          // The handles are made again under the green context: only before any operator ran.
          const used = new Device(backend);
          try {
            const [x, w, y] = [64 * 64, 64 * 64, 64 * 64].map((n) => used.alloc(n));
            used.op("braid_gemm", "gemm", { ...GEMM, m: 64, n: 64, k: 64 }, [x, w, 0n, y]);
            await throwsCode(
              () => backend.contextSetPartition(used.ctx, b.native.handle),
              "NATIVE_INVALID_ARGUMENT",
              /before it runs any operator/,
            );
          } finally {
            used.close();
          }
        } finally {
          backend.contextDestroy(ctx);
          backend.contextDestroy(whole);
        }
        // The bound contexts gone, a new one on this thread has the whole device.
        const after = backend.contextCreate(0);
        try {
          assert.ok(backend.smProbe(after, 0n).length > 64, "the primary context is current again");
        } finally {
          backend.contextDestroy(after);
        }
      });
      assert.equal(a.users, 0, "every binding released");
    } finally {
      a[Symbol.dispose]();
      b[Symbol.dispose]();
    }
  },
);
