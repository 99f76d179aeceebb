/**
 * Caller arrays page-locked in place by run() (lib/runtime/input_pinning.ts) on the CPU backend,
 * which keeps registrations as CUDA does (process-wide, by whole pages), and the raw entry points.
 */
import { assert } from "./deps.ts";
import { Backend } from "../ffi/backend.ts";
import { Session } from "../mod.ts";
import { Random } from "../lib/util/random.ts";
import { assertRoundTrip, smallNet, throwsCode } from "./helpers.ts";
import { countLocks, pinningScenario } from "./pinning_scenario.ts";

Deno.test("run() copies reused arrays straight from them, as it computes them copied", async () => {
  await pinningScenario("cpu", smallNet());
  await pinningScenario("cpu", smallNet(), { eager: true });
});

Deno.test("arrays that cannot be locked are copied: fresh, resizable, locked elsewhere", async () => {
  const g = smallNet();
  const size = 3 * 16 * 16;
  const random = new Random(3);
  const { locked, live } = await countLocks(async () => {
    using a = await Session.create(g, { device: "cpu" });
    using b = await Session.create(g, { device: "cpu" });
    using off = await Session.create(g, { device: "cpu", pinInputs: false });
    const [out] = g.outputs;
    const want = (x: Float32Array) => off.runSync({ x })[out];
    for (let i = 0; i < 3; i++) {
      const x = random.floats(size);
      assert.deepEqual(a.runSync({ x })[out], want(x), "a fresh array each call");
    }
    const resizable = new Float32Array(new ArrayBuffer(4 * size, { maxByteLength: 8 * size }));
    resizable.set(random.floats(size));
    for (let i = 0; i < 3; i++) assert.deepEqual(a.runSync({ x: resizable })[out], want(resizable));
    const shared = random.floats(size);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(a.runSync({ x: shared })[out], want(shared));
      assert.deepEqual(b.runSync({ x: shared })[out], want(shared), "locked by the other session");
    }
    for (let i = 0; i < 3; i++) off.runSync({ x: shared });
  });
  assert.equal(locked, 1, "only the shared array, by the first session to reuse it");
  assert.equal(live.size, 0);
});

Deno.test("a locked array whose buffer is transferred is unlocked at the next run()", async () => {
  const g = smallNet();
  const random = new Random(5);
  const counts = await countLocks(async () => {
    using s = await Session.create(g, { device: "cpu" });
    const x = random.floats(3 * 16 * 16);
    s.runSync({ x });
    s.runSync({ x });
    const moved = new Float32Array((x.buffer as ArrayBuffer).transfer());
    assert.equal(x.length, 0, "detached");
    const fresh = random.floats(moved.length);
    s.runSync({ x: fresh });
  });
  assert.equal(counts.locked, 1);
  assert.equal(counts.unlocked, 1);
});

Deno.test("braid_host_register: page-locks once, refuses overlaps, and blocks context destroy", async () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  const data = new Float32Array(4096).fill(1.5);
  const address = backend.hostRegister(ctx, data);
  try {
    assert.ok(address > 0n);
    // Twice, or a range sharing a page with it: refused, as CUDA refuses it.
    await throwsCode(() => backend.hostRegister(ctx, data), "NATIVE_INVALID_ARGUMENT", /page-lock/);
    await throwsCode(
      () => backend.hostRegister(ctx, data.subarray(1000, 2000)),
      "NATIVE_INVALID_ARGUMENT",
    );
    await throwsCode(
      () => backend.hostRegister(ctx, new Float32Array(0)),
      "NATIVE_INVALID_ARGUMENT",
    );
    await throwsCode(() => backend.contextDestroy(ctx), "NATIVE_INVALID_ARGUMENT", /registrations/);
    // Copies from it as from any host memory.
    assertRoundTrip(backend, ctx, data);
    await throwsCode(() => backend.hostUnregister(ctx, address + 4n), "NATIVE_INVALID_ARGUMENT");
  } finally {
    backend.hostUnregister(ctx, address);
  }
  await throwsCode(() => backend.hostUnregister(ctx, address), "NATIVE_INVALID_ARGUMENT", /0x/);
  const again = backend.hostRegister(ctx, data);
  backend.hostUnregister(ctx, again);
  backend.contextDestroy(ctx);
});
