/**
 * ONNX import error paths: each gives one BraidError whose message names the file, node, tensor
 * or op at fault.
 */
import { assert } from "./deps.ts";
import { BraidError, importOnnx } from "../mod.ts";
import {
  DataType,
  encodeObject,
  encodeOnnx,
  floats32,
  int64s,
  modelObject,
  node,
  str,
  valueInfo,
} from "./onnx_encoder.ts";

async function importError(
  source: Uint8Array | string,
  code: string,
): Promise<BraidError> {
  try {
    await importOnnx(source);
  } catch (e) {
    assert(e instanceof BraidError, `expected a BraidError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  throw new Error(`importing succeeded; expected ${code}`);
}

const small = () =>
  encodeOnnx({
    nodes: [node("Conv", ["x", "w"], ["y"], [], "conv1")],
    inputs: [valueInfo("x", [1, 2, 5, 5])],
    outputs: ["y"],
    initializers: [floats32("w", [3, 2, 3, 3], new Float32Array(54).fill(0.5))],
  });

Deno.test("malformed protobuf: not ONNX, truncated, and a file that is not there", async () => {
  const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
  const e1 = await importError(garbage, "MALFORMED_FILE");
  assert.match(e1.message, /<memory>: not a valid ONNX file \(protobuf decoding failed/);

  const bytes = small();
  const e2 = await importError(bytes.subarray(0, bytes.length - 20), "MALFORMED_FILE");
  assert.match(e2.message, /not a valid ONNX file/);

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/broken.onnx`, garbage);
    const e3 = await importError(`${dir}/broken.onnx`, "MALFORMED_FILE");
    assert.ok(e3.message.startsWith(`${dir}/broken.onnx: `), e3.message);
    const e4 = await importError(`${dir}/missing.onnx`, "MALFORMED_FILE");
    assert.match(e4.message, /cannot read ONNX file .*missing\.onnx/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // A ModelProto with no graph.
  const noGraph = encodeObject({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }] });
  assert.match((await importError(noGraph, "MALFORMED_FILE")).message, /has no graph/);
});

Deno.test("a missing initializer names the node and the tensor", async () => {
  const bytes = encodeOnnx({
    nodes: [node("Conv", ["x", "conv1.weight", "conv1.bias"], ["y"], [], "conv1")],
    inputs: [valueInfo("x", [1, 2, 5, 5])],
    outputs: ["y"],
    initializers: [floats32("conv1.weight", [3, 2, 3, 3], new Float32Array(54))],
  });
  const e = await importError(bytes, "MISSING_WEIGHT");
  assert.match(e.message, /node "conv1" \(Conv\) reads "conv1\.bias", which is neither/);
});

Deno.test("an initializer whose data does not fit its shape is named", async () => {
  const model = modelObject({
    nodes: [node("Relu", ["x"], ["y"])],
    inputs: [valueInfo("x", [2, 3])],
    outputs: ["y"],
    initializers: [{
      name: "short",
      dataType: DataType.FLOAT,
      dims: [4],
      rawData: new Uint8Array(12),
    }],
  });
  const e = await importError(encodeObject(model), "BAD_INITIALIZER");
  assert.match(
    e.message,
    /initializer "short" of <memory> holds 12 bytes of data; FLOAT \[4\] needs 16/,
  );
});

Deno.test("every unsupported op is listed in one error: op type, count and node names", async () => {
  const bytes = encodeOnnx({
    nodes: [
      node("Erf", ["x"], ["e1"], [], "erf_a"),
      node("Erf", ["x"], ["e2"], [], "erf_b"),
      node("NonZero", ["x"], ["nz"], [], "nonzero"),
      { ...node("Foo", ["x"], ["foo"], [], "custom"), domain: "com.example" },
      node("Pad", ["x", "pads"], ["p"], [str("mode", "reflect")], "reflect_pad"),
      // Downstream of an unsupported op: not reported again.
      node("Relu", ["e1"], ["r"], [], "after_erf"),
      node("Add", ["r", "e2"], ["s"]),
      node("Add", ["s", "p"], ["y"]),
    ],
    inputs: [valueInfo("x", [2, 3, 4, 4])],
    outputs: ["y", "nz", "foo"],
    initializers: [int64s("pads", [8], [0, 0, 1, 1, 0, 0, 1, 1])],
  });
  const e = await importError(bytes, "UNKNOWN_OP");
  assert.match(e.message, /braid cannot run 5 nodes of 4 op types:/);
  assert.match(e.message, /Erf ×2: "erf_a", "erf_b"/);
  assert.match(e.message, /NonZero ×1: "nonzero"/);
  assert.match(e.message, /com\.example\.Foo ×1: "custom"/);
  assert.match(e.message, /Pad ×1: "reflect_pad" \(mode "reflect"\)/);
  assert.doesNotMatch(e.message, /after_erf/);
});

Deno.test("an output a mapper cannot produce is reported only when used", async () => {
  const pool = (outputs: string[]) =>
    encodeOnnx({
      nodes: [
        node("MaxPool", ["x"], outputs, [
          { name: "kernel_shape", type: 7, ints: [2, 2] },
        ], "pool"),
        node("Relu", ["y"], ["z"]),
      ],
      inputs: [valueInfo("x", [1, 1, 4, 4])],
      outputs: outputs[1] === "idx" ? ["z", "idx"] : ["z"],
    });
  // Indices declared but unused: fine.
  const { graph } = await importOnnx(pool(["y", "unused"]));
  assert.deepEqual(graph.nodes.map((n) => n.op), ["MaxPool2d", "Relu"]);
  const e = await importError(pool(["y", "idx"]), "UNKNOWN_OP");
  assert.match(e.message, /MaxPool ×1: "pool" \(output 1 \("idx"\) is used\)/);
});

Deno.test("shape errors name the node; unsupported input types name the input", async () => {
  const bytes = encodeOnnx({
    nodes: [node("MatMul", ["x", "w"], ["y"], [], "proj")],
    inputs: [valueInfo("x", [2, 3])],
    outputs: ["y"],
    initializers: [floats32("w", [4, 5], new Float32Array(20))],
  });
  const e = await importError(bytes, "SHAPE_MISMATCH");
  assert.match(e.message, /node "proj"/);
  const strings = encodeOnnx({
    nodes: [node("Identity", ["s"], ["y"])],
    inputs: [valueInfo("s", [2], DataType.STRING)],
    outputs: ["y"],
  });
  const e2 = await importError(strings, "INPUT_TYPE");
  assert.match(e2.message, /graph input "s" has element type STRING/);
});
