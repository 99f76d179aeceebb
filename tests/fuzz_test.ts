/**
 * Loader fuzzing: 1,000 seeded corruptions of a real zoo model file (SqueezeNet 1.1, ~5 MB).
 * Each corrupted file must either decode and validate, or throw a BraidError; any other
 * exception, or a case taking more than a second, fails the test.
 *
 * Most corruptions target the FlatBuffer metadata (everything before the weight blob, ~18 KB):
 * a corrupted weight only changes a number. The file is corrupted in place and restored after
 * each case, so no case copies the 5 MB. Rerun with another seed: BRAID_FUZZ_SEED=<n>.
 */
import * as flatbuffers from "flatbuffers";
import { assert } from "./deps.ts";
import { BraidError } from "../lib/errors.ts";
import { validateGraph } from "../lib/ir/validate.ts";
import { buildZooModel } from "../lib/models/index.ts";
import * as fb from "../lib/format/generated/model_generated.ts";
import { decodeModel } from "../lib/format/read.ts";
import { encodeModel } from "../lib/format/write.ts";
import { Random } from "../lib/util/random.ts";

const CASES = 1000;
const SEED = Number(Deno.env.get("BRAID_FUZZ_SEED") ?? 20240611) >>> 0;
/** Per-case time limit: decoding is O(file size), so anything near this is a bug. */
const CASE_LIMIT_MS = 1000;

/**
 * Byte positions of the length prefixes of every vector and string the model refers to (graph
 * inputs/outputs, values, nodes and their names, ops, inputs, outputs and shapes, initializers,
 * the weight blob), found by walking the file with the schema's slot numbers.
 */
function lengthFields(bytes: Uint8Array): number[] {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const out: number[] = [];
  const field = (table: number, slot: number) => {
    const o = bb.__offset(table, 4 + 2 * slot);
    return o ? table + o : 0;
  };
  /** Follows the uoffset in `slot` to a vector or string, records its length prefix. */
  const vector = (table: number, slot: number, each?: (element: number) => void) => {
    const at = field(table, slot);
    if (!at) return;
    const start = at + bb.readInt32(at);
    out.push(start);
    const n = bb.readInt32(start);
    for (let i = 0; each && i < n; i++) each(start + 4 + 4 * i);
  };
  const str = (element: number) => out.push(element + bb.readInt32(element));
  const table = (element: number) => element + bb.readInt32(element);
  const root = bb.readInt32(0);
  vector(root, 1); // name
  vector(root, 2); // producer
  vector(root, 3, str); // inputs
  vector(root, 4, str); // outputs
  vector(root, 5, (e) => {
    const v = table(e);
    vector(v, 0); // name
    vector(v, 2); // shape
  });
  vector(root, 6, (e) => {
    const n = table(e);
    vector(n, 0); // name
    vector(n, 1); // op
    vector(n, 2, str); // inputs
    vector(n, 3, str); // outputs
  });
  vector(root, 7, (e) => {
    const t = table(e);
    vector(t, 0); // name
    vector(t, 2); // shape
  });
  vector(root, 8); // weights
  return out;
}

type Kind = "flip" | "truncate" | "overwrite" | "zero" | "length";
const KINDS: Kind[] = ["flip", "flip", "truncate", "overwrite", "overwrite", "zero", "length"];

