/**
 * Shared by the test files: the run's seed and case seeds, failure-message helpers, an assertion
 * on BraidErrors, a copy there and back, the CPU backend presented as CUDA, and small networks.
 */
import { assert } from "./deps.ts";
import type { Backend, Handle } from "../ffi/backend.ts";
import { BraidError, type BraidErrorCode } from "../lib/errors.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";

/** A seed for this run (BRAID_TEST_SEED reproduces a failure). */
export const BASE_SEED = Number(Deno.env.get("BRAID_TEST_SEED") ?? Date.now()) >>> 0;

/** A case's seed, from its name: fresh inputs every run, reproducible with BRAID_TEST_SEED. */
export function caseSeed(name: string): number {
  return (BASE_SEED ^ hash(name)) >>> 0;
}

/** What a failure message says so that the case can be rerun with the same inputs. */
export function rerunHint(name: string): string {
  return `[case seed ${caseSeed(name)}; rerun with BRAID_TEST_SEED=${BASE_SEED}]`;
}

/**
 * The CPU backend under the name "cuda", so that the runtime's GPU paths (stage timers, auto's
 * trials, warm-ups) run on it; every call is shown to `seen` (its method name) before it runs.
 */
export function cpuAsCuda(native: Backend, seen: (call: string) => void = () => {}): Backend {
  return new Proxy(native, {
    get(target, prop) {
      if (prop === "kind") return "cuda";
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        seen(String(prop));
        return value.apply(target, args);
      };
    },
  });
}

/**
 * Runs `f` with environment variables set (undefined: unset), then puts back what was there.
 */
export async function withEnv(vars: Record<string, string | undefined>, f: () => unknown) {
  const restore = setEnv(vars);
  try {
    await f();
  } finally {
    restore();
  }
}

/** withEnv for a synchronous `f`, returning what it returns. */
export function withEnvSync<T>(vars: Record<string, string | undefined>, f: () => T): T {
  const restore = setEnv(vars);
  try {
    return f();
  } finally {
    restore();
  }
}

/** Sets `vars` (undefined: unset); returns what puts back the values they had. */
function setEnv(vars: Record<string, string | undefined>): () => void {
  const before = Object.keys(vars).map((name) => [name, Deno.env.get(name)] as const);
  const put = (name: string, value: string | undefined) =>
    value === undefined ? Deno.env.delete(name) : Deno.env.set(name, value);
  for (const [name, value] of Object.entries(vars)) put(name, value);
  return () => {
    for (const [name, value] of before) put(name, value);
  };
}

/** FNV-1a of a case's name: its seed is BASE_SEED ^ hash(name). */
export function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The few elements that differ most (NaN first), for failure messages. */
export function worstElements(got: ArrayLike<number>, want: ArrayLike<number>, count = 5): string {
  const n = Math.min(got.length, want.length);
  const order = Array.from({ length: n }, (_, i) => i);
  const diff = (i: number) => {
    const d = Math.abs(got[i] - want[i]);
    return Number.isNaN(d) ? Infinity : d;
  };
  order.sort((i, j) => diff(j) - diff(i));
  return order.slice(0, count).map((i) => `[${i}] got ${got[i]} want ${want[i]}`).join("; ");
}

/** Asserts that `f` throws (or rejects with) a BraidError of `code`, its message matching. */
export async function throwsCode(f: () => unknown, code: BraidErrorCode, mention?: RegExp) {
  try {
    await f();
  } catch (e) {
    assert.ok(e instanceof BraidError, `expected BraidError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (mention) assert.match(e.message, mention);
    return;
  }
  assert.fail(`expected BraidError ${code}`);
}

/** Copies `data` to a fresh device buffer and back, and asserts it arrives unchanged. */
export function assertRoundTrip(backend: Backend, ctx: Handle, data: Float32Array): void {
  const device = backend.bufferAlloc(ctx, data.byteLength);
  try {
    backend.memcpyH2D(ctx, 0n, device, data);
    const back = new Float32Array(data.length);
    backend.memcpyD2H(ctx, 0n, back, device);
    backend.streamSynchronize(ctx, 0n);
    assert.deepEqual(back, data);
  } finally {
    backend.bufferFree(ctx, device);
  }
}

/** conv (no bias) → BatchNorm → relu → a 1x1 conv beside a 3x3 max pool → concat → linear. */
export function smallNet(): Graph {
  const b = new GraphBuilder("small", 5);
  const x = b.input("x", [1, 3, 16, 16]);
  let v = b.relu(
    b.batchNorm(b.conv2d(x, { name: "c1", out: 8, kernel: 3, padding: 1, bias: false }), "bn1"),
  );
  const left = b.conv2d(v, { name: "l", out: 8, kernel: 1 });
  const right = b.maxPool(v, { kernel: 3, stride: 1, padding: 1, ceilMode: true });
  v = b.concat([left, right], 1, "cat");
  v = b.flatten(b.globalAvgPool(v), 1);
  b.output(b.linear(b.dropout(v, 0.2), "fc", 10));
  return b.build();
}

/** conv → two sibling 1x1 convs → concat → pool → linear: parallel branches, a merge candidate. */
export function branchyNet(name = "net"): Graph {
  const b = new GraphBuilder(name, 7);
  const x = b.input("x", [1, 3, 12, 12]);
  const v = b.relu(b.conv2d(x, { name: "c1", out: 8, kernel: 3, padding: 1 }));
  const l = b.conv2d(v, { name: "l", out: 4, kernel: 1 });
  const r = b.conv2d(v, { name: "r", out: 4, kernel: 1 });
  b.output(b.linear(b.flatten(b.globalAvgPool(b.concat([l, r], 1, "cat")), 1), "fc", 5));
  return b.build();
}

/**
 * A stem conv and two small Inception-style modules (four branches each: 1x1; 1x1 → 3x3;
 * 1x1 → 3x3 → 3x3; 3x3 max pool → 1x1), on 12x12 inputs: many IOS stages, quick on the CPU.
 */
export function inceptionNet(name = "inception"): Graph {
  const b = new GraphBuilder(name, 11);
  let convs = 0;
  const conv = (v: string, out: number, kernel: number) =>
    b.relu(b.conv2d(v, { name: `c${convs++}`, out, kernel, padding: (kernel - 1) / 2 }));
  let x = conv(b.input("x", [1, 3, 12, 12]), 8, 3);
  for (let m = 0; m < 2; m++) {
    const pooled = b.maxPool(x, { kernel: 3, stride: 1, padding: 1 });
    x = b.concat([
      conv(x, 4, 1),
      conv(conv(x, 4, 1), 4, 3),
      conv(conv(conv(x, 2, 1), 4, 3), 4, 3),
      conv(pooled, 4, 1),
    ], 1);
  }
  b.output(b.linear(b.flatten(b.globalAvgPool(x), 1), "fc", 5));
  return b.build();
}
