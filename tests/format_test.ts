/**
 * The model file format: write → read round trips (values, nodes, attributes, initializer bytes),
 * deterministic output, zero-copy weights, defaults for absent fields, and the error paths.
 */
import * as flatbuffers from "flatbuffers";
import { assert } from "./deps.ts";
import { BraidError, type BraidErrorCode } from "../lib/errors.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph, Tensor } from "../lib/ir/graph.ts";
import { type OpName, withDefaults } from "../lib/ir/ops.ts";
import { validateGraph } from "../lib/ir/validate.ts";
import * as fb from "../lib/format/generated/model_generated.ts";
import { decodeModel } from "../lib/format/read.ts";
import { encodeModel, FILE_IDENTIFIER, SCHEMA_VERSION } from "../lib/format/write.ts";

/** A graph with every op kind, attributes away from their defaults where possible. */
function everyOpGraph(): Graph {
  const b = new GraphBuilder("every-op", 7);
  const x = b.input("x", [2, 4, 8, 8]);
  const w = b.uniform("conv.weight", [8, 2, 3, 3], 0.5);
  const bias = b.uniform("conv.bias", [8], 0.1);
  const conv = b.node("Conv2d", [x, w, bias], {
    strides: [1, 1],
    pads: [1, 2, 1, 0],
    dilations: [1, 1],
    groups: 2,
    activation: "clamp",
    actMin: 0,
    actMax: 6,
  }, "conv");
  const bn = b.batchNorm(conv, "bn", 1e-3);
  const cl = b.clamp(bn, -1.5, 1.25, "clamp");
  const r = b.relu(cl, "relu");
  const s = b.sigmoid(r, "sigmoid");
  const t = b.tanh(s, "tanh");
  const g = b.gelu(t, "gelu");
  const add = b.add(g, cl, "add", { activation: "relu", actMin: 0, actMax: 0 });
  const sub = b.node("Sub", [add, r], {}, "sub");
  const mul = b.node("Mul", [sub, s], { activation: "tanh", actMin: 0, actMax: 0 }, "mul");
  const div = b.node("Div", [mul, t], { activation: "clamp", actMin: -2, actMax: 2 }, "div");
  const mp = b.maxPool(div, { kernel: 3, stride: 2, padding: 1, ceilMode: true, name: "maxpool" });
  const ap = b.avgPool(div, {
    kernel: [2, 3],
    stride: [2, 1],
    padding: 1,
    countIncludePad: false,
    name: "avgpool",
  });
  const apSized = b.node("Slice", [ap], {
    axes: [3],
    starts: [0],
    ends: [5],
    steps: [1],
  }, "avgpool_crop");
  const cat = b.concat([mp, apSized], 1, "concat");
  const cat0 = b.concat([cat, cat], 0, "concat_batch"); // axis 0: a zero must survive
  const gap = b.globalAvgPool(cat, "gap");
  const flat = b.flatten(gap, 1, "flatten");
  const rs = b.reshape(flat, [0, 4, -1], "reshape");
  const tr = b.transpose(rs, [0, 2, 1], "transpose");
  // ONNX's "to the end" (INT64_MAX) and a negative step.
  const sl = b.node("Slice", [tr], {
    axes: [1, -1],
    starts: [0, 3],
    ends: [9223372036854775807, -9223372036854775808],
    steps: [2, -1],
  }, "slice");
  const mm = b.matmul(tr, tr, { transB: true, alpha: 0.5 }, "matmul");
  const ln = b.node(
    "LayerNorm",
    [
      mm,
      b.range("ln.weight", [4, 4], 0.8, 1.2),
      b.range("ln.bias", [4, 4], -0.1, 0.1),
    ],
    { axis: -2, epsilon: 1e-6 },
    "ln",
  );
  const sm = b.softmax(ln, 1, "softmax");
  const gemm = b.node(
    "Gemm",
    [
      flat,
      b.uniform("fc.weight", [10, 16], 0.3),
      b.uniform("fc.bias", [10], 0.1),
    ],
    { transB: true, alpha: 2, beta: 0.5, activation: "gelu", actMin: 0, actMax: 0 },
    "fc",
  );
  const idx = b.constant("tokens", {
    dtype: "int32",
    shape: [2, 2],
    data: Int32Array.of(0, 3, 9, -1),
  });
  const emb = b.node("Gather", [b.uniform("emb.weight", [10, 3], 1), idx], { axis: 0 }, "emb");
  const id = b.node("Identity", [emb], {}, "identity");
  const drop = b.dropout(id, 0.25, "dropout");
  for (const out of [cat0, sl, sm, gemm, drop]) b.output(out);
  return b.build();
}

