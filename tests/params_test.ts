/**
 * The TypeScript mirror of braid.h's parameter records must agree with the C compiler, field by
 * field: this compiles a small C program printing every offsetof and sizeof, and compares.
 */
import { assert } from "./deps.ts";
import { encodeRecord, recordLayout, type RecordName } from "../ffi/params.ts";
import { BraidError } from "../lib/errors.ts";

const RECORDS: RecordName[] = [
  "conv2d",
  "batchnorm",
  "unary",
  "binary",
  "pool2d",
  "global_avgpool",
  "concat",
  "strided_copy",
  "gemm",
  "matmul",
  "softmax",
  "layernorm",
  "gather",
];

Deno.test("parameter records match braid.h's structs (offsetof, sizeof)", async () => {
  const lines = [
    "#include <stddef.h>",
    "#include <stdio.h>",
    '#include "braid.h"',
    "int main(void) {",
  ];
  for (const r of RECORDS) {
    lines.push(`printf("${r} %zu\\n", sizeof(braid_${r}_params));`);
    for (const f of recordLayout(r).fields) {
      lines.push(`printf("${r}.${f.name} %zu\\n", offsetof(braid_${r}_params, ${f.name}));`);
    }
  }
  lines.push("return 0; }");
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/layout.c`, lines.join("\n"));
  const include = new URL("../csrc/include", import.meta.url).pathname;
  const cc = await new Deno.Command("cc", {
    args: ["-std=c11", `-I${include}`, "-o", `${dir}/layout`, `${dir}/layout.c`],
  }).output();
  assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
  const out = new TextDecoder().decode((await new Deno.Command(`${dir}/layout`).output()).stdout);
  const c = new Map(out.trim().split("\n").map((l) => l.split(" ") as [string, string]));
  for (const r of RECORDS) {
    const layout = recordLayout(r);
    assert.equal(layout.size, Number(c.get(r)), `sizeof(braid_${r}_params)`);
    for (const f of layout.fields) {
      assert.equal(f.offset, Number(c.get(`${r}.${f.name}`)), `offsetof ${r}.${f.name}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("encodeRecord writes little-endian fields and rejects bad ones", () => {
  const bytes = encodeRecord("layernorm", { rows: 3, cols: 768, epsilon: 1e-12 });
  const view = new DataView(bytes.buffer);
  assert.equal(view.getInt32(0, true), 3);
  assert.equal(view.getInt32(4, true), 768);
  assert.equal(view.getFloat32(8, true), Math.fround(1e-12));
  const throwsBraid = (f: () => unknown) => assert.throws(f, BraidError);
  throwsBraid(() => encodeRecord("layernorm", { rows: 3, cols: 768 }));
  throwsBraid(() => encodeRecord("layernorm", { rows: 3, cols: 768, epsilon: 0, extra: 1 }));
  throwsBraid(() => encodeRecord("softmax", { outer: 2 ** 31, axis: 1, inner: 1 }));
});
