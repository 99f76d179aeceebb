/** Every zoo model end to end on the CPU backend: finite, non-constant outputs. */
import { assert } from "./deps.ts";
import { buildZooModel, modelFromBytes, Session, zooNames } from "../mod.ts";
import { encodeModel } from "../lib/format/write.ts";
import { numel } from "../lib/ir/graph.ts";
import { Random } from "../lib/util/random.ts";

for (const name of zooNames()) {
  Deno.test(`zoo ${name} runs end to end on the CPU with finite, non-constant outputs`, async () => {
    const graph = buildZooModel(name);
    // Through the file format, as a user would: write, then load zero-copy.
    using model = modelFromBytes(encodeModel(graph), `${name}.braid`);
    using session = await Session.create(model, { device: "cpu" });
    const [input] = session.inputs;
    const x = new Random(Date.now()).floats(numel(input.shape), 0, 1);
    const logits = (await session.run({ [input.name]: x })).logits as Float32Array;
    assert.equal(logits.length, 1000);
    assert.ok(logits.every(Number.isFinite), "finite");
    const mean = logits.reduce((s, v) => s + v, 0) / logits.length;
    const std = Math.sqrt(logits.reduce((s, v) => s + (v - mean) ** 2, 0) / logits.length);
    assert.ok(std > 1e-3 && std < 1e4, `logits std ${std}`);
    const report = session.report();
    assert.ok(report.arenaBytes < report.noReuseBytes, "the planner reuses memory");
    console.log(
      `${name}: ${report.ops} ops, arena ${(report.arenaBytes / 2 ** 20).toFixed(1)} MiB ` +
        `(no reuse ${(report.noReuseBytes / 2 ** 20).toFixed(1)} MiB), ` +
        `${report.latency.lastMs.toFixed(0)} ms, logits std ${std.toFixed(3)}`,
    );
  });
}