Deno.test("corrupted model files either load and validate or throw BraidError", () => {
  const graph = buildZooModel("squeezenet1_1");
  const original = encodeModel(graph);
  const bb = new flatbuffers.ByteBuffer(original);
  const blobStart = fb.Model.getRootAsModel(bb).weightsArray()!.byteOffset;
  const lengths = lengthFields(original);
  assert.ok(blobStart > 0 && blobStart < original.length);
  assert.ok(lengths.length > 100, `found only ${lengths.length} length fields`);
  // The pristine file loads.
  validateGraph(decodeModel(original, "squeezenet1_1.braid"));

  const work = original.slice();
  const view = new DataView(work.buffer);
  const rng = new Random(SEED);
  const loaded: Record<Kind, number> = { flip: 0, truncate: 0, overwrite: 0, zero: 0, length: 0 };
  const rejected = new Map<string, number>();
  let slowest = 0;

  /** A position: 90% in the metadata (and the blob's length prefix), 10% anywhere. */
  const position = () =>
    rng.next() < 0.9 ? rng.int(0, blobStart - 1) : rng.int(0, original.length - 1);

  for (let i = 0; i < CASES; i++) {
    const kind = rng.pick(KINDS);
    let bytes: Uint8Array = work;
    let from = 0;
    let to = 0; // the range [from, to) changed in `work`, restored after the case
    let what = "";
    switch (kind) {
      case "flip": {
        const at = position();
        const bit = rng.int(0, 7);
        work[at] ^= 1 << bit;
        [from, to, what] = [at, at + 1, `bit ${bit} of byte ${at}`];
        break;
      }
      case "truncate": {
        const length = rng.next() < 0.7 ? rng.int(0, blobStart + 64) : rng.int(0, work.length - 1);
        bytes = work.subarray(0, length);
        what = `to ${length} bytes`;
        break;
      }
      case "overwrite": {
        const at = position();
        const n = Math.min(rng.int(1, 8), work.length - at);
        for (let k = 0; k < n; k++) work[at + k] = rng.int(0, 255);
        [from, to, what] = [at, at + n, `${n} bytes at ${at}`];
        break;
      }
      case "zero": {
        const at = position();
        const n = Math.min(rng.int(1, 256), work.length - at);
        work.fill(0, at, at + n);
        [from, to, what] = [at, at + n, `${n} bytes at ${at}`];
        break;
      }
      case "length": {
        const at = rng.pick(lengths);
        const old = view.getUint32(at, true);
        const value = rng.pick([
          0,
          old + 1,
          Math.max(0, old - 1),
          old * 2,
          old + rng.int(2, 64),
          0x7fffffff,
          0x80000000,
          0xffffffff,
          work.length,
          rng.int(0, 0xffffffff),
        ]) >>> 0;
        view.setUint32(at, value, true);
        [from, to, what] = [at, at + 4, `length at ${at}: ${old} -> ${value}`];
        break;
      }
    }

    const start = performance.now();
    try {
      const g = decodeModel(bytes, `fuzz-${i}.braid`);
      validateGraph(g);
      loaded[kind]++;
    } catch (e) {
      if (!(e instanceof BraidError)) {
        throw new Error(`case ${i} (seed ${SEED}, ${kind} ${what}) threw a non-BraidError: ${e}`, {
          cause: e,
        });
      }
      if (e.code === "MALFORMED_FILE" || e.code === "BAD_IDENTIFIER") {
        assert.ok(e.message.includes(`fuzz-${i}.braid`), e.message);
      }
      rejected.set(e.code, (rejected.get(e.code) ?? 0) + 1);
    }
    const ms = performance.now() - start;
    slowest = Math.max(slowest, ms);
    assert.ok(ms < CASE_LIMIT_MS, `case ${i} (${kind} ${what}) took ${ms.toFixed(0)} ms`);

    work.set(original.subarray(from, to), from);
  }
  assert.deepStrictEqual(work, original);

  const totalLoaded = Object.values(loaded).reduce((a, b) => a + b, 0);
  const byCode = [...rejected].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`);
  console.log(
    `fuzz (seed ${SEED}, ${CASES} cases on a ${original.length}-byte file): ` +
      `${totalLoaded} loaded and validated ` +
      `(${Object.entries(loaded).map(([k, n]) => `${k} ${n}`).join(", ")}), ` +
      `${CASES - totalLoaded} rejected (${byCode.join(", ")}); slowest case ${
        slowest.toFixed(1)
      } ms`,
  );
  assert.ok(totalLoaded > 0 && rejected.size > 0, "the fuzzer should both load and reject files");
});
