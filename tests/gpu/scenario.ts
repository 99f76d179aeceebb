/**
 * Backend-level scenarios shared by native_gpu_test.ts and sanitize_run.ts: the same sequence
 * of C ABI calls run on any backend (the CPU backend implements the same ABI, capture included),
 * so the CUDA results can be compared with the CPU's.
 */
import { Backend, type Handle, type OpSymbol } from "../../ffi/backend.ts";
import { type BackendKind, openLibrary } from "../../ffi/library.ts";
import { encodeRecord, type RecordName, type RecordValues } from "../../ffi/params.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";

/** A context on one backend, with everything it allocates freed by `close()`. */
export class Device {
  readonly ctx: Handle;
  readonly #buffers: Handle[] = [];
  readonly #hostBuffers: Handle[] = [];
  readonly #streams: Handle[] = [];
  readonly #events: Handle[] = [];
  readonly #graphs: Handle[] = [];

  constructor(readonly backend: Backend) {
    this.ctx = backend.contextCreate(0);
  }

  /** Device memory for `count` floats (plus `slack` spare bytes for misaligned views). */
  alloc(count: number, slack = 0): Handle {
    const addr = this.backend.bufferAlloc(this.ctx, 4 * count + slack);
    this.#buffers.push(addr);
    return addr;
  }

  /** Page-locked host memory as a Float32Array. */
  hostFloats(count: number): Float32Array {
    const { address, buffer } = this.backend.hostAlloc(this.ctx, 4 * count);
    this.#hostBuffers.push(address);
    return new Float32Array(buffer, 0, count);
  }

  stream(priority = 0): Handle {
    const s = this.backend.streamCreate(this.ctx, priority);
    this.#streams.push(s);
    return s;
  }

  event(): Handle {
    const e = this.backend.eventCreate(this.ctx);
    this.#events.push(e);
    return e;
  }

  keepGraph(graph: Handle): Handle {
    this.#graphs.push(graph);
    return graph;
  }

  upload(addr: Handle, data: Float32Array | Int32Array): void {
    this.backend.memcpyH2D(this.ctx, 0n, addr, data);
    this.backend.streamSynchronize(this.ctx, 0n);
  }

  download(addr: Handle, count: number): Float32Array {
    const out = new Float32Array(count);
    this.backend.memcpyD2H(this.ctx, 0n, out, addr);
    this.backend.streamSynchronize(this.ctx, 0n);
    return out;
  }

  op(
    symbol: OpSymbol,
    record: RecordName,
    values: RecordValues,
    tensors: Handle[],
    stream: Handle = 0n,
  ): void {
    this.backend.op(symbol, this.ctx, stream, encodeRecord(record, values), tensors);
  }

