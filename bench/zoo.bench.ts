/**
 * run() latency of every zoo model at batch 1 on the default device (CUDA when available):
 *   deno bench --allow-all bench/zoo.bench.ts        (or: deno task bench)
 * BRAID_BENCH_MODELS=googlenet,resnet50 narrows the set; BRAID_DEVICE=cpu|cuda forces a device.
 */
import { numel } from "../lib/ir/graph.ts";
import { Random } from "../lib/util/random.ts";
import { buildZooModel, type DeviceOption, Session, zooNames } from "../mod.ts";

const names = Deno.env.get("BRAID_BENCH_MODELS")?.split(",") ?? zooNames();
const device = (Deno.env.get("BRAID_DEVICE") ?? "auto") as DeviceOption;

for (const name of names) {
  const session = await Session.create(buildZooModel(name), { device, batch: 1 });
  const inputs = Object.fromEntries(
    session.inputs.map((v) => [v.name, new Random(1).floats(numel(v.shape), 0, 1)]),
  );
  session.runSync(inputs); // warm-up outside the timed region
  Deno.bench({
    name: `${name} run() batch 1`,
    group: "zoo",
    fn: () => {
      session.runSync(inputs);
    },
  });
}
