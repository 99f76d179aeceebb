/**
 * ONNX import, graph level: what exporters write around the ops (Pad before Conv, the Erf form of
 * GELU, shape arithmetic, Identity chains, MatMul + Add), where weights come from (raw_data and
 * its zero-copy views, typed fields, external data files) and int64 ids. Files are built by
 * tests/onnx_encoder.ts; results are checked on the CPU backend against the float64 reference.
 */
import { assert } from "./deps.ts";
import { decodeModel, encodeModel, importOnnx, Session } from "../mod.ts";
import { OPS } from "../lib/ir/ops.ts";
import { Random } from "../lib/util/random.ts";
import * as ref from "./reference.ts";
import {
  DataType,
  encodeOnnx,
  floats32,
  int,
  int64s,
  ints,
  node,
  type NodeObject,
  rawBytes,
  tensor,
  tensorAttr,
  valueInfo,
} from "./onnx_encoder.ts";

const TOLERANCE = 1e-5;
const rng = new Random(Number(Deno.env.get("BRAID_TEST_SEED") ?? 7));
const NONE = { activation: "none", actMin: 0, actMax: 0 } as const;

const randoms = (n: number, lo = -1, hi = 1) => rng.floats(n, lo, hi);
const ops = (graph: { nodes: { op: string }[] }) => graph.nodes.map((n) => n.op);

async function run(
  graph: Parameters<typeof Session.create>[0],
  feeds: Record<string, Float32Array | Int32Array>,
) {
  using session = await Session.create(graph, { device: "cpu" });
  return await session.run(feeds);
}

function near(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  const error = ref.relativeError(got, want);
  assert(error < TOLERANCE, `${what}: relative error ${error}`);
}

// ------------------------------------------------------------------------------ Pad folding

Deno.test("a zero Pad before a Conv becomes the convolution's padding", async () => {
  const x = randoms(2 * 3 * 6 * 7);
  const w = randoms(4 * 3 * 3 * 3);
  const bytes = encodeOnnx({
    nodes: [
      node("Pad", ["x", "pads"], ["padded"], [], "pad"),
      node("Conv", ["padded", "w"], ["y"], [ints("pads", [1, 1, 1, 1])], "conv"),
    ],
    inputs: [valueInfo("x", [2, 3, 6, 7])],
    outputs: ["y"],
    // ONNX pads: all begins, then all ends: rows +1/+2, columns +2/+1.
    initializers: [int64s("pads", [8], [0, 0, 1, 2, 0, 0, 2, 1]), floats32("w", [4, 3, 3, 3], w)],
  });
  const { graph, summary } = await importOnnx(bytes);
  assert.deepEqual(ops(graph), ["Conv2d"]);
  assert.deepEqual((graph.nodes[0].attrs as { pads: number[] }).pads, [2, 3, 3, 2]);
  assert.equal(summary.padsFolded, 1);
  const want = ref.conv2d(
    ref.tensor([2, 3, 6, 7], x),
    ref.tensor([4, 3, 3, 3], w),
    undefined,
    undefined,
    { ...OPS.Conv2d.defaults, pads: [2, 3, 3, 2] },
  );
  near((await run(graph, { x })).y, want.data, "conv");
});

Deno.test("a -inf Pad folds into MaxPool; a Pad with another reader is also applied", async () => {
  const x = randoms(1 * 2 * 7 * 7);
  const bytes = encodeOnnx({
    nodes: [
      node("Pad", ["x", "pads", "ninf"], ["padded"]),
      node("MaxPool", ["padded"], ["m"], [ints("kernel_shape", [3, 3]), ints("strides", [2, 2])]),
      node("Relu", ["padded"], ["r"]),
    ],
    inputs: [valueInfo("x", [1, 2, 7, 7])],
    outputs: ["m", "r"],
    initializers: [
      int64s("pads", [8], [0, 0, 1, 1, 0, 0, 1, 1]),
      floats32("ninf", [], [-Infinity]),
    ],
  });
  const { graph, summary } = await importOnnx(bytes);
  assert.equal(summary.padsFolded, 1);
  const pool = graph.nodes.find((n) => n.op === "MaxPool2d")!;
  assert.deepEqual((pool.attrs as { pads: number[] }).pads, [1, 1, 1, 1]);
  assert.equal(pool.inputs[0], "x", "the pool reads the unpadded input");
  const out = await run(graph, { x });
  const xt = ref.tensor([1, 2, 7, 7], x);
  near(
    out.m,
    ref.maxPool2d(xt, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: false })
      .data,
    "pool",
  );
  // The Relu sees the padded tensor: -inf borders become 0.
  const padded = ref.tensor([1, 2, 9, 9]);
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < 9; i++) {
      for (let j = 0; j < 9; j++) {
        const inside = i >= 1 && i <= 7 && j >= 1 && j <= 7;
        padded.data[(c * 9 + i) * 9 + j] = inside ? Math.max(0, x[(c * 7 + i - 1) * 7 + j - 1]) : 0;
      }
    }
  }
  near(out.r, padded.data, "relu of the padded tensor");
});

