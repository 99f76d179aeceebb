/**
 * The CUDA backend at the C ABI level: device facts, out-of-memory and invalid launches as
 * BraidErrors that leave contexts and sessions usable, gather's deferred index check, misaligned
 * and odd-sized operands (the scalar paths beside the 16-byte ones), capture misuse, caller memory
 * page-locked in place (and run() copying from it), and a two-stream fork/join captured into one
 * graph, each against the CPU backend; and the hardware queues the library asks the driver for.
 */
import { Backend } from "../../ffi/backend.ts";
import { BraidError, type BraidErrorCode } from "../../lib/errors.ts";
import { GraphBuilder } from "../../lib/ir/builder.ts";
import { Session } from "../../mod.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";
import { BASE_SEED, cuda, evalInProcess, expectClose, gpuSuite } from "./gpu.ts";
import { inceptionNet, smallNet } from "../helpers.ts";
import { pinningScenario } from "../pinning_scenario.ts";
import {
  composedBranches,
  composeRawArguments,
  CONV,
  Device,
  GEMM,
  twoStreamCapture,
} from "./scenario.ts";

const gpuTest = gpuSuite("native_gpu_test.ts");

function throwsCode(f: () => unknown, code: BraidErrorCode, mention?: RegExp): BraidError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof BraidError, `expected a BraidError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (mention) assert.match(e.message, mention);
    return e;
  }
  throw new Error(`expected BraidError ${code}`);
}

gpuTest("device info reports a CUDA device", () => {
  const backend = cuda();
  const ctx = backend.contextCreate(0);
  try {
    const info = backend.deviceInfo(ctx);
    assert.equal(info.backend, "cuda");
    assert.ok(info.name.length > 0);
    assert.ok(info.multiprocessors > 0 && info.computeCapability >= 50, JSON.stringify(info));
    assert.ok(info.totalMemory > 0 && info.freeMemory > 0 && info.freeMemory <= info.totalMemory);
    assert.ok(info.l2Bytes > 0 && info.runtimeVersion > 0 && info.libraryVersion > 0);
    console.log(
      `  ${info.name}: ${info.multiprocessors} SMs, cc ${info.computeCapability}, ` +
        `${(info.totalMemory / 2 ** 30).toFixed(0)} GiB, L2 ${info.l2Bytes / 2 ** 20} MiB, ` +
        `CUDA runtime ${info.runtimeVersion}, cuDNN ${info.libraryVersion}`,
    );
    throwsCode(() => backend.contextCreate(4096), "NATIVE_INVALID_ARGUMENT", /out of range/);
  } finally {
    backend.contextDestroy(ctx);
  }
});

gpuTest(
  "the library asks the driver for 32 hardware queues, unless the process set its own",
  async () => {
    // Set when the library loaded (the GPU tests' processes set none of their own).
    assert.equal(Deno.env.get("CUDA_DEVICE_MAX_CONNECTIONS"), "32");
    const backend = new URL("../../ffi/backend.ts", import.meta.url).href;
    const { code, stdout } = await evalInProcess(
      `const { Backend } = await import("${backend}"); Backend.open("cuda").deviceCount(); ` +
        `console.log(Deno.env.get("CUDA_DEVICE_MAX_CONNECTIONS"));`,
      { CUDA_DEVICE_MAX_CONNECTIONS: "4" },
    );
    assert.equal(code, 0);
    assert.equal(stdout.trim(), "4", "the process's own setting stays");
  },
);

gpuTest("out of memory is NATIVE_OUT_OF_MEMORY and contexts and sessions go on", async () => {
  const g = smallNet();
  const x = new Random(BASE_SEED).floats(3 * 16 * 16);
  using session = await Session.create(g, { device: "cuda", precision: "fp32" });
  const before = session.runSync({ x })[g.outputs[0]];

  const d = new Device(cuda());
  try {
    throwsCode(() => d.alloc(2 ** 48), "NATIVE_OUT_OF_MEMORY", /braid_buffer_alloc.*bytes/);
    throwsCode(() => d.backend.hostAlloc(d.ctx, 2 ** 53), "NATIVE_OUT_OF_MEMORY");
    // The same context still allocates, copies and computes.
    const a = d.alloc(256), y = d.alloc(256);
    const data = new Random(1).floats(256);
    d.upload(a, data);
    d.op("braid_unary", "unary", { count: 256, kind: 1, act_min: 0, act_max: 0 }, [a, y]);
    assert.deepEqual(d.download(y, 256), data.map((v) => Math.max(v, 0)));
  } finally {
    d.close();
  }

  // A session whose batch makes the arena far larger than the device fails cleanly...
  await Session.create(g, { device: "cuda", batch: 2 ** 26 }).then(
    () => assert.fail("a terabyte arena was allocated"),
    (e) => {
      assert.ok(e instanceof BraidError, String(e));
      assert.equal(e.code, "NATIVE_OUT_OF_MEMORY", e.message);
    },
  );
  // ...and the live session still runs, with the same answer.
  assert.deepEqual(session.runSync({ x })[g.outputs[0]], before);
});

gpuTest("invalid launches are BraidErrors and the context goes on", () => {
  const d = new Device(cuda());
  try {
    const x = d.alloc(1024), w = d.alloc(8 * 4 * 9), y = d.alloc(2048);
    const unary = (count: number, kind: number) => () =>
      d.op("braid_unary", "unary", { count, kind, act_min: 0, act_max: 0 }, [x, y]);
    throwsCode(unary(0, 1), "NATIVE_INVALID_ARGUMENT", /count 0/);
    throwsCode(unary(16, 9), "NATIVE_INVALID_ARGUMENT", /kind 9/);
    throwsCode(
      () => d.op("braid_unary", "unary", { count: 4, kind: 1, act_min: 0, act_max: 0 }, [0n, y]),
      "NATIVE_INVALID_ARGUMENT",
      /x address is 0/,
    );
    const conv = (change: Record<string, number>) => () =>
      d.op("braid_conv2d", "conv2d", { ...CONV, ...change }, [x, w, 0n, 0n, y, 0n]);
    throwsCode(conv({ oh: 40 }), "NATIVE_INVALID_ARGUMENT", /oh 40 is inconsistent/);
    throwsCode(conv({ groups: 3 }), "NATIVE_INVALID_ARGUMENT", /groups 3/);
    throwsCode(conv({ algorithm: 12 }), "NATIVE_INVALID_ARGUMENT", /algorithm 12/);
    throwsCode(conv({ workspace_bytes: 1024 }), "NATIVE_INVALID_ARGUMENT", /workspace/);
    throwsCode(conv({ activation: 7 }), "NATIVE_INVALID_ARGUMENT", /activation 7/);
    throwsCode(
      () => d.op("braid_gemm", "gemm", { ...GEMM, m: 2, n: 2, k: 2, trans_b: 3 }, [x, x, 0n, y]),
      "NATIVE_INVALID_ARGUMENT",
      /trans_b 3/,
    );
    const concat = new Uint8Array(4 * 67);
    new Int32Array(concat.buffer).set([2, 1, 5, 2, 2]); // inner sizes add up to 4, not 5
    throwsCode(
      () => d.backend.concat(d.ctx, 0n, concat, BigUint64Array.from([x, x]), y),
      "NATIVE_INVALID_ARGUMENT",
      /add up to 4/,
    );
    throwsCode(() => d.backend.streamSynchronize(d.ctx, 12345n), "NATIVE_INVALID_HANDLE");
    throwsCode(() => d.backend.bufferFree(d.ctx, x + 4n), "NATIVE_INVALID_ARGUMENT");
    // Still usable: a valid conv runs and matches the CPU backend.
    const rng = new Random(BASE_SEED);
    const xs = rng.floats(1024), ws = rng.floats(8 * 4 * 9, -0.3, 0.3);
    d.upload(x, xs);
    d.upload(w, ws);
    d.op("braid_conv2d", "conv2d", CONV, [x, w, 0n, 0n, y, 0n]);
    const got = d.download(y, 2048);
    const c = new Device(Backend.open("cpu"));
    try {
      const [cx, cw, cy] = [c.alloc(1024), c.alloc(8 * 4 * 9), c.alloc(2048)];
      c.upload(cx, xs);
      c.upload(cw, ws);
      c.op("braid_conv2d", "conv2d", { ...CONV, algorithm: 0 }, [cx, cw, 0n, 0n, cy, 0n]);
      expectClose(got, c.download(cy, 2048), 1e-5, "conv after errors");
    } finally {
      c.close();
    }
  } finally {
    d.close();
  }
});

gpuTest("a gather index out of range is reported at the next synchronize", () => {
  const d = new Device(cuda());
  try {
    const data = d.alloc(40), idx = d.alloc(3), y = d.alloc(12);
    const values = new Random(3).floats(40);
    d.upload(data, values);
    d.upload(idx, new Int32Array([1, 12, -2]));
    d.op("braid_gather", "gather", { outer: 1, axis: 10, inner: 4, count: 3 }, [data, idx, y]);
    throwsCode(
      () => d.backend.streamSynchronize(d.ctx, 0n),
      "NATIVE_INVALID_ARGUMENT",
      /gather index out of range: index 12 \(at position 1\) for axis size 10/,
    );
    d.backend.streamSynchronize(d.ctx, 0n); // reported once
    const out = d.download(y, 12);
    assert.deepEqual(out.subarray(0, 4), values.subarray(4, 8));
    assert.deepEqual(out.subarray(4, 8), new Float32Array(4));
    assert.deepEqual(out.subarray(8, 12), values.subarray(32, 36));
  } finally {
    d.close();
  }
});

gpuTest("device and page-locked memory come zero-filled, even where freed memory held data", () => {
  const d = new Device(cuda());
  try {
    const count = 1 << 20;
    const garbage = d.backend.bufferAlloc(d.ctx, 4 * count);
    d.upload(garbage, new Float32Array(count).fill(-1.5));
    d.backend.streamSynchronize(d.ctx, 0n);
    d.backend.bufferFree(d.ctx, garbage);
    // A tuning replay before any input is copied reads these: they must be valid (zeros).
    assert.ok(d.download(d.alloc(count), count).every((x) => x === 0));
    assert.ok(d.hostFloats(count).every((x) => x === 0));
  } finally {
    d.close();
  }
});

gpuTest("caller memory page-locked in place: async copies, refusals, destroy order", () => {
  const d = new Device(cuda());
  const { backend, ctx } = d;
  // Large enough to sit in pages of its own (an allocation of this size is mapped apart).
  const data = new Random(BASE_SEED).floats(1 << 20);
  const address = backend.hostRegister(ctx, data);
  try {
    const refused = ["NATIVE_INVALID_ARGUMENT", "NATIVE_UNSUPPORTED"];
    for (const again of [data, data.subarray(5000, 9000)]) {
      try {
        backend.hostRegister(ctx, again);
        assert.fail("memory already page-locked was locked again");
      } catch (e) {
        assert.ok(e instanceof BraidError && refused.includes(e.code), String(e));
        assert.match(e.message, /cudaHostRegister/);
      }
    }
    // cudaHostAlloc's memory is page-locked already.
    const host = d.hostFloats(1024);
    try {
      backend.hostUnregister(ctx, backend.hostRegister(ctx, host));
      assert.fail("page-locked memory from braid_host_alloc was locked again");
    } catch (e) {
      assert.ok(e instanceof BraidError && e.code === "NATIVE_INVALID_ARGUMENT", String(e));
    }
    throwsCode(() => backend.contextDestroy(ctx), "NATIVE_INVALID_ARGUMENT", /registrations/);
    const device = d.alloc(data.length);
    backend.memcpyH2D(ctx, 0n, device, data);
    assert.deepEqual(d.download(device, data.length), data);
  } finally {
    backend.hostUnregister(ctx, address);
  }
  throwsCode(() => backend.hostUnregister(ctx, address), "NATIVE_INVALID_ARGUMENT", /0x/);
  d.close();
});

gpuTest(
  "run() copies reused caller arrays straight from them, as it computes them copied",
  async () => {
    await pinningScenario("cuda", smallNet());
    await pinningScenario("cuda", smallNet(), { eager: true });
    // Several streams: every one of them must see the inputs copied in ahead of the graph.
    await pinningScenario("cuda", inceptionNet(), { scheduler: "nimble" });
    await pinningScenario("cuda", inceptionNet(), { scheduler: "nimble", eager: true });
  },
);

gpuTest("profile() of a token-id model: kernels-only replays find the ids intact", async () => {
  const b = new GraphBuilder("ids", 11);
  let v = b.embedding(b.input("ids", [1, 64], "int32"), "embed", 1000, 32);
  // Later values would fit in the ids' bytes once their only reader has run.
  for (let i = 0; i < 4; i++) v = b.relu(b.tanh(v), `r${i}`);
  b.output(v);
  using session = await Session.create(b.build(), { device: "cuda", scheduler: "sequential" });
  const ids = Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 1000);
  const first = session.runSync({ ids });
  const profile = session.profile({ ids }, { warmup: 2, runs: 5 });
  assert.ok(profile.compute.medianMs > 0 && profile.gpu.medianMs > 0);
  assert.deepEqual(session.runSync({ ids }), first);
});

gpuTest("misaligned and odd-sized operands take the scalar paths correctly", () => {
  const run = (backend: Backend): Float32Array[] => {
    const d = new Device(backend);
    try {
      const rng = new Random(BASE_SEED ^ 77);
      const n = 4099;
      const base = d.alloc(3 * n + 64, 64);
      const x = base + 4n, b = base + BigInt(4 * n + 8), y = base + BigInt(8 * n + 12);
      d.upload(x, rng.floats(n, -4, 4));
      d.upload(b, rng.floats(n, 0.5, 1.5));
      const out: Float32Array[] = [];
      d.op("braid_unary", "unary", { count: n, kind: 5, act_min: 0, act_max: 0 }, [x, y]);
      out.push(d.download(y, n));
      d.op("braid_binary", "binary", {
        kind: 3,
        rank: 1,
        shape: [n],
        a_strides: [1],
        b_strides: [1],
        activation: 3,
        act_min: 0,
        act_max: 0,
      }, [x, b, y]);
      out.push(d.download(y, n));
      // Concat of inner sizes 5 and 3 over 7 rows (4-byte path).
      const params = new Uint8Array(4 * 67);
      new Int32Array(params.buffer).set([2, 7, 8, 5, 3]);
      d.backend.concat(d.ctx, 0n, params, BigUint64Array.from([x, b]), y);
      out.push(d.download(y, 56));
      // A transpose through strided_copy.
      d.op("braid_strided_copy", "strided_copy", {
        rank: 3,
        shape: [5, 7, 3],
        strides: [1, 15, 5],
        offset: 2,
      }, [x, y]);
      out.push(d.download(y, 105));
      return out;
    } finally {
      d.close();
    }
  };
  const got = run(cuda()), want = run(Backend.open("cpu"));
  got.forEach((g, i) => expectClose(g, want[i], 1e-6, `output ${i}`));
});

gpuTest("capture misuse is NATIVE_CAPTURE and leaves the context usable", () => {
  const d = new Device(cuda());
  try {
    const { backend, ctx } = d;
    throwsCode(() => backend.captureEnd(ctx, 0n), "NATIVE_CAPTURE", /not capturing/);
    const s1 = d.stream();
    const fork = d.event();
    const x = d.alloc(64), y = d.alloc(64);
    backend.captureBegin(ctx, 0n);
    throwsCode(() => backend.captureBegin(ctx, 0n), "NATIVE_CAPTURE", /already capturing/);
    throwsCode(() => backend.streamSynchronize(ctx, 0n), "NATIVE_CAPTURE");
    // Fork a stream and never join it back: the capture cannot end into a graph.
    backend.eventRecord(ctx, fork, 0n);
    backend.streamWaitEvent(ctx, s1, fork);
    d.op("braid_unary", "unary", { count: 64, kind: 1, act_min: 0, act_max: 0 }, [x, y], s1);
    throwsCode(() => backend.captureEnd(ctx, 0n), "NATIVE_CAPTURE");
    // Everything still works afterwards, eagerly and captured.
    const data = new Random(9).floats(64);
    d.upload(x, data);
    backend.captureBegin(ctx, 0n);
    d.op("braid_unary", "unary", { count: 64, kind: 4, act_min: 0, act_max: 0 }, [x, y]);
    const graph = d.keepGraph(backend.captureEnd(ctx, 0n));
    backend.graphLaunch(ctx, graph, 0n);
    expectClose(d.download(y, 64), data.map(Math.tanh), 1e-6, "tanh replay");
  } finally {
    d.close();
  }
});

const BRANCH_SCENARIOS = [
  ["two streams forked and joined inside a capture", twoStreamCapture, 0x5eed],
  ["graphs composed from templates", composedBranches, 0xc0de],
] as const;
for (const [name, scenario, salt] of BRANCH_SCENARIOS) {
  gpuTest(`${name} replay like the CPU backend`, () => {
    const seed = BASE_SEED ^ salt;
    const got = scenario(cuda(), seed);
    const want = scenario(Backend.open("cpu"), seed);
    assert.equal(got.length, 3);
    got.forEach((g, i) => expectClose(g, want[i], 1e-5, `launch ${i}`));
    assert.notDeepEqual(got[0], got[1], "each launch read its fresh input");
  });
}

gpuTest(
  "templates: not launchable, not composable while capturing; empty and copy templates",
  () => {
    const d = new Device(cuda());
    try {
      const { backend, ctx } = d;
      const [x, y, z] = [d.alloc(64), d.alloc(64), d.alloc(64)];
      const capture = (issue: () => void) => {
        backend.captureBegin(ctx, 0n);
        issue();
        return d.keepGraph(backend.captureEndTemplate(ctx, 0n));
      };
      const tanh = capture(() =>
        d.op("braid_unary", "unary", { count: 64, kind: 4, act_min: 0, act_max: 0 }, [x, y])
      );
      throwsCode(() => backend.graphLaunch(ctx, tanh, 0n), "NATIVE_INVALID_ARGUMENT", /template/);
      const executable = d.keepGraph(backend.graphCompose(ctx, [[tanh]]));
      throwsCode(
        () => backend.graphCompose(ctx, [[tanh, executable]]),
        "NATIVE_INVALID_ARGUMENT",
        /part 1 is an executable graph/,
      );
      // Refused during a capture, which goes on and ends into a launchable graph.
      backend.captureBegin(ctx, 0n);
      throwsCode(() => backend.graphCompose(ctx, [[tanh]]), "NATIVE_CAPTURE", /capturing/);
      const captured = d.keepGraph(backend.captureEnd(ctx, 0n));
      backend.graphLaunch(ctx, captured, 0n);
      // An empty template, an empty chain, and a copy (a memcpy node) in a child graph.
      const empty = capture(() => {});
      const copy = capture(() => backend.memcpyD2D(ctx, 0n, z, y, 4 * 64));
      const graph = d.keepGraph(backend.graphCompose(ctx, [[empty, tanh, copy], [], [empty]]));
      const data = new Random(BASE_SEED ^ 0x7e).floats(64);
      d.upload(x, data);
      backend.graphLaunch(ctx, graph, 0n);
      expectClose(d.download(z, 64), data.map(Math.tanh), 1e-6, "tanh, then copied");
    } finally {
      d.close();
    }
  },
);

gpuTest("braid_graph_compose refuses raw misuse as the CPU backend does", () => {
  composeRawArguments("cuda");
});

gpuTest("events time device work and report incomplete use", () => {
  const d = new Device(cuda());
  try {
    const { backend, ctx } = d;
    const [e0, e1] = [d.event(), d.event()];
    throwsCode(() => backend.eventElapsed(ctx, e0, e1), "NATIVE_INVALID_ARGUMENT", /recorded/);
    const x = d.alloc(1 << 22), y = d.alloc(1 << 22);
    backend.eventRecord(ctx, e0, 0n);
    d.op("braid_unary", "unary", { count: 1 << 22, kind: 5, act_min: 0, act_max: 0 }, [x, y]);
    backend.eventRecord(ctx, e1, 0n);
    backend.streamSynchronize(ctx, 0n);
    const ms = backend.eventElapsed(ctx, e0, e1);
    assert.ok(ms > 0 && ms < 1000, `elapsed ${ms} ms`);
  } finally {
    d.close();
  }
});

gpuTest("timing records in a capture time each replay's parts", () => {
  const d = new Device(cuda());
  try {
    const { backend, ctx } = d;
    const marks = [d.event(), d.event(), d.event()];
    const x = d.alloc(1 << 22), y = d.alloc(1 << 22);
    const unary = (count: number) =>
      d.op("braid_unary", "unary", { count, kind: 5, act_min: 0, act_max: 0 }, [x, y]);
    // Two parts, the second four times the first's work; one graph, replayed twice.
    backend.captureBegin(ctx, 0n);
    backend.eventRecordTiming(ctx, marks[0], 0n);
    unary(1 << 20);
    backend.eventRecordTiming(ctx, marks[1], 0n);
    unary(1 << 22);
    backend.eventRecordTiming(ctx, marks[2], 0n);
    const graph = backend.captureEnd(ctx, 0n);
    try {
      for (let replay = 0; replay < 2; replay++) {
        backend.graphLaunch(ctx, graph, 0n);
        backend.streamSynchronize(ctx, 0n);
        const [small, large] = [0, 1].map((k) => backend.eventElapsed(ctx, marks[k], marks[k + 1]));
        assert.ok(small > 0 && large > small, `parts ${small} and ${large} ms (replay ${replay})`);
      }
    } finally {
      // Freed whatever failed above: a graph left alive would make the device's close throw, and
      // that error would hide the failure's own.
      backend.graphDestroy(ctx, graph);
    }
  } finally {
    d.close();
  }
});
