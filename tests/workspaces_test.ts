/** Conv workspaces across streams: shared only between ordered launches, and few of them. */
import { assert } from "./deps.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { planWorkspaces } from "../lib/memory/workspaces.ts";
import { buildZooModel } from "../lib/models/index.ts";
import { optimize } from "../lib/passes/mod.ts";
import { makeSchedule, scheduleContext } from "../lib/schedule/mod.ts";
import { HappensBefore, type Schedule } from "../lib/schedule/schedule.ts";

for (const model of ["googlenet", "inception_v3", "nasnet_large"]) {
  Deno.test(`${model}: opara's convolutions share workspaces only when ordered`, async () => {
    const graph = optimize(buildZooModel(model));
    const ctx = scheduleContext(graph, inferShapes(graph, 1));
    const schedule = (await makeSchedule("opara", ctx)) as Schedule;
    // Every conv launch needs some scratch; sizes vary so the slots' maxima are checked too.
    const need = new Map<number, number>();
    schedule.launches.forEach((l, i) => {
      if (graph.nodes[l.node].op === "Conv2d") need.set(i, 1024 * (1 + (l.node % 7)));
    });
    const plan = planWorkspaces(schedule, need);
    const order = new HappensBefore(schedule);
    const members = plan.bytes.map(() => [] as number[]);
    for (const [launch, slot] of plan.slotOf) members[slot].push(launch);
    assert.equal(plan.slotOf.size, need.size, "every conv has a workspace");
    members.forEach((list, slot) => {
      for (let a = 0; a < list.length; a++) {
        for (let b = a + 1; b < list.length; b++) {
          const [x, y] = [list[a], list[b]];
          assert.ok(order.ordered(x, y) || order.ordered(y, x), `slot ${slot}: ${x} ‖ ${y}`);
        }
      }
      assert.equal(plan.bytes[slot], Math.max(...list.map((l) => need.get(l)!)));
    });
    assert.ok(
      plan.bytes.length < schedule.streams,
      `${plan.bytes.length} workspaces for ${schedule.streams} streams`,
    );
    console.log(`${model}: ${schedule.streams} streams, ${plan.bytes.length} workspaces`);
  });
}