// ------------------------------------------------------------------------------ GELU

/** The three association orders exporters use for x · 0.5 · (1 + Erf(x / √2)). */
const GELU_FORMS: Record<string, { nodes: NodeObject[]; consts: Record<string, number> }> = {
  "torch: ((x · (1 + erf(x / √2))) · 0.5": {
    nodes: [
      node("Div", ["x", "sqrt2"], ["d"]),
      node("Erf", ["d"], ["e"]),
      node("Add", ["e", "one"], ["p"]),
      node("Mul", ["x", "p"], ["m"]),
      node("Mul", ["m", "half"], ["y"]),
    ],
    consts: { sqrt2: Math.SQRT2, one: 1, half: 0.5 },
  },
  "(0.5 · (1 + erf(x · 1/√2))) · x": {
    nodes: [
      node("Mul", ["rsqrt2", "x"], ["d"]),
      node("Erf", ["d"], ["e"]),
      node("Add", ["one", "e"], ["p"]),
      node("Mul", ["half", "p"], ["m"]),
      node("Mul", ["m", "x"], ["y"]),
    ],
    consts: { rsqrt2: Math.SQRT1_2, one: 1, half: 0.5 },
  },
  "(x · 0.5) · (1 + erf(x / √2))": {
    nodes: [
      node("Mul", ["x", "half"], ["h"]),
      node("Div", ["x", "sqrt2"], ["d"]),
      node("Erf", ["d"], ["e"]),
      node("Add", ["e", "one"], ["p"]),
      node("Mul", ["h", "p"], ["y"]),
    ],
    consts: { sqrt2: Math.SQRT2, one: 1, half: 0.5 },
  },
};

for (const [form, { nodes, consts }] of Object.entries(GELU_FORMS)) {
  Deno.test(`the Erf form of GELU becomes one Gelu: ${form}`, async () => {
    const x = randoms(3 * 16, -4, 4);
    // Constants as Constant nodes (as torch writes them), placed after the Erf.
    const constantNodes = Object.entries(consts).map(([name, v]) =>
      node("Constant", [], [name], [tensorAttr("value", floats32("", [], [v]))])
    );
    const bytes = encodeOnnx({
      nodes: [nodes[0], ...constantNodes, ...nodes.slice(1)],
      inputs: [valueInfo("x", [3, 16])],
      outputs: ["y"],
    });
    const { graph, summary } = await importOnnx(bytes);
    assert.deepEqual(ops(graph), ["Gelu"]);
    assert.equal(summary.geluFused, 1);
    near((await run(graph, { x })).y, Array.from(x, ref.gelu), form);
  });
}

Deno.test("an Erf chain whose intermediate is read elsewhere is not fused (Erf is reported)", async () => {
  const bytes = encodeOnnx({
    nodes: [
      ...GELU_FORMS["torch: ((x · (1 + erf(x / √2))) · 0.5"].nodes,
      node("Relu", ["e"], ["z"]),
    ],
    inputs: [valueInfo("x", [2, 4])],
    outputs: ["y", "z"],
    initializers: [
      floats32("sqrt2", [], [Math.SQRT2]),
      floats32("one", [], [1]),
      floats32("half", [], [0.5]),
    ],
  });
  await assert.rejects(() => importOnnx(bytes), /Erf ×1/);
});

// ------------------------------------------------------------------------------ constant folding

