/**
 * Spatial sharing's API under Node: the CPU backend has no partitions (NATIVE_UNSUPPORTED through
 * koffi as through Deno), and launchAsync waits through koffi's async call (the nonblocking
 * entry of the symbol table) and gives what run() gives, also through a Server's queues.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { npm } from "./paths.mjs";

const { BraidError, buildZooModel, Partition, Server, Session } = await import(`${npm}/mod.js`);

test("Partition.create on the CPU backend: NATIVE_UNSUPPORTED", () => {
  assert.throws(
    () => Partition.create({ sms: 16, device: "cpu" }),
    (e) =>
      e instanceof BraidError && e.code === "NATIVE_UNSUPPORTED" &&
      /green contexts/.test(e.message),
  );
  assert.throws(
    () => Partition.create({ sms: 0, device: "cpu" }),
    (e) => e instanceof BraidError && e.code === "BAD_OPTION",
  );
});

test("launchAsync and a Server under Node give run()'s outputs", async () => {
  const graph = buildZooModel("squeezenet1_1");
  const session = await Session.create(graph, { device: "cpu", scheduler: "sequential" });
  try {
    const [input] = session.inputs;
    const [output] = session.outputs;
    const x = Float32Array.from(
      { length: input.shape.reduce((a, b) => a * b, 1) },
      (_, i) => Math.sin(i),
    );
    const want = session.runSync({ [input.name]: x })[output.name];
    session.io.inputs[input.name].set(x);
    await session.launchAsync();
    assert.deepEqual(session.io.outputs[output.name], want);
    const server = new Server([{ name: "squeezenet", session }]);
    const replies = await Promise.all(
      [1, 2, 3].map(() => server.submit("squeezenet", { [input.name]: x })),
    );
    for (const r of replies) assert.deepEqual(r.outputs[output.name], want);
    const report = server.report();
    assert.equal(report.requests, 3);
    assert.ok(report.lanes[0].p99Ms > 0);
  } finally {
    session[Symbol.dispose]();
  }
});
