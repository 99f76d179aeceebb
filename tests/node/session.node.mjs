/**
 * The npm package under Node, on the CPU backend through koffi: googlenet from the zoo file gives
 * the same output bytes as the same run in Deno (tests/node/expected.ts), for each schedule.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { expected, fixtures, npm, readFloats } from "./paths.mjs";

const { loadModel, Session } = await import(`${npm}/mod.js`);
const { RUNTIME } = await import(`${npm}/lib/platform.js`);
const want = await expected();

test("the package picks its Node implementations", () => {
  assert.equal(RUNTIME, "node");
});

for (const run of want.runs) {
  test(`googlenet, ${run.scheduler} schedule: Node's output is Deno's, bit for bit`, async () => {
    const model = await loadModel(want.model);
    const session = await Session.create(model, { device: "cpu", scheduler: run.scheduler });
    try {
      const input = await readFloats(`${fixtures}/${want.input.file}`);
      const outputs = await session.run({ [want.input.name]: input });
      const got = outputs[run.output];
      const reference = await readFloats(`${fixtures}/${run.file}`);
      assert.equal(got.length, reference.length);
      const differ = got.filter((v, i) => !Object.is(v, reference[i])).length;
      const bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      assert.ok(
        Buffer.compare(bytes(got), bytes(reference)) === 0,
        `${differ} of ${got.length} values differ from Deno's`,
      );
      const { scheduler, ops, kernelLaunches, streams, events, arenaBytes, weightBytes } = session
        .report();
      assert.deepEqual(
        { scheduler, ops, kernelLaunches, streams, events, arenaBytes, weightBytes },
        run.report,
      );
      assert.equal(session.report().device.backend, "cpu");
    } finally {
      session[Symbol.dispose]();
    }
  });
}

test("googlenet with pinInputs: the same array reused, locked in place, gives Deno's output", async () => {
  const run = want.runs[0];
  const model = await loadModel(want.model);
  const session = await Session.create(model, {
    device: "cpu",
    scheduler: run.scheduler,
    pinInputs: true,
  });
  try {
    const input = await readFloats(`${fixtures}/${want.input.file}`);
    const reference = await readFloats(`${fixtures}/${run.file}`);
    // The second and third runs copy straight from `input` (koffi passes its bytes in place).
    for (let i = 0; i < 3; i++) {
      const got = (await session.run({ [want.input.name]: input }))[run.output];
      assert.deepEqual(got, reference, `run ${i + 1}`);
    }
  } finally {
    session[Symbol.dispose]();
  }
});