Deno.test("shape arithmetic folds to constants: only the run-time ops remain", async () => {
  // y = Reshape(x, [batch, -1]) + positions, where batch comes from Shape → Gather → Unsqueeze →
  // Concat, and positions from Size → Div → Range → Cast → Where(Equal, ConstantOfShape) →
  // Expand → Mul, as exporters write for masks and position ids.
  const x = randoms(2 * 3 * 4);
  const i64 = (name: string, v: number[], dims = [v.length]) =>
    node("Constant", [], [name], [tensorAttr("value", int64s("", dims, v))]);
  const bytes = encodeOnnx({
    nodes: [
      node("Shape", ["x"], ["shape"]),
      i64("zero", [0], []),
      node("Gather", ["shape", "zero"], ["batch"], [int("axis", 0)]),
      i64("axes", [0]),
      node("Unsqueeze", ["batch", "axes"], ["batch1"]),
      i64("minus1", [-1]),
      node("Concat", ["batch1", "minus1"], ["target"], [int("axis", 0)]),
      node("Reshape", ["x", "target"], ["flat"]),
      node("Size", ["x"], ["size"]),
      i64("two", [2], []),
      node("Div", ["size", "two"], ["cols"]),
      i64("start", [0], []),
      i64("step", [1], []),
      node("Range", ["start", "cols", "step"], ["range"]),
      node("Cast", ["range"], ["rangef"], [int("to", DataType.FLOAT)]),
      node("Shape", ["range"], ["rshape"]),
      node("ConstantOfShape", ["rshape"], ["ones"], [tensorAttr("value", floats32("", [1], [1]))]),
      node("Equal", ["range", "range"], ["same"]),
      node("Where", ["same", "rangef", "ones"], ["chosen"]),
      i64("one", [1]),
      node("Concat", ["one", "rshape"], ["rowshape"], [int("axis", 0)]),
      node("Expand", ["chosen", "rowshape"], ["positions"]),
      node("Mul", ["positions", "scale"], ["scaled"]),
      node("Add", ["flat", "scaled"], ["y"]),
    ],
    inputs: [valueInfo("x", [2, 3, 4])],
    outputs: ["y"],
    initializers: [floats32("scale", [], [0.25])],
  });
  const { graph, summary } = await importOnnx(bytes);
  assert.deepEqual(ops(graph), ["Reshape", "Add"]);
  assert.equal(summary.folded, 22);
  const y = (await run(graph, { x })).y;
  near(y, Array.from(x, (v, i) => v + 0.25 * (i % 12)), "folded positions");
});

// ------------------------------------------------------------------------------ cleanup passes

Deno.test("Identity and Dropout disappear; graph outputs keep their ONNX names", async () => {
  const x = randoms(4 * 5);
  const bytes = encodeOnnx({
    nodes: [
      node("Identity", ["w"], ["w2"]),
      node("Mul", ["x", "w2"], ["m"]),
      node("Dropout", ["m"], ["d"]),
      node("Identity", ["d"], ["out"]),
    ],
    inputs: [valueInfo("x", [4, 5])],
    outputs: ["out"],
    initializers: [floats32("w", [5], [1, 2, 3, 4, 5])],
  });
  const { graph, summary } = await importOnnx(bytes);
  assert.deepEqual(ops(graph), ["Mul"]);
  assert.deepEqual(graph.outputs, ["out"]);
  assert.equal(summary.aliased, 3);
  near((await run(graph, { x })).out, Array.from(x, (v, i) => v * ((i % 5) + 1)), "mul");
});

Deno.test("MatMul + bias Add becomes one Gemm; a scalar Mul after MatMul becomes alpha", async () => {
  const a = randoms(2 * 3 * 4);
  const b = randoms(2 * 4 * 3);
  const w = randoms(4 * 5);
  const bias = randoms(5);
  const bytes = encodeOnnx({
    nodes: [
      node("MatMul", ["a", "w"], ["aw"]),
      node("Add", ["bias", "aw"], ["linear"]),
      node("MatMul", ["a", "b"], ["ab"]),
      node("Mul", ["ab", "eighth"], ["scores"]),
    ],
    inputs: [valueInfo("a", [2, 3, 4]), valueInfo("b", [2, 4, 3])],
    outputs: ["linear", "scores"],
    initializers: [
      floats32("w", [4, 5], w),
      floats32("bias", [5], bias),
      floats32("eighth", [], [0.125]),
    ],
  });
  const { graph } = await importOnnx(bytes);
  assert.deepEqual(ops(graph), ["Gemm", "MatMul"]);
  assert.equal(graph.nodes[0].inputs.length, 3, "the bias joined the Gemm");
  assert.equal((graph.nodes[1].attrs as { alpha: number }).alpha, 0.125);
  const out = await run(graph, { a, b });
  const [at, bt] = [ref.tensor([2, 3, 4], a), ref.tensor([2, 4, 3], b)];
  const lin = ref.binary(
    "Add",
    ref.matmul(at, ref.tensor([4, 5], w), { transB: false, alpha: 1 }),
    ref.tensor([5], bias),
    NONE,
  );
  near(out.linear, lin.data, "linear");
  near(out.scores, ref.matmul(at, bt, { transB: false, alpha: 0.125 }).data, "scores");
});

