/** Every zoo model end to end on the CPU backend: finite, non-constant outputs. */
import { assert } from "./deps.ts";
import { buildZooModel, modelFromBytes, Session, zooNames } from "../mod.ts";
import { encodeModel } from "../lib/format/write.ts";
import { randomInputs } from "../lib/cli/run.ts";
import { caseSeed, rerunHint } from "./helpers.ts";

for (const name of zooNames()) {
  Deno.test(`zoo ${name} runs end to end on the CPU with finite, non-constant outputs`, async () => {
    const graph = buildZooModel(name);
    // Through the file format, as a user would: write, then load zero-copy.
    using model = modelFromBytes(encodeModel(graph), `${name}.braid`);
    using session = await Session.create(model, { device: "cpu" });
    const outputs = await session.run(randomInputs(session, caseSeed(`zoo ${name}`)));
    const hint = rerunHint(`zoo ${name}`);
    for (const { name: output, shape } of session.outputs) {
      const data = Float64Array.from(outputs[output]);
      assert.equal(data.length, shape.reduce((a, b) => a * b, 1));
      assert.ok(data.every(Number.isFinite), `${output} is finite ${hint}`);
      const mean = data.reduce((s, v) => s + v, 0) / data.length;
      const std = Math.sqrt(data.reduce((s, v) => s + (v - mean) ** 2, 0) / data.length);
      assert.ok(std > 1e-3 && std < 1e4, `${output} std ${std} ${hint}`);
      console.log(`${name}.${output}: std ${std.toFixed(3)}`);
    }
    const report = session.report();
    assert.ok(report.arenaBytes < report.noReuseBytes, "the planner reuses memory");
    console.log(
      `${name}: ${report.ops} ops, arena ${(report.arenaBytes / 2 ** 20).toFixed(1)} MiB ` +
        `(no reuse ${(report.noReuseBytes / 2 ** 20).toFixed(1)} MiB), ` +
        `${report.latency.lastMs.toFixed(0)} ms`,
    );
  });
}
