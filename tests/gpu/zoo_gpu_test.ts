/**
 * Every zoo model end to end on the CUDA backend against the CPU backend, on a fresh random
 * input: strict fp32 (precision "fp32") within 1e-5, PyTorch's default numerics (TF32 in
 * convolutions) within 3e-3, and eager issue equal to graph replay.
 *
 * The fp32 bound is the op-level one: every kernel on both backends rounds in fp32 but sums in a
 * different order, and a whole network only accumulates those ~1e-7 differences; the figures
 * each run measures are printed beside the bound.
 */
import { Session } from "../../mod.ts";
import { type Graph, numel } from "../../lib/ir/graph.ts";
import { buildZooModel, zooNames } from "../../lib/models/index.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";
import { expectClose, gpuSuite, relativeError } from "./gpu.ts";
import { caseSeed, rerunHint } from "../helpers.ts";

const gpuTest = gpuSuite("zoo_gpu_test.ts");

const FP32_TOLERANCE = 1e-5;
const TF32_TOLERANCE = 3e-3;

/** Fresh inputs for every graph input: floats in [0, 1), int32 ids within the table they index. */
function inputsFor(graph: Graph, rng: Random): Record<string, Float32Array | Int32Array> {
  const feeds: Record<string, Float32Array | Int32Array> = {};
  for (const name of graph.inputs) {
    const value = graph.values.get(name)!;
    const count = numel(value.shape);
    if (value.dtype !== "int32") {
      feeds[name] = rng.floats(count, 0, 1);
      continue;
    }
    // The smallest axis any Gather indexes with this input.
    let limit = Infinity;
    for (const node of graph.nodes) {
      if (node.op !== "Gather" || node.inputs[1] !== name) continue;
      const data = graph.values.get(node.inputs[0])!.shape;
      const axis = (node.attrs as { axis: number }).axis;
      limit = Math.min(limit, data[axis < 0 ? axis + data.length : axis]);
    }
    if (!Number.isFinite(limit)) limit = 1;
    feeds[name] = Int32Array.from({ length: count }, () => rng.int(0, limit - 1));
  }
  return feeds;
}

for (const name of zooNames()) {
  gpuTest(
    `zoo ${name}: CUDA matches the CPU backend (fp32, default precision, eager)`,
    async () => {
      const graph = buildZooModel(name);
      const where = `${name} ${rerunHint(name)}`;
      const feeds = inputsFor(graph, new Random(caseSeed(name)));

      using cpu = await Session.create(graph, { device: "cpu" });
      const want = cpu.runSync(feeds);

      using fp32 = await Session.create(graph, { device: "cuda", precision: "fp32" });
      assert.equal(fp32.report().device.backend, "cuda");
      const got = fp32.runSync(feeds);
      using eager = await Session.create(graph, { device: "cuda", precision: "fp32", eager: true });
      const eagerOut = eager.runSync(feeds);
      using tf32 = await Session.create(graph, { device: "cuda" });
      const tf32Out = tf32.runSync(feeds);

      let fp32Error = 0, tf32Error = 0;
      for (const output of graph.outputs) {
        fp32Error = Math.max(
          fp32Error,
          expectClose(got[output], want[output], FP32_TOLERANCE, `${where} fp32 "${output}"`),
        );
        const eagerVsGraph = relativeError(eagerOut[output], got[output]);
        assert.deepEqual(
          eagerOut[output],
          got[output],
          `${where} "${output}": eager differs from graph replay (${eagerVsGraph})`,
        );
        tf32Error = Math.max(
          tf32Error,
          expectClose(
            tf32Out[output],
            want[output],
            TF32_TOLERANCE,
            `${where} default precision (TF32 convolutions) "${output}"`,
          ),
        );
      }
      const r = tf32.report();
      console.log(
        `  ${name}: fp32 error ${fp32Error.toExponential(2)}, TF32 error ` +
          `${tf32Error.toExponential(2)}, eager = graph; ${r.kernelLaunches} launches, ` +
          `${r.tuning.measured} convs tuned (${r.tuning.cached} cached, ${r.tuning.engines} on ` +
          `cuDNN engine configurations)`,
      );
    },
  );
}
