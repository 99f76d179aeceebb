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
  const model = buildZooModel(name);
  // The default run() (inputs copied into page-locked buffers), and run() copying straight from
  // the caller's arrays, page-locked in place once reused (pinInputs).
  for (const pinInputs of [false, true]) {
    const session = await Session.create(model, { device, batch: 1, pinInputs });
    const inputs = Object.fromEntries(
      session.inputs.map((v) => [v.name, new Random(1).floats(numel(v.shape), 0, 1)]),
    );
    for (let i = 0; i < 2; i++) session.runSync(inputs); // warm-up (and locking) untimed
    Deno.bench({
      name: `${name} run() batch 1${pinInputs ? ", pinInputs" : ""}`,
      group: name,
      baseline: !pinInputs,
      fn: () => {
        session.runSync(inputs);
      },
    });
  }
}
