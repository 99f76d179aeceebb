/** `braid import` as a user runs it: summary, the .braid file it writes, --check, errors. */
import { assert } from "./deps.ts";
import { loadModel } from "../mod.ts";
import { encodeOnnx, floats32, node, valueInfo } from "./onnx_encoder.ts";

const main = new URL("../lib/cli/main.ts", import.meta.url).pathname;

async function braid(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", main, ...args],
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A small convolutional network: Pad → Conv → Relu → GlobalAveragePool → Flatten → Gemm. */
function smallNet(): Uint8Array {
  return encodeOnnx({
    nodes: [
      node("Pad", ["x", "pads"], ["p"]),
      node("Conv", ["p", "w", "b"], ["c"]),
      node("Relu", ["c"], ["r"]),
      node("GlobalAveragePool", ["r"], ["g"]),
      node("Flatten", ["g"], ["f"]),
      node("Gemm", ["f", "fc", "fcb"], ["logits"], [{ name: "transB", type: 2, i: 1 }]),
    ],
    inputs: [valueInfo("x", [1, 3, 8, 8])],
    outputs: ["logits"],
    initializers: [
      { name: "pads", dataType: 7, dims: [8], int64Data: [0, 0, 1, 1, 0, 0, 1, 1] },
      floats32("w", [4, 3, 3, 3], new Float32Array(108).map((_, i) => Math.sin(i))),
      floats32("b", [4], [0.1, -0.1, 0.2, 0]),
      floats32("fc", [5, 4], new Float32Array(20).map((_, i) => Math.cos(i))),
      floats32("fcb", [5], [0, 1, 2, 3, 4]),
    ],
  });
}

Deno.test("cli: import writes a .braid file and prints the summary (no progress bar when piped)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/net.onnx`, smallNet());
    const out = await braid("import", `${dir}/net.onnx`, "-o", `${dir}/net.braid`);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, "", "nothing on stderr when it is not a terminal");
    assert.match(out.stdout, /ONNX nodes\s+6: /);
    assert.match(out.stdout, /ops mapped\s+6 nodes → 5 braid ops; .*1 pads folded into padding/);
    assert.match(out.stdout, /parameters\s+137\b/);
    assert.match(out.stdout, /FLOPs\s+[\d.]+ MFLOP at batch 1/);
    assert.match(out.stdout, /unsupported\s+none/);
    assert.match(out.stdout, /wrote .*net\.braid/);
    using model = await loadModel(`${dir}/net.braid`);
    assert.deepEqual(model.graph.nodes.map((n) => n.op), [
      "Conv2d",
      "Relu",
      "GlobalAvgPool",
      "Flatten",
      "Gemm",
    ]);
    const check = await braid("import", `${dir}/net.onnx`, "-o", `${dir}/net2.braid`, "--check");
    assert.equal(check.code, 0, check.stderr);
    // Without a GPU it says so; with one (make test-gpu) the comparison must pass.
    assert.match(check.stdout, /check skipped: no GPU here|check passed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: import lists unsupported ops and exits 1; usage errors exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(
      `${dir}/erf.onnx`,
      encodeOnnx({
        nodes: [node("Erf", ["x"], ["y"], [], "the_erf"), node("Relu", ["y"], ["z"])],
        inputs: [valueInfo("x", [2, 2])],
        outputs: ["z"],
      }),
    );
    const out = await braid("import", `${dir}/erf.onnx`, "-o", `${dir}/erf.braid`);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /\[UNKNOWN_OP\] .*braid cannot run 1 node of 1 op type/);
    assert.match(out.stderr, /Erf ×1: "the_erf"/);
    const usage = await braid("import", `${dir}/erf.onnx`);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: braid import FILE\.onnx -o FILE\.braid/);
    const shape = await braid("import", `${dir}/erf.onnx`, "-o", "x.braid", "--shape", "x=2,a");
    assert.equal(shape.code, 2);
    assert.match(shape.stderr, /--shape must be NAME=D0,D1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
