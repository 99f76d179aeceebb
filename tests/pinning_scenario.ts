/**
 * run() on caller arrays page-locked in place (SessionOptions.pinInputs), as one scenario each
 * backend runs (tests/input_pinning_test.ts on the CPU, tests/gpu/native_gpu_test.ts on CUDA):
 * locking on second use, the copy straight from the caller's memory, reuse of the arrays' current
 * contents, two arrays kept, and everything unlocked when the session goes.
 */
import { assert } from "./deps.ts";
import { Backend, type Handle } from "../ffi/backend.ts";
import type { BackendKind } from "../ffi/library.ts";
import { type HostTensor, Session, type SessionOptions } from "../mod.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { Random } from "../lib/util/random.ts";

/** Calls of Backend.hostRegister / hostUnregister while `f` runs, by every backend. */
export async function countLocks<T>(
  f: () => Promise<T>,
): Promise<{ result: T; locked: number; unlocked: number; live: Set<Handle> }> {
  const proto = Backend.prototype;
  const { hostRegister, hostUnregister } = proto;
  const counts = { locked: 0, unlocked: 0, live: new Set<Handle>() };
  proto.hostRegister = function (...args) {
    const address = hostRegister.apply(this, args);
    counts.locked++;
    counts.live.add(address);
    return address;
  };
  proto.hostUnregister = function (ctx, address) {
    hostUnregister.call(this, ctx, address);
    counts.unlocked++;
    counts.live.delete(address);
  };
  try {
    return { result: await f(), ...counts };
  } finally {
    proto.hostRegister = hostRegister;
    proto.hostUnregister = hostUnregister;
  }
}

/**
 * Runs `graph` (one float input) on `device` with pinInputs on and off, on the same arrays, and
 * checks the two agree bit for bit call by call while the arrays are reused, rewritten and
 * replaced. `options`: the two sessions' other options (eager, partition).
 */
export async function pinningScenario(
  device: BackendKind,
  graph: Graph,
  options: SessionOptions = {},
) {
  const [input] = graph.inputs;
  const [output] = graph.outputs;
  const { locked, unlocked, live } = await countLocks(async () => {
    using pinned = await Session.create(graph, { ...options, device, pinInputs: true });
    using copied = await Session.create(graph, { ...options, device });
    const size = pinned.inputs[0].shape.reduce((a, b) => a * b, 1);
    const random = new Random(7);
    // Views a page or more apart and from the buffer's ends (64 KiB: the largest page size of a
    // Linux host), as memory sharing a page with locked memory cannot be locked.
    const page = 65536;
    const stride = Math.ceil((4 * size + page) / page) * page;
    const pages = new ArrayBuffer(3 * stride + page);
    const arrays = [0, 1, 2].map((i) => new Float32Array(pages, page + i * stride, size));
    arrays.forEach((a) => a.set(random.floats(size)));
    const check = (x: HostTensor, why: string) => {
      const got = pinned.runSync({ [input]: x })[output];
      const want = copied.runSync({ [input]: x })[output];
      assert.deepEqual(got, want, why);
    };
    check(arrays[0], "first use: copied through io.inputs");
    check(arrays[0], "second use: locked, copied straight from it");
    arrays[0].set(random.floats(size));
    check(arrays[0], "a locked array's new contents are what run() reads");
    // Three arrays in turn: two stay locked, the third is copied (none is idle long enough to be
    // displaced), so nothing is locked and unlocked over and over.
    for (let i = 0; i < 9; i++) check(arrays[i % 3], `array ${i % 3} in turn`);
    check(random.floats(size), "a fresh array is copied");
    const viaIo = pinned.io.inputs[input];
    viaIo.set(arrays[1]);
    check(viaIo, "io.inputs is used in place");
  });
  assert.equal(locked, 2, "two of the three arrays were locked, on their second use");
  assert.equal(live.size, 0, "the session's release unlocked every array");
  assert.equal(unlocked, locked);
}