// ------------------------------------------------------------------------------ weights

/**
 * A model whose weight "w" has its raw_data at an offset ≡ `residue` (mod 4) in the file (the
 * graph's name, stored before the initializers, is lengthened until it is), as a plain
 * Uint8Array of its own.
 */
function modelWithWeightAt(residue: number, w: Float32Array): { bytes: Uint8Array; at: number } {
  const pattern = rawBytes(DataType.FLOAT, w);
  for (let pad = 0; pad < 8; pad++) {
    const bytes = new Uint8Array(encodeOnnx({
      name: "g" + "_".repeat(pad),
      nodes: [node("Mul", ["x", "w"], ["y"])],
      inputs: [valueInfo("x", [2, w.length])],
      outputs: ["y"],
      initializers: [floats32("w", [w.length], w)],
    }));
    const at = indexOf(bytes, pattern);
    if (at % 4 === residue) return { bytes, at };
  }
  throw new Error("no padding put the weight at the wanted offset");
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test("raw_data weights are zero-copy views on the file's bytes where aligned", async () => {
  const w = randoms(64);
  const { bytes, at } = modelWithWeightAt(0, w);
  const { graph, summary } = await importOnnx(bytes);
  const name = "w";
  const t = graph.initializers.get(name)!;
  assert.ok(t.data.buffer === bytes.buffer, "the weight was copied");
  assert.equal(t.data.byteOffset, at);
  assert.equal(summary.viewBytes, 64 * 4);
  assert.equal(summary.copiedBytes, 0);
  // A view: writing the file's bytes changes the weight.
  new DataView(bytes.buffer).setFloat32(at, 42, true);
  assert.equal(t.data[0], 42);
  // The .braid file holds the same values.
  const back = decodeModel(encodeModel(graph)).initializers.get(name)!;
  assert.deepEqual(Array.from(back.data), Array.from(t.data));
});

Deno.test("unaligned raw_data is copied once, with the right values", async () => {
  const w = randoms(16);
  const { bytes } = modelWithWeightAt(1, w);
  const { graph, summary } = await importOnnx(bytes);
  const t = [...graph.initializers.values()][0];
  assert.ok(t.data.buffer !== bytes.buffer);
  assert.deepEqual(Array.from(t.data), Array.from(w));
  assert.equal(summary.copiedBytes, 16 * 4);
});

Deno.test("typed-field initializers: float_data, int64_data, int32_data, double_data", async () => {
  const x = randoms(2 * 4);
  const w = randoms(4);
  const bytes = encodeOnnx({
    nodes: [
      node("Mul", ["x", "w"], ["m"]),
      node("Gather", ["m", "idx"], ["g"], [int("axis", 1)]),
      node("Reshape", ["g", "shape"], ["r"]),
      node("Cast", ["dbl"], ["dblf"], [int("to", DataType.FLOAT)]),
      node("Add", ["r", "dblf"], ["y"]),
    ],
    inputs: [valueInfo("x", [2, 4])],
    outputs: ["y"],
    initializers: [
      tensor("w", DataType.FLOAT, [4], w, "typed"),
      tensor("idx", DataType.INT64, [3], [3, -4, 1], "typed"),
      tensor("shape", DataType.INT32, [3], [2, 3, 1], "typed"),
      tensor("dbl", DataType.DOUBLE, [1], [0.5], "typed"),
    ],
  });
  const { graph } = await importOnnx(bytes);
  const y = (await run(graph, { x })).y;
  const want: number[] = [];
  for (let r = 0; r < 2; r++) {
    for (const i of [3, 0, 1]) want.push(Math.fround(x[r * 4 + i] * w[i]) + 0.5);
  }
  near(y, want, "typed fields");
});

Deno.test("external data files beside the model: read once, aligned tensors are views", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [a, b, c] = [randoms(16), randoms(16), randoms(16)];
    // a at 0 and b at 128: aligned, read in place; c at 261: unaligned, copied.
    const blob = new Uint8Array(512);
    blob.set(rawBytes(DataType.FLOAT, a), 0);
    blob.set(rawBytes(DataType.FLOAT, b), 128);
    blob.set(rawBytes(DataType.FLOAT, c), 261);
    await Deno.mkdir(`${dir}/data`);
    await Deno.writeFile(`${dir}/data/weights.bin`, blob);
    const at = (offset: number) => ({ location: "data/weights.bin", offset, length: 64 });
    const model = encodeOnnx({
      nodes: [
        node("Mul", ["x", "a"], ["m"]),
        node("Add", ["m", "b"], ["y"]),
        node("Add", ["x", "c"], ["z"]),
      ],
      inputs: [valueInfo("x", [3, 16])],
      outputs: ["y", "z"],
      initializers: [
        tensor("a", DataType.FLOAT, [16], [], at(0)),
        tensor("b", DataType.FLOAT, [16], [], at(128)),
        tensor("c", DataType.FLOAT, [16], [], at(261)),
      ],
    });
    await Deno.writeFile(`${dir}/model.onnx`, model);
    const { graph, summary } = await importOnnx(`${dir}/model.onnx`);
    const [ta, tb, tc] = ["a", "b", "c"].map((n) => graph.initializers.get(n)!);
    assert.equal(ta.data.buffer.byteLength, 512, "a is a view on the external file's bytes");
    assert.ok(tb.data.buffer === ta.data.buffer, "the file was read once; b views it too");
    assert.equal(tb.data.byteOffset, 128);
    assert.ok(tc.data.buffer !== ta.data.buffer, "unaligned c was copied");
    assert.equal(summary.viewBytes, 2 * 64);
    assert.equal(summary.copiedBytes, 64);
    const x = randoms(3 * 16);
    const out = await run(graph, { x });
    near(out.y, Array.from(x, (v, i) => Math.fround(v * a[i % 16]) + b[i % 16]), "y");
    near(out.z, Array.from(x, (v, i) => v + c[i % 16]), "z");
    // From bytes alone, the importer must be told where the data is.
    await assert.rejects(() => importOnnx(model), /external file "data\/weights\.bin"/);
    const again = await importOnnx(model, { baseDir: dir });
    assert.deepEqual(Array.from(again.graph.initializers.get("a")!.data), Array.from(a));
    // A missing external file is named.
    await Deno.remove(`${dir}/data/weights.bin`);
    await assert.rejects(() => importOnnx(`${dir}/model.onnx`), /data\/weights\.bin/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------ inputs

Deno.test("int64 ids become an int32 input; a symbolic batch takes the batch option", async () => {
  const table = randoms(7 * 3);
  const bytes = encodeOnnx({
    nodes: [node("Gather", ["table", "ids"], ["y"])],
    inputs: [valueInfo("ids", ["batch", 4], DataType.INT64)],
    outputs: ["y"],
    initializers: [floats32("table", [7, 3], table)],
  });
  const { graph } = await importOnnx(bytes, { batch: 2 });
  assert.deepEqual(graph.values.get("ids"), { name: "ids", dtype: "int32", shape: [2, 4] });
  const ids = Int32Array.from([0, 6, 3, 3, 1, 2, 5, 4]);
  const y = (await run(graph, { ids })).y;
  near(y, Array.from(ids).flatMap((i) => Array.from(table.subarray(3 * i, 3 * i + 3))), "ids");
  const symbolic = encodeOnnx({
    nodes: [node("Relu", ["x"], ["y"])],
    inputs: [valueInfo("x", [1, "seq"])],
    outputs: ["y"],
  });
  await assert.rejects(() => importOnnx(symbolic), /dimension 1 is symbolic \("seq"\)/);
  const given = await importOnnx(symbolic, { inputShapes: { x: [1, 5] } });
  assert.deepEqual(given.graph.values.get("x")!.shape, [1, 5]);
});
