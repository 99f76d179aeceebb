/**
 * Shape-carrying records (braid_binary, braid_strided_copy) on the CPU backend: a rank outside
 * 1..6, an extent that is not positive and a shape of more than 2^40 elements are each a clear
 * NATIVE_INVALID_ARGUMENT naming the function, and the context goes on.
 */
import { Backend } from "../ffi/backend.ts";
import { encodeRecord, type RecordName, type RecordValues } from "../ffi/params.ts";
import { throwsCode } from "./helpers.ts";

const BAD_SHAPES: [string, number, number[], RegExp][] = [
  ["rank 0", 0, [1], /rank 0 is outside 1\.\.6/],
  ["rank 7", 7, [1, 1, 1, 1, 1, 1], /rank 7 is outside 1\.\.6/],
  ["an extent of 0", 2, [3, 0], /shape\[1\] = 0 must be positive/],
  ["a negative extent", 1, [-4], /shape\[0\] = -4 must be positive/],
  ["2^42 elements", 3, [1 << 14, 1 << 14, 1 << 14], /shape has too many elements/],
];

const padded = (values: number[]) => [...values, 0, 0, 0, 0, 0, 0].slice(0, 6);

Deno.test("shape records refuse bad ranks, extents and sizes, naming the function", async () => {
  const backend = Backend.open("cpu");
  const ctx = backend.contextCreate(0);
  try {
    const buffer = backend.bufferAlloc(ctx, 1024);
    const call = (symbol: "braid_binary" | "braid_strided_copy", values: RecordValues) => {
      const record = symbol === "braid_binary" ? "binary" : "strided_copy";
      const params = encodeRecord(record as RecordName, values);
      const tensors = symbol === "braid_binary" ? [buffer, buffer, buffer] : [buffer, buffer];
      return () => backend.op(symbol, ctx, 0n, params, tensors);
    };
    for (const [, rank, shape, message] of BAD_SHAPES) {
      const ones = padded(shape.map(() => 1));
      await throwsCode(
        call("braid_binary", {
          kind: 0,
          rank,
          shape: padded(shape),
          a_strides: ones,
          b_strides: ones,
          activation: 0,
          act_min: 0,
          act_max: 0,
        }),
        "NATIVE_INVALID_ARGUMENT",
        new RegExp(`braid_binary: .*${message.source}`),
      );
      await throwsCode(
        call("braid_strided_copy", { rank, shape: padded(shape), strides: ones, offset: 0 }),
        "NATIVE_INVALID_ARGUMENT",
        new RegExp(`braid_strided_copy: .*${message.source}`),
      );
    }
    // The context goes on: a valid copy of 4 floats.
    call("braid_strided_copy", { rank: 1, shape: padded([4]), strides: padded([1]), offset: 0 })();
    backend.streamSynchronize(ctx, 0n);
    backend.bufferFree(ctx, buffer);
  } finally {
    backend.contextDestroy(ctx);
  }
});
