/** The tuning cache: keys, file round trip, bad files; and the conv tuning entry point on CPU. */
import { assert } from "./deps.ts";
import { Backend, type DeviceInfo } from "../ffi/backend.ts";
import { encodeRecord } from "../ffi/params.ts";
import { BraidError } from "../lib/errors.ts";
import { TuningCache } from "../lib/runtime/tuning.ts";

const h200: DeviceInfo = {
  name: "NVIDIA H200",
  backend: "cuda",
  multiprocessors: 132,
  totalMemory: 0,
  freeMemory: 0,
  computeCapability: 90,
  l2Bytes: 0,
  runtimeVersion: 13000,
  libraryVersion: 91400,
};

Deno.test("tuning keys separate devices, SM budgets and library versions", () => {
  const sig = JSON.stringify({ n: 1, c: 64 });
  const keys = new Set([
    TuningCache.key(h200, 132, "conv2d", sig),
    TuningCache.key(h200, 32, "conv2d", sig),
    TuningCache.key({ ...h200, name: "NVIDIA H100" }, 132, "conv2d", sig),
    TuningCache.key({ ...h200, libraryVersion: 91000 }, 132, "conv2d", sig),
    TuningCache.key(h200, 132, "conv2d", JSON.stringify({ n: 2, c: 64 })),
  ]);
  assert.equal(keys.size, 5);
});

Deno.test("tuning cache round-trips through a file and rejects bad ones", async () => {
  const cache = new TuningCache();
  cache.set(TuningCache.key(h200, 16, "conv2d", "{}"), {
    algorithm: 6,
    workspaceBytes: 4096,
    ms: 0.01,
  });
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await cache.save(path);
  const back = await TuningCache.load(path);
  assert.deepEqual(back.toJSON(), cache.toJSON());
  assert.equal((await TuningCache.load(`${path}.missing`)).size, 0);
  await Deno.writeTextFile(path, "{not json");
  await assert.rejects(() => TuningCache.load(path), BraidError);
  await Deno.writeTextFile(
    path,
    JSON.stringify({ format: "braid-tuning/1", entries: { k: { algorithm: "x" } } }),
  );
  await assert.rejects(() => TuningCache.load(path), /bad entry "k"/);
  await Deno.remove(path);
});

Deno.test("braid_conv2d_tune on the CPU backend reports its one algorithm", () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  const buffers: bigint[] = [];
  try {
    const alloc = (n: number) => {
      const a = backend.bufferAlloc(ctx, n * 4);
      buffers.push(a);
      backend.memcpyH2D(ctx, 0n, a, new Float32Array(n).map(() => Math.random()));
      return a;
    };
    const params = encodeRecord("conv2d", {
      n: 1,
      c: 8,
      h: 10,
      w: 10,
      k: 4,
      oh: 10,
      ow: 10,
      kh: 3,
      kw: 3,
      stride_h: 1,
      stride_w: 1,
      pad_top: 1,
      pad_left: 1,
      dilation_h: 1,
      dilation_w: 1,
      groups: 1,
      activation: 0,
      act_min: 0,
      act_max: 0,
      algorithm: -1,
      workspace_bytes: 0,
      allow_tf32: 1,
    });
    const choice = backend.conv2dTune(ctx, 0n, params, [
      alloc(800),
      alloc(288),
      0n,
      0n,
      alloc(400),
      0n,
    ]);
    assert.equal(choice.algorithm, 0);
    assert.equal(choice.workspaceBytes, 0);
    assert.ok(choice.ms >= 0);
    assert.throws(
      () => backend.conv2dTune(ctx, 0n, params, [0n, 0n, 0n, 0n, 0n, 0n]),
      (e: unknown) => e instanceof BraidError && e.code === "NATIVE_INVALID_ARGUMENT",
    );
  } finally {
    for (const b of buffers) backend.bufferFree(ctx, b);
    backend.contextDestroy(ctx);
  }
});
