import { assert } from "./deps.ts";
import { buildDag } from "../lib/analysis/dag.ts";
import { BraidError } from "../lib/errors.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { MemoryPlan, planMemory } from "../lib/memory/planner.ts";
import { HappensBefore, type Schedule, verify } from "../lib/schedule/schedule.ts";
import { sequentialSchedule } from "../lib/schedule/sequential.ts";
import { Random } from "../lib/util/random.ts";
import { randomDag } from "./random_graphs.ts";

/** x → a → {b, c} → d: b and c can run in parallel. */
function diamond(): Graph {
  const b = new GraphBuilder("diamond");
  const a = b.relu(b.input("x", [1, 64]), "a");
  b.output(b.add(b.sigmoid(a, "b"), b.tanh(a, "c"), "d"));
  return b.build();
}

const at = (g: Graph, name: string) => g.nodes.findIndex((n) => n.name === name);

/** a on stream 0; b forked onto stream 1; c on stream 0; d joins. */
function twoStreams(g: Graph): Schedule {
  return {
    scheduler: "hand",
    streams: 2,
    events: 2,
    launches: [
      { node: at(g, "a"), stream: 0, waits: [], record: 0 },
      { node: at(g, "b"), stream: 1, waits: [0], record: 1 },
      { node: at(g, "c"), stream: 0, waits: [] },
      { node: at(g, "d"), stream: 0, waits: [1] },
    ],
  };
}

function expectRace(f: () => void, pattern: RegExp) {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BraidError, String(e));
    assert.equal(e.code, "UNSAFE_SCHEDULE");
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("happens-before follows stream order and event chains", () => {
  const g = diamond();
  const hb = new HappensBefore(twoStreams(g));
  assert.ok(hb.ordered(0, 1)); // a → b by event 0
  assert.ok(hb.ordered(0, 2)); // a → c by stream order
  assert.ok(!hb.ordered(1, 2) && !hb.ordered(2, 1)); // b ∥ c
  assert.ok(hb.ordered(1, 3) && hb.ordered(2, 3)); // both before d
});

Deno.test("verify accepts a correct two-stream schedule with its own plan", () => {
  const g = diamond();
  const schedule = twoStreams(g);
  const plan = planMemory(g, inferShapes(g), schedule);
  verify(g, schedule, plan);
  // b and c run concurrently, so they must not share bytes.
  const [rb, rc] = [plan.storage.get("b")!, plan.storage.get("c")!];
  assert.ok(rb.offset + rb.bytes <= rc.offset || rc.offset + rc.bytes <= rb.offset);
});

Deno.test("verify catches a dropped wait (read-after-write race)", () => {
  const g = diamond();
  const schedule = twoStreams(g);
  const plan = planMemory(g, inferShapes(g), schedule);
  schedule.launches[3].waits = []; // d no longer waits for b
  expectRace(() => verify(g, schedule, plan), /read-after-write race on "b"/);
});

Deno.test("verify catches a buffer reused too early (write-after-read race)", () => {
  const g = diamond();
  const schedule = twoStreams(g);
  const good = planMemory(g, inferShapes(g), schedule);
  // Plant c in b's bytes although b and c are live at the same time.
  const storage = new Map(good.storage);
  storage.set("c", { ...storage.get("c")!, offset: storage.get("b")!.offset });
  const bad = new MemoryPlan({ ...good, storage });
  expectRace(() => verify(g, schedule, bad), /share bytes/);
});

Deno.test("verify catches a wait on an event that is never recorded first", () => {
  const g = diamond();
  const schedule = twoStreams(g);
  const plan = planMemory(g, inferShapes(g), sequentialSchedule(buildDag(g)));
  schedule.launches[1].waits = [1];
  expectRace(() => verify(g, schedule, plan), /before it is recorded/);
});

Deno.test("sequential schedules and plans of 200 random DAGs verify, and reuse memory", () => {
  const random = new Random(11);
  let reused = 0;
  for (let t = 0; t < 200; t++) {
    const g = randomDag(random, random.int(1, 40));
    const schedule = sequentialSchedule(buildDag(g));
    const plan = planMemory(g, inferShapes(g), schedule);
    verify(g, schedule, plan);
    assert.ok(plan.arenaBytes <= plan.noReuseBytes);
    if (plan.arenaBytes < plan.noReuseBytes) reused++;
  }
  assert.ok(reused > 150, `only ${reused} of 200 plans reused memory`);
});

Deno.test("a chain needs only two buffers besides its input, which stays intact", () => {
  const b = new GraphBuilder("chain");
  let v = b.input("x", [1, 1024]);
  for (let i = 0; i < 10; i++) v = b.relu(v, `r${i}`);
  b.output(v);
  const g = b.build();
  const plan = planMemory(g, inferShapes(g), sequentialSchedule(buildDag(g)));
  assert.equal(plan.arenaBytes, 3 * 4096);
  assert.equal(plan.noReuseBytes, 11 * 4096);
  // A replay of the kernels alone copies nothing in: no value may reuse the input's bytes.
  const input = plan.storage.get("x")!;
  for (const [value, r] of plan.storage) {
    if (value === "x") continue;
    assert.ok(r.offset >= input.offset + input.bytes || r.offset + r.bytes <= input.offset, value);
  }
});
