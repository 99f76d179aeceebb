/** In-place concatenation: producers write straight into their slice of a Concat's output. */
import { assert } from "./deps.ts";
import { throwsCode } from "./helpers.ts";
import { Session } from "../mod.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { MemoryPlan, planMemory } from "../lib/memory/planner.ts";
import { buildZooModel } from "../lib/models/index.ts";
import { optimize } from "../lib/passes/mod.ts";
import { makeSchedule, scheduleContext } from "../lib/schedule/mod.ts";
import { type Schedule, verify } from "../lib/schedule/schedule.ts";
import { sequentialSchedule } from "../lib/schedule/sequential.ts";
import { buildDag } from "../lib/analysis/dag.ts";
import { Random } from "../lib/util/random.ts";

const concatsOf = (g: ReturnType<typeof optimize>) => g.nodes.filter((n) => n.op === "Concat");

for (const model of ["googlenet", "inception_v3", "densenet121", "squeezenet1_1"]) {
  Deno.test(`${model}: every Concat is done in place at batch 1, none at batch 2`, async () => {
    const g = optimize(buildZooModel(model));
    const concats = concatsOf(g).length;
    for (const batch of [1, 2]) {
      const shapes = inferShapes(g, batch);
      const schedule = (await makeSchedule("opara", scheduleContext(g, shapes))) as Schedule;
      const plan = planMemory(g, shapes, schedule);
      verify(g, schedule, plan);
      // At batch 2 a channel slice is not contiguous, so every Concat keeps its kernel.
      assert.equal(plan.elided.size, batch === 1 ? concats : 0, `${model} batch ${batch}`);
    }
  });
}

// Inception's branch concats nest inside the block's; DenseNet's concats are prefixes of the last.
for (const model of ["inception_v3", "densenet121"]) {
  Deno.test(`${model} on the CPU: in-place concats give the copying run's bytes, fewer kernels`, async () => {
    const graph = buildZooModel(model);
    const input = new Random(3).floats(3 * 299 * 299);
    const run = async (concatInPlace: boolean) => {
      using session = await Session.create(graph, { device: "cpu", concatInPlace });
      const feed = input.subarray(0, session.inputs[0].shape.reduce((a, b) => a * b, 1));
      const out = Object.values(session.runSync({ [session.inputs[0].name]: feed }))[0];
      return { out, kernels: session.report().kernelLaunches };
    };
    const copying = await run(false), inPlace = await run(true);
    assert.deepEqual(inPlace.out, copying.out);
    assert.equal(copying.kernels - inPlace.kernels, concatsOf(optimize(graph)).length);
  });
}

/** Two branches joined by a Concat whose output feeds one more op. */
function branches() {
  const b = new GraphBuilder("branches");
  const x = b.input("x", [1, 8]);
  const cat = b.concat([b.relu(x, "a"), b.tanh(x, "b")], 1, "cat");
  b.output(b.sigmoid(cat, "out"));
  return b.build();
}

Deno.test("verify catches an in-place concat input moved off its slice", async () => {
  const g = branches();
  const schedule = sequentialSchedule(buildDag(g));
  const good = planMemory(g, inferShapes(g), schedule);
  assert.deepEqual([...good.elided], ["cat"]);
  const aliases = new Map(good.aliases);
  aliases.set("b", { ...aliases.get("b")!, offset: 0 }); // b over a's slice
  const bad = new MemoryPlan({ ...good, aliases });
  await throwsCode(() => verify(g, schedule, bad), "UNSAFE_SCHEDULE", /not at its slice/);
});

Deno.test("verify catches an input written in place while the concat still copies", async () => {
  const g = branches();
  const schedule = sequentialSchedule(buildDag(g));
  const good = planMemory(g, inferShapes(g), schedule);
  // The copy kernel would read "a" from the very bytes it writes: a's writer and cat's overlap.
  const bad = new MemoryPlan({ ...good, elided: new Set() });
  await throwsCode(() => verify(g, schedule, bad), "UNSAFE_SCHEDULE", /overlapping bytes/);
});

Deno.test("a Concat of a graph input or of one value twice keeps its kernel", () => {
  const b = new GraphBuilder("copies");
  const x = b.input("x", [1, 8]);
  const r = b.relu(x, "r");
  b.output(b.concat([x, r], 1, "with_input"));
  b.output(b.concat([r, r], 1, "twice"));
  const g = b.build();
  const schedule = sequentialSchedule(buildDag(g));
  const plan = planMemory(g, inferShapes(g), schedule);
  verify(g, schedule, plan);
  assert.equal(plan.elided.size, 0);
});
