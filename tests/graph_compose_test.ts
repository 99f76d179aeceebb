/**
 * Graph templates and composition (braid_capture_end_template, braid_graph_compose) on the CPU
 * backend: a composed graph runs each chain's templates in order without their work being issued
 * again, templates stay usable after composing, and misuse is a clear error that leaves the
 * context usable; two branches composed compute what the same ops captured on two streams do;
 * the raw entry point checks its counts, lengths and arrays.
 * tests/gpu/native_gpu_test.ts checks the same on CUDA.
 */
import { assert } from "./deps.ts";
import { Backend, type Handle } from "../ffi/backend.ts";
import { encodeRecord } from "../ffi/params.ts";
import { throwsCode } from "./helpers.ts";
import { composedBranches, composeRawArguments, twoStreamCapture } from "./gpu/scenario.ts";

const N = 4;
const padded = (values: number[]) => [...values, 0, 0, 0, 0, 0, 0].slice(0, 6);
/** y = a + b or y = a * b over N floats. */
const binary = (kind: "add" | "mul") =>
  encodeRecord("binary", {
    kind: kind === "add" ? 0 : 2,
    rank: 1,
    shape: padded([N]),
    a_strides: padded([1]),
    b_strides: padded([1]),
    activation: 0,
    act_min: 0,
    act_max: 0,
  });

function withContext(body: (backend: Backend, ctx: Handle) => void | Promise<void>) {
  return async () => {
    const backend = Backend.open("cpu");
    const ctx = backend.contextCreate(0);
    try {
      await body(backend, ctx);
    } finally {
      backend.contextDestroy(ctx);
    }
  };
}

/** Captures one op as a template. */
function template(backend: Backend, ctx: Handle, issue: () => void): Handle {
  backend.captureBegin(ctx, 0n);
  issue();
  return backend.captureEndTemplate(ctx, 0n);
}

Deno.test(
  "a composed graph runs each chain's templates in order; templates outlive it",
  withContext(async (backend, ctx) => {
    const [x, y] = [backend.bufferAlloc(ctx, 4 * N), backend.bufferAlloc(ctx, 4 * N)];
    const write = (at: Handle, values: number[]) =>
      backend.memcpyH2D(ctx, 0n, at, Float32Array.from(values));
    const read = (at: Handle) => {
      const out = new Float32Array(N);
      backend.memcpyD2H(ctx, 0n, out, at);
      backend.streamSynchronize(ctx, 0n);
      return [...out];
    };
    write(x, [1, 2, 3, 4]);
    write(y, [0, 0, 0, 0]);
    // double: y = x + x; square: x = y * y. Capturing issues nothing.
    const double = template(
      backend,
      ctx,
      () => backend.op("braid_binary", ctx, 0n, binary("add"), [x, x, y]),
    );
    const square = template(
      backend,
      ctx,
      () => backend.op("braid_binary", ctx, 0n, binary("mul"), [y, y, x]),
    );
    assert.deepEqual(read(y), [0, 0, 0, 0], "a template's work does not run when captured");
    await throwsCode(
      () => backend.graphLaunch(ctx, double, 0n),
      "NATIVE_INVALID_ARGUMENT",
      /braid_graph_launch: .*is a template/,
    );

    const doubleThenSquare = backend.graphCompose(ctx, [[double, square]]);
    backend.graphLaunch(ctx, doubleThenSquare, 0n);
    assert.deepEqual(read(x), [4, 16, 36, 64]);
    // The other order, from the same templates.
    const squareThenDouble = backend.graphCompose(ctx, [[square, double]]);
    write(x, [1, 2, 3, 4]);
    write(y, [1, 1, 1, 1]);
    backend.graphLaunch(ctx, squareThenDouble, 0n);
    assert.deepEqual(read(x), [1, 1, 1, 1]);
    assert.deepEqual(read(y), [2, 2, 2, 2]);
    // Two chains, and an empty one; the templates are still valid after composing.
    backend.graphDestroy(ctx, doubleThenSquare);
    const chains = backend.graphCompose(ctx, [[double], [], [square]]);
    write(x, [1, 2, 3, 4]);
    backend.graphLaunch(ctx, chains, 0n);
    assert.deepEqual(read(x), [4, 16, 36, 64]);
    const empty = backend.graphCompose(ctx, []);
    backend.graphLaunch(ctx, empty, 0n);
    assert.deepEqual(read(x), [4, 16, 36, 64], "an empty graph does nothing");
    for (const g of [squareThenDouble, chains, empty, double, square]) backend.graphDestroy(ctx, g);
    backend.bufferFree(ctx, x);
    backend.bufferFree(ctx, y);
  }),
);

Deno.test(
  "composing refuses executable graphs, unknown handles and a capture in progress",
  withContext(async (backend, ctx) => {
    const x = backend.bufferAlloc(ctx, 4 * N);
    const add = () => backend.op("braid_binary", ctx, 0n, binary("add"), [x, x, x]);
    const part = template(backend, ctx, add);
    backend.captureBegin(ctx, 0n);
    add();
    const executable = backend.captureEnd(ctx, 0n);
    await throwsCode(
      () => backend.graphCompose(ctx, [[part, executable]]),
      "NATIVE_INVALID_ARGUMENT",
      /braid_graph_compose: part 1 is an executable graph, not a template/,
    );
    await throwsCode(
      () => backend.graphCompose(ctx, [[part, 0xdead0n]]),
      "NATIVE_INVALID_HANDLE",
      /braid_graph_compose/,
    );
    backend.captureBegin(ctx, 0n);
    await throwsCode(
      () => backend.graphCompose(ctx, [[part]]),
      "NATIVE_CAPTURE",
      /braid_graph_compose: illegal while the context is capturing/,
    );
    // The capture goes on: it ends as a template, which composes.
    add();
    const second = backend.captureEndTemplate(ctx, 0n);
    const composed = backend.graphCompose(ctx, [[part, second]]);
    backend.graphLaunch(ctx, composed, 0n);
    backend.streamSynchronize(ctx, 0n);
    for (const g of [composed, second, part, executable]) backend.graphDestroy(ctx, g);
    backend.bufferFree(ctx, x);
  }),
);

Deno.test("two branches composed from templates compute what they do captured on two streams", () => {
  const seed = 0xb4a1d;
  const composed = composedBranches(Backend.open("cpu"), seed);
  const captured = twoStreamCapture(Backend.open("cpu"), seed);
  assert.equal(composed.length, 3);
  composed.forEach((out, i) => assert.deepEqual(out, captured[i], `launch ${i}`));
});

Deno.test("braid_graph_compose checks its raw arguments: counts, lengths and NULL arrays", () => {
  composeRawArguments("cpu");
});
