/**
 * The CUDA backend's convolution algorithm ids as TypeScript reads them (ffi/conv_algorithms.ts)
 * against their C definition (csrc/cuda/conv_engine.cuh): the same constants, ids that round-trip,
 * and ranges refused.
 */
import { assert } from "./deps.ts";
import { ENGINE_BASE, engineAlgorithm, engineOf } from "../ffi/conv_algorithms.ts";

const header = await Deno.readTextFile(
  new URL("../csrc/cuda/conv_engine.cuh", import.meta.url).pathname,
);
const constant = (name: string) => {
  const m = header.match(new RegExp(`constexpr int ${name} = (\\d+);`));
  assert.ok(m, `${name} is not defined in conv_engine.cuh`);
  return Number(m[1]);
};

Deno.test("engine ids are encoded as conv_engine.cuh encodes them", () => {
  assert.equal(constant("ENGINE_BASE"), ENGINE_BASE);
  const ranks = constant("ENGINE_RANKS"), maxTarget = constant("ENGINE_MAX_TARGET");
  assert.match(
    header,
    /ENGINE_BASE \+ e\.rank \+ ENGINE_RANKS \* \(e\.fused \? 1 : 0\) \+ 2 \* ENGINE_RANKS \* e\.sm_target/,
  );
  for (const fused of [false, true]) {
    for (const rank of [0, 1, ranks - 1]) {
      for (const smTarget of [0, 16, 32, 132, maxTarget]) {
        const id = engineAlgorithm({ fused, rank, smTarget });
        assert.equal(id, ENGINE_BASE + rank + ranks * Number(fused) + 2 * ranks * smTarget);
        assert.deepEqual(engineOf(id), { fused, rank, smTarget });
      }
    }
  }
});

Deno.test("legacy algorithm ids are not engines, and out-of-range engines are refused", () => {
  for (const id of [-1, 0, 7, 8, 16, 23, 31, 1.5]) assert.equal(engineOf(id), undefined, `${id}`);
  const last = engineAlgorithm({ fused: true, rank: 7, smTarget: constant("ENGINE_MAX_TARGET") });
  assert.ok(engineOf(last));
  assert.equal(engineOf(last + 1), undefined);
  assert.throws(() => engineAlgorithm({ fused: false, rank: 8, smTarget: 0 }), RangeError);
  assert.throws(() => engineAlgorithm({ fused: false, rank: 0, smTarget: -1 }), RangeError);
  const beyond = constant("ENGINE_MAX_TARGET") + 1;
  assert.throws(() => engineAlgorithm({ fused: false, rank: 0, smTarget: beyond }), RangeError);
});
