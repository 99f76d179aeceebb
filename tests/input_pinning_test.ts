/**
 * Caller arrays page-locked in place by run() (lib/runtime/input_pinning.ts) on the CPU backend,
 * which keeps registrations as CUDA does (process-wide, by whole pages, allocations included):
 * sessions against the copying path, the policy on its own, detached buffers, the raw entries.
 */
import { assert } from "./deps.ts";
import { Backend } from "../ffi/backend.ts";
import { Session } from "../mod.ts";
import { InputPinning } from "../lib/runtime/input_pinning.ts";
import { Resources } from "../lib/runtime/resources.ts";
import { Random } from "../lib/util/random.ts";
import { assertRoundTrip, smallNet, throwsCode } from "./helpers.ts";
import { countLocks, pinningScenario } from "./pinning_scenario.ts";

/** The largest page size of a Linux host. */
const PAGE = 65536;

/**
 * `count` arrays of `size` floats, each in pages of its own: views of one buffer, a page or more
 * apart and from its ends (memory sharing a page with locked memory cannot be locked).
 */
function apart(count: number, size: number, seed = 1): Float32Array[] {
  const stride = Math.ceil((4 * size + PAGE) / PAGE) * PAGE;
  const buffer = new ArrayBuffer(count * stride + PAGE);
  const random = new Random(seed);
  return Array.from({ length: count }, (_, i) => {
    const a = new Float32Array(buffer, PAGE + i * stride, size);
    a.set(random.floats(size));
    return a;
  });
}

/** A CPU context and an InputPinning on it; `close` releases both. */
function pinningOn(keep: number, idleCalls: number) {
  const backend = Backend.open("cpu");
  const resources = new Resources(backend, backend.contextCreate(0));
  const pinning = new InputPinning(resources, keep, idleCalls);
  const close = () => {
    pinning.release();
    resources.release();
  };
  return { backend, resources, pinning, close };
}

Deno.test("run() copies reused arrays straight from them, as it computes them copied", async () => {
  await pinningScenario("cpu", smallNet());
  await pinningScenario("cpu", smallNet(), { eager: true });
});

Deno.test("without pinInputs nothing is locked; fresh and resizable arrays never are", async () => {
  const g = smallNet();
  const [out] = g.outputs;
  const size = 3 * 16 * 16;
  const random = new Random(3);
  const { locked, live } = await countLocks(async () => {
    using plain = await Session.create(g, { device: "cpu" });
    using pinned = await Session.create(g, { device: "cpu", pinInputs: true });
    const [reused] = apart(1, size);
    for (let i = 0; i < 3; i++) plain.runSync({ x: reused });
    for (let i = 0; i < 3; i++) {
      const x = random.floats(size);
      assert.deepEqual(pinned.runSync({ x })[out], plain.runSync({ x })[out], "a fresh array");
    }
    const resizable = new Float32Array(new ArrayBuffer(4 * size, { maxByteLength: 8 * size }));
    resizable.set(random.floats(size));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(pinned.runSync({ x: resizable })[out], plain.runSync({ x: resizable })[out]);
    }
  });
  assert.equal(locked, 0);
  assert.equal(live.size, 0);
});

Deno.test("an array locked by one session is copied by another, with the same results", async () => {
  const g = smallNet();
  const [out] = g.outputs;
  const [shared] = apart(1, 3 * 16 * 16, 4);
  const { locked, live } = await countLocks(async () => {
    using a = await Session.create(g, { device: "cpu", pinInputs: true });
    using b = await Session.create(g, { device: "cpu", pinInputs: true });
    using plain = await Session.create(g, { device: "cpu" });
    const want = plain.runSync({ x: shared })[out];
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(a.runSync({ x: shared })[out], want);
      assert.deepEqual(b.runSync({ x: shared })[out], want, "locked by the other session");
    }
    // Another session's page-locked buffers are locked already, as CUDA's cudaHostAlloc memory.
    const theirs = plain.io.inputs.x;
    theirs.set(shared);
    for (let i = 0; i < 3; i++) assert.deepEqual(a.runSync({ x: theirs })[out], want);
  });
  assert.equal(locked, 1, "only the shared array, by the first session to reuse it");
  assert.equal(live.size, 0);
});

Deno.test("the policy: two arrays kept, a third copied until one goes idle", () => {
  const { pinning, close } = pinningOn(2, 3);
  try {
    const [a, b, c] = apart(3, 1000);
    const calls = (order: Float32Array[]) => order.map((x) => pinning.direct("x", x));
    assert.deepEqual(calls([a, a, b, b, a]), [false, true, false, true, true]);
    assert.deepEqual(calls([c, c, a]), [false, false, true], "c copied while b is in use");
    assert.deepEqual(calls([c, c]), [true, true], "b unused for 5 calls: c displaces it");
    // Another input keeps its own arrays.
    assert.deepEqual([pinning.direct("y", b), pinning.direct("y", b)], [false, true]);
  } finally {
    close();
  }
});

Deno.test("a refused array is copied, and tried again after an unlock", () => {
  const { backend, resources, pinning, close } = pinningOn(1, 0);
  try {
    const [a, b] = apart(2, 1000);
    // b locked elsewhere: refused (copied), until this pinning unlocks something.
    const elsewhere = backend.hostRegister(resources.ctx, b);
    assert.deepEqual([pinning.direct("x", b), pinning.direct("x", b)], [false, false]);
    backend.hostUnregister(resources.ctx, elsewhere);
    assert.equal(pinning.direct("x", b), false, "still refused: nothing unlocked here since");
    assert.deepEqual([pinning.direct("x", a), pinning.direct("x", a)], [false, true]);
    assert.equal(pinning.direct("x", b), false, "nothing unlocked yet");
    const [c] = apart(1, 1000, 9);
    assert.deepEqual([pinning.direct("x", c), pinning.direct("x", c)], [false, true], "a unlocked");
    assert.equal(pinning.direct("x", b), true, "tried again after that unlock, and locked");
  } finally {
    close();
  }
});

Deno.test("a transferred array is unlocked by the next host copy, of any session", async () => {
  const g = smallNet();
  const backend = Backend.open("cpu");
  const [x] = apart(1, 3 * 16 * 16, 5);
  const counts = await countLocks(async () => {
    using s = await Session.create(g, { device: "cpu", pinInputs: true });
    s.runSync({ x });
    s.runSync({ x });
    const moved = new Float32Array((x.buffer as ArrayBuffer).transfer());
    assert.equal(x.length, 0, "detached");
    // Another session's creation uploads its weights: a host copy, which unlocks it.
    using other = await Session.create(g, { device: "cpu" });
    const ctx = backend.contextCreate(0);
    try {
      const again = backend.hostRegister(ctx, moved.subarray(0, 1024));
      backend.hostUnregister(ctx, again);
    } finally {
      backend.contextDestroy(ctx);
    }
    assert.equal(other.report().device.backend, "cpu");
  });
  assert.equal(counts.locked, 2, "the session's lock and the test's own");
  assert.equal(counts.live.size, 0, "the session's release let go of the unlocked one cleanly");
});

Deno.test("braid_host_register: page-locks once, refuses overlaps, and blocks context destroy", async () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  const [data] = apart(1, 4096);
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
    const host = backend.hostAlloc(ctx, 4096);
    await throwsCode(
      () => backend.hostRegister(ctx, new Float32Array(host.buffer)),
      "NATIVE_INVALID_ARGUMENT",
      /already is/,
    );
    backend.hostFree(ctx, host.address);
    await throwsCode(() => backend.contextDestroy(ctx), "NATIVE_INVALID_ARGUMENT", /registrations/);
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