  close(): void {
    const b = this.backend, ctx = this.ctx;
    for (const g of this.#graphs) b.graphDestroy(ctx, g);
    for (const e of this.#events) b.eventDestroy(ctx, e);
    for (const s of this.#streams) b.streamDestroy(ctx, s);
    for (const a of this.#buffers) b.bufferFree(ctx, a);
    for (const a of this.#hostBuffers) b.hostFree(ctx, a);
    b.contextDestroy(ctx);
  }
}

export const CONV = {
  n: 1,
  c: 4,
  h: 16,
  w: 16,
  k: 8,
  oh: 16,
  ow: 16,
  kh: 3,
  kw: 3,
  stride_h: 1,
  stride_w: 1,
  pad_top: 1,
  pad_left: 1,
  dilation_h: 1,
  dilation_w: 1,
  groups: 1,
  activation: 1,
  act_min: 0,
  act_max: 0,
  algorithm: -1,
  workspace_bytes: 0,
  allow_tf32: 0,
};

/** A [16, 64] × [64, 32] product in strict fp32. */
export const GEMM = {
  m: 16,
  n: 32,
  k: 64,
  trans_b: 0,
  alpha: 1,
  beta: 1,
  activation: 0,
  act_min: 0,
  act_max: 0,
  allow_tf32: 0,
};

/**
 * The ops of the two-branch scenarios, on buffers of `d` with seeded weights: the conv branch
 * (conv(x) + bias, relu, then sigmoid into a2) and the gemm branch (x as [16, 64] times a [64, 32]
 * matrix, then tanh into g2), and their broadcast sum into y. Each issues its op on a stream.
 */
function branchOps(d: Device, rng: Random) {
  const x = d.alloc(1024), w1 = d.alloc(8 * 4 * 9), b1 = d.alloc(8), w2 = d.alloc(64 * 32);
  const a = d.alloc(2048), a2 = d.alloc(2048), g = d.alloc(512), g2 = d.alloc(512);
  const y = d.alloc(2048);
  d.upload(w1, rng.floats(8 * 4 * 9, -0.3, 0.3));
  d.upload(b1, rng.floats(8, -0.1, 0.1));
  d.upload(w2, rng.floats(64 * 32, -0.2, 0.2));
  const unary = (kind: number, count: number, from: Handle, to: Handle) => (stream: Handle) =>
    d.op("braid_unary", "unary", { count, kind, act_min: 0, act_max: 0 }, [from, to], stream);
  const add = {
    kind: 0,
    rank: 2,
    shape: [4, 512],
    a_strides: [512, 1],
    b_strides: [0, 1],
    activation: 0,
    act_min: 0,
    act_max: 0,
  };
  return {
    x,
    y,
    convBranch: [
      (stream: Handle) => d.op("braid_conv2d", "conv2d", CONV, [x, w1, b1, 0n, a, 0n], stream),
      unary(3, 2048, a, a2),
    ],
    gemmBranch: [
      (stream: Handle) => d.op("braid_gemm", "gemm", GEMM, [x, w2, 0n, g], stream),
      unary(4, 512, g, g2),
    ],
    join: (stream: Handle) => d.op("braid_binary", "binary", add, [a2, g2, y], stream),
  };
}

/**
 * Two worker streams forked from the capture stream with an event and joined back with two, one
 * for each branch of branchOps; the capture stream adds the two and copies the result out.
 * Captured once, launched `launches` times on fresh inputs; returns each output.
 */
export function twoStreamCapture(backend: Backend, seed: number, launches = 3): Float32Array[] {
  const d = new Device(backend);
  try {
    const rng = new Random(seed);
    const { x, y, convBranch, gemmBranch, join } = branchOps(d, rng);
    const hostX = d.hostFloats(1024), hostY = d.hostFloats(2048);
    const s1 = d.stream(0), s2 = d.stream(1);
    const fork = d.event(), j1 = d.event(), j2 = d.event();
    const { ctx } = d;

    backend.captureBegin(ctx, 0n);
    try {
      backend.memcpyH2D(ctx, 0n, x, hostX);
      backend.eventRecord(ctx, fork, 0n);
      backend.streamWaitEvent(ctx, s1, fork);
      backend.streamWaitEvent(ctx, s2, fork);
      for (const op of convBranch) op(s1);
      for (const op of gemmBranch) op(s2);
      backend.eventRecord(ctx, j1, s1);
      backend.eventRecord(ctx, j2, s2);
      backend.streamWaitEvent(ctx, 0n, j1);
      backend.streamWaitEvent(ctx, 0n, j2);
      join(0n);
      backend.memcpyD2H(ctx, 0n, hostY, y);
    } catch (e) {
      try {
        d.keepGraph(backend.captureEnd(ctx, 0n));
      } catch { /* the original error matters */ }
      throw e;
    }
    const graph = d.keepGraph(backend.captureEnd(ctx, 0n));
    const outputs: Float32Array[] = [];
    for (let i = 0; i < launches; i++) {
      hostX.set(rng.floats(1024));
      backend.graphLaunch(ctx, graph, 0n);
      backend.streamSynchronize(ctx, 0n);
      outputs.push(hostY.slice());
    }
    return outputs;
  } finally {
    d.close();
  }
}

/**
 * branchOps' work as graphs composed from templates (braid_graph_compose): each op is captured
 * once as a template, on its branch's stream; one graph runs the two branches as two chains, a
 * second adds them. The
 * inputs are uploaded before each launch. Returns each launch's output.
 */
export function composedBranches(backend: Backend, seed: number, launches = 3): Float32Array[] {
  const d = new Device(backend);
  try {
    const rng = new Random(seed);
    const { x, y, convBranch, gemmBranch, join } = branchOps(d, rng);
    const { ctx } = d;
    // Each branch's templates captured on a stream of its own: the chains run at once, and an op
    // given no workspace takes its stream's scratch (the gemm always does).
    const [convStream, gemmStream] = [d.stream(0), d.stream(0)];
    const template = (stream: Handle) => (op: (stream: Handle) => void) => {
      backend.captureBegin(ctx, stream);
      op(stream);
      return d.keepGraph(backend.captureEndTemplate(ctx, stream));
    };
    const branches = d.keepGraph(
      backend.graphCompose(ctx, [
        convBranch.map(template(convStream)),
        gemmBranch.map(template(gemmStream)),
      ]),
    );
    const sum = d.keepGraph(backend.graphCompose(ctx, [[template(0n)(join)]]));
    const outputs: Float32Array[] = [];
    for (let i = 0; i < launches; i++) {
      d.upload(x, rng.floats(1024));
      backend.graphLaunch(ctx, branches, 0n);
      backend.graphLaunch(ctx, sum, 0n);
      outputs.push(d.download(y, 2048));
    }
    return outputs;
  } finally {
    d.close();
  }
}

/**
 * braid_graph_compose's raw argument checks, NULL arrays included (the FFI passes null as a NULL
 * pointer): each backend refuses the same misuse with the same status and message, and nothing is
 * left behind (the context closes clean).
 */
export function composeRawArguments(kind: BackendKind): void {
  const backend = Backend.open(kind);
  const ctx = backend.contextCreate(0);
  try {
    const { symbols } = openLibrary(kind);
    const out = new BigUint64Array(1);
    const message = () => {
      const text = new Uint8Array(512);
      symbols.braid_last_error(text, text.length);
      return new TextDecoder().decode(text.subarray(0, text.indexOf(0)));
    };
    type View = ArrayBufferView | null;
    const raw = symbols.braid_graph_compose as unknown as (
      ...args: [bigint, View, View, number, View]
    ) => number;
    const compose = (parts: View, lengths: View, chains: number) =>
      raw(ctx, parts, lengths, chains, out);
    const invalid = 1; // BRAID_ERR_INVALID_ARGUMENT
    assert.equal(compose(null, null, -1), invalid);
    assert.match(message(), /braid_graph_compose: chains -1 is negative/);
    assert.equal(compose(null, null, 1), invalid);
    assert.match(message(), /lengths is NULL/);
    assert.equal(compose(null, Int32Array.of(2, -1), 2), invalid);
    assert.match(message(), /chain 1 has length -1/);
    assert.equal(compose(BigUint64Array.of(12345n), Int32Array.of(1, -1), 2), invalid);
    assert.match(message(), /chain 1 has length -1/, "the lengths are checked before the parts");
    assert.equal(compose(null, Int32Array.of(1), 1), invalid);
    assert.match(message(), /parts is NULL/);
    assert.equal(raw(ctx, null, null, 0, null), invalid);
    assert.match(message(), /out_graph is NULL/);
    const empty = backend.graphCompose(ctx, []);
    backend.graphDestroy(ctx, empty);
  } finally {
    backend.contextDestroy(ctx);
  }
}
