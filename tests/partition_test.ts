/**
 * Spatial sharing without a GPU: the partition API's error paths (the CPU backend, a driver
 * without green contexts as the CPU backend reports it, sizes out of range), asynchronous
 * launches, and the Server's queues and reports. The tuning cache's keying by SM budget is in
 * tuning_test.ts.
 */
import { assert } from "./deps.ts";
import { Backend } from "../ffi/backend.ts";
import { branchyNet, throwsCode, withEnv } from "./helpers.ts";
import { checkPartitionRequest } from "../lib/runtime/partition.ts";
import { percentile } from "../lib/runtime/server.ts";
import { Partition, Server, Session } from "../mod.ts";
import { Random } from "../lib/util/random.ts";

Deno.test("partitions on the CPU backend: NATIVE_UNSUPPORTED, naming what would provide them", async () => {
  const need = /no SM partitions.*CUDA backend.*green contexts/;
  await throwsCode(() => Partition.create({ sms: 16, device: "cpu" }), "NATIVE_UNSUPPORTED", need);
  await throwsCode(() => Partition.query({ sms: 16, device: "cpu" }), "NATIVE_UNSUPPORTED", need);
  await throwsCode(() => Partition.split(2, { sms: 16, device: "cpu" }), "NATIVE_UNSUPPORTED");
  // The raw entry points, as a driver without green contexts answers them (the same status).
  const cpu = Backend.open("cpu");
  await throwsCode(() => cpu.partitionCreate(0, 16, 0, 0), "NATIVE_UNSUPPORTED", /create/);
  await throwsCode(() => cpu.partitionDestroy(0x1000n), "NATIVE_UNSUPPORTED");
  const ctx = cpu.contextCreate(0);
  try {
    cpu.contextSetPartition(ctx, 0n); // the whole device: what a CPU context already is
    await throwsCode(() => cpu.contextSetPartition(ctx, 0x1000n), "NATIVE_UNSUPPORTED");
    await throwsCode(() => cpu.partitionStreamCreate(ctx, 0x1000n), "NATIVE_UNSUPPORTED");
    await throwsCode(() => cpu.smProbe(ctx, 0n), "NATIVE_UNSUPPORTED");
    assert.ok(cpu.streamSms(ctx, 0n) >= 1, "a CPU stream's budget is its threads");
    await cpu.streamWait(ctx, 0n);
    await throwsCode(() => cpu.streamWait(ctx, 0x1000n), "NATIVE_INVALID_HANDLE");
  } finally {
    cpu.contextDestroy(ctx);
  }
});

Deno.test("BRAID_PARTITION_BINDING: streams or current, checked as a context is bound, else a clear error", async () => {
  const cpu = Backend.open("cpu");
  const ctx = cpu.contextCreate(0);
  try {
    for (const value of ["streams", "current", undefined]) {
      await withEnv({ BRAID_PARTITION_BINDING: value }, () => cpu.contextSetPartition(ctx, 0n));
    }
    await withEnv({ BRAID_PARTITION_BINDING: "thread" }, async () => {
      await throwsCode(
        () => cpu.contextSetPartition(ctx, 0n),
        "BAD_OPTION",
        /BRAID_PARTITION_BINDING is "thread"; use streams or current/,
      );
    });
  } finally {
    cpu.contextDestroy(ctx);
  }
});

Deno.test("partition sizes and groups out of range are refused before the device is asked", async () => {
  for (const sms of [0, -8, 1.5, NaN, Infinity]) {
    await throwsCode(() => Partition.create({ sms }), "BAD_OPTION", /positive whole number of SMs/);
    await throwsCode(() => Partition.query({ sms }), "BAD_OPTION");
  }
  for (const group of [-1, 0.5]) {
    await throwsCode(() => Partition.create({ sms: 8, group }), "BAD_OPTION", /group/);
  }
  await throwsCode(() => Partition.split(0, { sms: 8 }), "BAD_OPTION", /count/);
  // Larger than the device: refused with the device's SM count (CUDA checks natively as well).
  await throwsCode(() => checkPartitionRequest({ sms: 133 }, 132), "BAD_OPTION", /132 SMs/);
  checkPartitionRequest({ sms: 132, group: 0 }, 132);
  await throwsCode(
    () => Session.create(branchyNet(), { device: "cpu", smBudget: 0 }),
    "BAD_OPTION",
    /smBudget/,
  );
});

Deno.test("launchAsync() replays on the io buffers like launch(), one call at a time", async () => {
  using s = await Session.create(branchyNet(), { device: "cpu" });
  const x = new Random(11).floats(3 * 12 * 12);
  const want = s.runSync({ x })[s.outputs[0].name];
  s.io.inputs.x.set(x);
  // Two calls at once: the second waits for the first.
  await Promise.all([s.launchAsync(), s.launchAsync()]);
  assert.deepEqual(s.io.outputs[s.outputs[0].name], want);
  assert.equal(s.report().latency.runs, 3);
  assert.equal(s.report().smBudget, s.report().device.multiprocessors);
  // Disposed while a launch is pending: the launch completes, later ones report DISPOSED.
  const pending = s.launchAsync();
  s[Symbol.dispose]();
  await pending.catch(() => {});
  await throwsCode(() => s.launchAsync(), "DISPOSED");
});

Deno.test("Server: queued requests per session, outputs as run() gives them, p50/p99 and throughput", async () => {
  using a = await Session.create(branchyNet("a"), { device: "cpu" });
  using b = await Session.create(branchyNet("b"), { device: "cpu" });
  for (const exclusive of [false, true]) {
    const server = new Server([{ name: "a", session: a }, { name: "b", session: b }], {
      exclusive,
    });
    const inputs = Array.from({ length: 6 }, (_, i) => new Random(100 + i).floats(3 * 12 * 12));
    const want = inputs.map((x) => a.runSync({ x })[a.outputs[0].name]);
    server.reset();
    const replies = await Promise.all(
      inputs.flatMap((x) => [server.submit("a", { x }), server.submit("b", { x })]),
    );
    replies.filter((_, i) => i % 2 === 0).forEach((r, i) => {
      assert.deepEqual(r.outputs[a.outputs[0].name], want[i]);
      assert.ok(r.latencyMs >= 0);
    });
    const report = server.report();
    assert.equal(report.requests, 12);
    assert.deepEqual(report.lanes.map((l) => [l.name, l.requests]), [["a", 6], ["b", 6]]);
    for (const lane of report.lanes) {
      assert.ok(lane.p50Ms > 0 && lane.p99Ms >= lane.p50Ms && lane.throughput > 0, `${lane.name}`);
      assert.equal(lane.partition, undefined);
    }
    assert.ok(Math.abs(report.throughput - report.lanes[0].throughput * 2) < 1e-6);
    // A bad request fails alone; the lane goes on.
    await throwsCode(() => server.submit("a", { x: new Float32Array(3) }), "INPUT_SIZE");
    await throwsCode(() => server.submit("nope", {}), "BAD_OPTION", /no session named "nope"/);
    assert.ok((await server.submit("a", { x: inputs[0] })).outputs);
    await server.close();
    await throwsCode(() => server.submit("a", { x: inputs[0] }), "DISPOSED");
  }
  await throwsCode(() => new Server([]), "BAD_OPTION");
  await throwsCode(
    () => new Server([{ name: "a", session: a }, { name: "b", session: a }]),
    "BAD_OPTION",
    /its own session/,
  );
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
});