/** Expects a BraidError with `code` whose message includes each of `parts`. */
function assertBraidError(fn: () => unknown, code: BraidErrorCode, ...parts: string[]) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BraidError, `expected BraidError ${code}, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  for (const p of parts) assert.ok(caught.message.includes(p), `"${caught.message}" lacks "${p}"`);
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The file position of field `slot` of the root table (0 if absent). */
function rootField(bytes: Uint8Array, slot: number): number {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const model = fb.Model.getRootAsModel(bb);
  const o = bb.__offset(model.bb_pos, 4 + 2 * slot);
  return o ? model.bb_pos + o : 0;
}

Deno.test("every op kind round-trips: values, nodes, attributes and weights", () => {
  const graph = everyOpGraph();
  validateGraph(graph);
  const ops = new Set(graph.nodes.map((n) => n.op));
  for (
    const op of [
      "Conv2d",
      "BatchNorm",
      "Clamp",
      "Add",
      "Sub",
      "Mul",
      "Div",
      "MaxPool2d",
      "AvgPool2d",
      "Concat",
      "Flatten",
      "Reshape",
      "Transpose",
      "Slice",
      "Gemm",
      "MatMul",
      "Softmax",
      "LayerNorm",
      "Gather",
      "Dropout",
      "Relu",
      "Sigmoid",
      "Tanh",
      "Gelu",
      "GlobalAvgPool",
      "Identity",
    ]
  ) assert.ok(ops.has(op as OpName), `the test graph lacks ${op}`);

  const bytes = encodeModel(graph);
  assert.equal(new TextDecoder().decode(bytes.subarray(4, 8)), FILE_IDENTIFIER);
  const back = decodeModel(bytes, "every-op.braid");

  assert.equal(back.name, graph.name);
  assert.deepStrictEqual(back.inputs, graph.inputs);
  assert.deepStrictEqual(back.outputs, graph.outputs);
  assert.deepStrictEqual([...back.values.keys()], [...graph.values.keys()]);
  assert.deepStrictEqual(back.values, graph.values);
  assert.deepStrictEqual(back.nodes, graph.nodes);
  assert.deepStrictEqual([...back.initializers.keys()], [...graph.initializers.keys()]);
  for (const [name, t] of graph.initializers) {
    const u = back.initializers.get(name)!;
    assert.equal(u.dtype, t.dtype, name);
    assert.deepStrictEqual(u.shape, t.shape, name);
    assert.equal(u.data.constructor, t.data.constructor, name);
    assert.deepStrictEqual(bytesOf(u), bytesOf(t), name);
  }
  validateGraph(back);

  // Deterministic: writing the decoded graph (or the original again) gives the same bytes.
  assert.deepStrictEqual(encodeModel(back), bytes);
  assert.deepStrictEqual(encodeModel(graph), bytes);
});

Deno.test("initializers are zero-copy views, 64-byte aligned", () => {
  const graph = everyOpGraph();
  const bytes = encodeModel(graph);
  const back = decodeModel(bytes);
  assert.ok(back.initializers.size > 0);
  for (const [name, t] of back.initializers) {
    assert.ok(t.data.buffer === bytes.buffer, `${name} was copied`);
    assert.equal(t.data.byteOffset % 64, 0, `${name} at ${t.data.byteOffset}`);
  }
  // A view, not a snapshot: writing through the file's bytes shows up in the tensor.
  const conv = back.initializers.get("conv.weight")!;
  const saved = conv.data[0];
  new Float32Array(bytes.buffer, conv.data.byteOffset, 1)[0] = 42;
  assert.equal(conv.data[0], 42);
  conv.data[0] = saved;

  // A file embedded in a larger buffer: still views on that buffer, bounded by the subarray.
  const big = new Uint8Array(bytes.length + 256);
  big.set(bytes, 128);
  const embedded = decodeModel(big.subarray(128, 128 + bytes.length), "embedded");
  for (const [name, t] of embedded.initializers) {
    assert.ok(t.data.buffer === big.buffer, `${name} was copied`);
    assert.equal((t.data.byteOffset - 128) % 64, 0);
    assert.deepStrictEqual(bytesOf(t), bytesOf(graph.initializers.get(name)!));
  }
});

Deno.test("truncated files are MALFORMED_FILE naming the source", () => {
  const bytes = encodeModel(everyOpGraph());
  for (const length of [0, 3, 7, 8, 64, bytes.length >> 1, bytes.length - 64, bytes.length - 1]) {
    assertBraidError(
      () => decodeModel(bytes.subarray(0, length), "cut.braid"),
      "MALFORMED_FILE",
      "cut.braid",
    );
  }
});

Deno.test("a wrong file identifier is BAD_IDENTIFIER naming the source and the identifier", () => {
  const bytes = encodeModel(everyOpGraph());
  bytes.set(new TextEncoder().encode("ONNX"), 4);
  assertBraidError(() => decodeModel(bytes, "model.onnx"), "BAD_IDENTIFIER", "model.onnx", "ONNX");
  bytes.set([0, 1, 0xff, 0x22], 4);
  assertBraidError(() => decodeModel(bytes, "junk"), "BAD_IDENTIFIER", "junk", "\\x00\\x01\\xff");
});

Deno.test("another schema version is UNSUPPORTED_VERSION naming the source", () => {
  const bytes = encodeModel(everyOpGraph());
  const at = rootField(bytes, 0);
  assert.ok(at > 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  assert.equal(view.getUint32(at, true), SCHEMA_VERSION);
  view.setUint32(at, SCHEMA_VERSION + 1, true);
  assertBraidError(
    () => decodeModel(bytes, "future.braid"),
    "UNSUPPORTED_VERSION",
    "future.braid",
    `${SCHEMA_VERSION + 1}`,
  );
  view.setUint32(at, 0, true);
  assertBraidError(() => decodeModel(bytes, "old.braid"), "UNSUPPORTED_VERSION", "old.braid");
});

Deno.test("an unknown op round-trips and validation names the node (UNKNOWN_OP)", () => {
  const b = new GraphBuilder("unknown-op");
  const x = b.input("x", [1, 4]);
  const r = b.relu(x, "relu");
  const graph = b.graph;
  graph.values.set("foo_out", { name: "foo_out", dtype: "float32", shape: [1, 4] });
  graph.nodes.push({
    name: "mystery",
    op: "Foo" as OpName,
    inputs: [r],
    outputs: ["foo_out"],
    attrs: {},
  });
  b.output("foo_out");
  const bytes = encodeModel(b.build());
  const back = decodeModel(bytes, "foo.braid");
  assert.deepStrictEqual(back.nodes, graph.nodes);
  assert.deepStrictEqual(encodeModel(back), bytes);
  assertBraidError(() => validateGraph(back), "UNKNOWN_OP", "mystery", "Foo");

  // An unknown op's attributes cannot be stored.
  graph.nodes[1].attrs = { axis: 1 } as never;
  assertBraidError(() => encodeModel(graph), "BAD_ATTRIBUTE", "mystery");
});

Deno.test("a dangling input loads and validation reports DANGLING_VALUE", () => {
  const b = new GraphBuilder("dangling");
  const x = b.input("x", [1, 4]);
  const y = b.add(x, x, "add");
  b.output(y);
  const graph = b.build();
  graph.nodes[0].inputs[1] = "nowhere";
  const back = decodeModel(encodeModel(graph), "dangling.braid");
  assert.deepStrictEqual(back.nodes[0].inputs, ["x", "nowhere"]);
  assertBraidError(() => validateGraph(back), "DANGLING_VALUE", "add", "nowhere");
});

/**
 * A one-node model built by hand (no forced defaults), to test files from other producers:
 * `attrs` writes the node's attribute table, if any.
 */
function handModel(
  op: string,
  attrs?: (b: flatbuffers.Builder) => { type: fb.Attrs; offset: flatbuffers.Offset },
): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const s = (v: string) => b.createString(v);
  const strings = (vs: string[]) => fb.Model.createInputsVector(b, vs.map(s));
  const value = (name: string) => {
    const n = s(name);
    const shape = fb.Value.createShapeVector(b, [1n, 4n, 6n, 6n]);
    fb.Value.startValue(b);
    fb.Value.addName(b, n);
    fb.Value.addShape(b, shape);
    return fb.Value.endValue(b);
  };
  const values = fb.Model.createValuesVector(b, [value("x"), value("y")]);
  const a = attrs?.(b);
  const name = s("n");
  const opName = s(op);
  const inputs = strings(["x"]);
  const outputs = strings(["y"]);
  fb.Node.startNode(b);
  fb.Node.addName(b, name);
  fb.Node.addOp(b, opName);
  fb.Node.addInputs(b, inputs);
  fb.Node.addOutputs(b, outputs);
  if (a) {
    fb.Node.addAttrsType(b, a.type);
    fb.Node.addAttrs(b, a.offset);
  }
  const nodes = fb.Model.createNodesVector(b, [fb.Node.endNode(b)]);
  const gi = strings(["x"]);
  const go = strings(["y"]);
  fb.Model.startModel(b);
  fb.Model.addSchemaVersion(b, SCHEMA_VERSION);
  fb.Model.addInputs(b, gi);
  fb.Model.addOutputs(b, go);
  fb.Model.addValues(b, values);
  fb.Model.addNodes(b, nodes);
  fb.Model.finishModelBuffer(b, fb.Model.endModel(b));
  return b.asUint8Array().slice();
}

Deno.test("absent attribute fields take the op's defaults", () => {
  // Only ceil_mode and kernel are stored; strides and pads come from the defaults.
  const bytes = handModel("MaxPool2d", (b) => {
    fb.MaxPool2dAttrs.startMaxPool2dAttrs(b);
    fb.MaxPool2dAttrs.addKernel(b, fb.Pair.createPair(b, 3, 3));
    fb.MaxPool2dAttrs.addCeilMode(b, true);
    return { type: fb.Attrs.MaxPool2dAttrs, offset: fb.MaxPool2dAttrs.endMaxPool2dAttrs(b) };
  });
  const g = decodeModel(bytes, "hand.braid");
  assert.equal(g.name, "");
  assert.deepStrictEqual(g.nodes[0].attrs, {
    ...withDefaults("MaxPool2d", {}),
    kernel: [3, 3],
    ceilMode: true,
  });
  assert.equal(g.initializers.size, 0);
  // No attribute table at all: every default.
  const plain = decodeModel(handModel("Softmax"), "plain.braid");
  assert.deepStrictEqual(plain.nodes[0].attrs, withDefaults("Softmax", {}));
});

Deno.test("attribute tables that do not fit the op are MALFORMED_FILE", () => {
  const dropout = (b: flatbuffers.Builder) => {
    fb.DropoutAttrs.startDropoutAttrs(b);
    fb.DropoutAttrs.addRatio(b, 0.1);
    return { type: fb.Attrs.DropoutAttrs, offset: fb.DropoutAttrs.endDropoutAttrs(b) };
  };
  assertBraidError(
    () => decodeModel(handModel("Relu", dropout), "relu.braid"),
    "MALFORMED_FILE",
    "relu.braid",
    `node "n"`,
  );
  assertBraidError(
    () => decodeModel(handModel("Softmax", dropout), "softmax.braid"),
    "MALFORMED_FILE",
    "softmax.braid",
    "SoftmaxAttrs",
  );
  // An unknown union tag.
  const unknownTag = (b: flatbuffers.Builder) => ({ ...dropout(b), type: 200 as fb.Attrs });
  assertBraidError(
    () => decodeModel(handModel("Dropout", unknownTag), "tag.braid"),
    "MALFORMED_FILE",
    "tag.braid",
    "unknown attribute type 200",
  );
  // An unknown activation code.
  const badActivation = (b: flatbuffers.Builder) => {
    fb.BinaryAttrs.startBinaryAttrs(b);
    fb.BinaryAttrs.addActivation(b, 99 as fb.Activation);
    return { type: fb.Attrs.BinaryAttrs, offset: fb.BinaryAttrs.endBinaryAttrs(b) };
  };
  assertBraidError(
    () => decodeModel(handModel("Add", badActivation), "act.braid"),
    "MALFORMED_FILE",
    "act.braid",
    "activation",
  );
  // An unknown op ignores what it carries: validation reports the op.
  const foo = decodeModel(handModel("Foo", unknownTag), "foo.braid");
  assertBraidError(() => validateGraph(foo), "UNKNOWN_OP", `"n"`);
});

Deno.test("initializer ranges and shapes are checked", () => {
  const b = new GraphBuilder("ranges", 1);
  const x = b.input("x", [1, 4]);
  const y = b.add(x, b.uniform("w", [1, 4], 1), "add");
  b.output(y);
  const bytes = encodeModel(b.build());
  const bb = new flatbuffers.ByteBuffer(bytes);
  const init = fb.Model.getRootAsModel(bb).initializers(0)!;
  const field = (slot: number) => init.bb_pos + bb.__offset(init.bb_pos, 4 + 2 * slot);
  const view = new DataView(bytes.buffer);
  const tamper = (slot: number, value: bigint, ...parts: string[]) => {
    const copy = bytes.slice();
    new DataView(copy.buffer).setBigUint64(field(slot), value, true);
    assertBraidError(() => decodeModel(copy, "t.braid"), "MALFORMED_FILE", "t.braid", ...parts);
  };
  assert.equal(view.getBigUint64(field(3), true), 0n); // offset
  assert.equal(view.getBigUint64(field(4), true), 16n); // length
  tamper(3, 64n, `initializer "w"`, "blob");
  tamper(3, 2n, `initializer "w"`, "aligned");
  tamper(4, 1n << 63n, `initializer "w"`);
  tamper(4, 6n, "aligned");
  // A negative dimension.
  const shape = init.bb_pos + bb.__offset(init.bb_pos, 8);
  const dims = shape + view.getUint32(shape, true) + 4;
  const copy = bytes.slice();
  new DataView(copy.buffer).setBigInt64(dims, -1n, true);
  assertBraidError(() => decodeModel(copy, "d.braid"), "MALFORMED_FILE", "d.braid", "dimension");
});

Deno.test("vectors claiming more than the file holds are MALFORMED_FILE", () => {
  const bytes = encodeModel(everyOpGraph());
  const at = rootField(bytes, 6); // nodes
  const view = new DataView(bytes.buffer);
  const vector = at + view.getUint32(at, true);
  for (const n of [0x7fffffff, 0xffffffff, bytes.length]) {
    const copy = bytes.slice();
    new DataView(copy.buffer).setUint32(vector, n, true);
    assertBraidError(() => decodeModel(copy, "v.braid"), "MALFORMED_FILE", "v.braid", "vector");
  }
});

Deno.test("tables that share data are refused in time linear in the file size", () => {
  // 5,000 node slots all pointing at one node whose 2,000 inputs all point at one string:
  // ~30 KB that would otherwise decode as 10 million inputs.
  const b = new flatbuffers.Builder(64 * 1024);
  const x = b.createString("x");
  b.startVector(4, 2000, 4);
  for (let i = 0; i < 2000; i++) b.addOffset(x);
  const inputs = b.endVector();
  const name = b.createString("n");
  const op = b.createString("Concat");
  fb.Node.startNode(b);
  fb.Node.addName(b, name);
  fb.Node.addOp(b, op);
  fb.Node.addInputs(b, inputs);
  const node = fb.Node.endNode(b);
  const nodes = fb.Model.createNodesVector(b, new Array(5000).fill(node));
  fb.Model.startModel(b);
  fb.Model.addSchemaVersion(b, SCHEMA_VERSION);
  fb.Model.addNodes(b, nodes);
  fb.Model.finishModelBuffer(b, fb.Model.endModel(b));
  const bytes = b.asUint8Array().slice();
  const start = performance.now();
  assertBraidError(
    () => decodeModel(bytes, "shared.braid"),
    "MALFORMED_FILE",
    "shared.braid",
    "more data than the file holds",
  );
  assert.ok(performance.now() - start < 500);
});
