/**
 * Every scheduler on the CUDA backend, as one multi-stream captured graph, against the sequential
 * graph on the same device: with the operator merge off, the same kernels run with the same
 * algorithms (one tuning cache), so the outputs must be bit-identical. opara and ios time ops and stages on the device while scheduling, and the report says how many (auto
 * then reuses them from the tuning cache the sessions share).
 */
import { Session, TuningCache } from "../../mod.ts";
import { buildZooModel } from "../../lib/models/index.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";
import { BASE_SEED, gpuSuite, hash } from "./gpu.ts";

const gpuTest = gpuSuite("schedulers_gpu_test.ts");

for (const model of ["googlenet", "inception_v3"]) {
  gpuTest(
    `${model}: every scheduler's multi-stream graph matches the sequential graph`,
    async () => {
      const graph = buildZooModel(model);
      const tuning = new TuningCache();
      const rng = new Random(BASE_SEED ^ hash(model));
      const input = rng.floats(3 * 299 * 299, 0, 1);
      const common = { device: "cuda", precision: "fp32", tuning, merge: false } as const;
      const runWith = async (scheduler: "sequential" | "opara" | "nimble" | "ios" | "auto") => {
        using session = await Session.create(graph, { ...common, scheduler });
        const name = session.inputs[0].name;
        const count = session.inputs[0].shape.reduce((a, b) => a * b, 1);
        const out = await session.run({ [name]: input.subarray(0, count) });
        return { out: Object.values(out)[0] as Float32Array, report: session.report() };
      };
      const sequential = await runWith("sequential");
      for (const scheduler of ["opara", "nimble", "ios", "auto"] as const) {
        const { out, report } = await runWith(scheduler);
        if (scheduler !== "auto") {
          assert(report.streams > 1, `${model} ${scheduler}: ${report.streams} stream(s)`);
        }
        assert.deepEqual(
          out,
          sequential.out,
          `${model} ${report.scheduler}: differs from sequential`,
        );
        // auto finds the op times and stage costs opara and ios left in the shared tuning cache.
        if (scheduler === "opara" || scheduler === "ios") {
          assert(
            report.stages.measured >= report.kernelLaunches,
            `${model} ${scheduler}: ${report.stages.measured} stages timed on the device`,
          );
        }
        console.log(
          `  ${model} ${report.scheduler}: ${report.streams} streams, ` +
            `${report.stages.measured} ops/stages timed in ${report.stages.ms.toFixed(0)} ms`,
        );
      }
    },
  );
}
