/**
 * The operator parameter records of braid.h, mirrored once: each record is a list of 4-byte
 * little-endian fields in the C struct's order. `name` is int32, `name:f` is float, and
 * `name[N]` is an int32 array of N elements (shorter arrays are zero-padded).
 */
import { BraidError } from "../lib/errors.ts";

export const MAX_RANK = 6;
export const MAX_BATCH_RANK = 4;
export const MAX_CONCAT = 64;

const LAYOUTS = {
  conv2d: "n c h w k oh ow kh kw stride_h stride_w pad_top pad_left dilation_h dilation_w " +
    "groups activation act_min:f act_max:f algorithm workspace_bytes allow_tf32",
  batchnorm: "n c spatial epsilon:f",
  unary: "count kind act_min:f act_max:f",
  binary: "kind rank shape[6] a_strides[6] b_strides[6] activation act_min:f act_max:f",
  pool2d: "kind n c h w oh ow kh kw stride_h stride_w pad_top pad_left pad_bottom pad_right " +
    "count_include_pad",
  global_avgpool: "outer spatial",
  concat: "count outer out_inner inner[64]",
  strided_copy: "rank shape[6] strides[6] offset",
  gemm: "m n k trans_b alpha:f beta:f activation act_min:f act_max:f allow_tf32",
  matmul:
    "batch_rank batch_shape[4] a_batch_strides[4] b_batch_strides[4] m n k trans_b alpha:f allow_tf32",
  softmax: "outer axis inner",
  layernorm: "rows cols epsilon:f",
  gather: "outer axis inner count",
} as const;

export type RecordName = keyof typeof LAYOUTS;
export type RecordValues = Record<string, number | readonly number[]>;

interface Field {
  name: string;
  float: boolean;
  count: number; // 1 for scalars
  offset: number; // bytes
}

function parseLayout(spec: string): { fields: Field[]; size: number } {
  let offset = 0;
  const fields = spec.split(/\s+/).map((token) => {
    const m = /^(\w+)(?:\[(\d+)\])?(:f)?$/.exec(token)!;
    const field = { name: m[1], float: m[3] === ":f", count: Number(m[2] ?? 1), offset };
    offset += 4 * field.count;
    return field;
  });
  return { fields, size: offset };
}

const PARSED = Object.fromEntries(
  Object.entries(LAYOUTS).map(([name, spec]) => [name, parseLayout(spec)]),
) as Record<RecordName, { fields: Field[]; size: number }>;

/** Field offsets of a record, for checking against the C compiler's offsetof. */
export function recordLayout(name: RecordName): { fields: Field[]; size: number } {
  return PARSED[name];
}

/** Encodes a parameter record. Every field must be given; unknown fields are an error. */
export function encodeRecord(name: RecordName, values: RecordValues): Uint8Array {
  const { fields, size } = PARSED[name];
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  const unknown = Object.keys(values).filter((k) => !fields.some((f) => f.name === k));
  if (unknown.length > 0) {
    throw new BraidError("NATIVE_INTERNAL", `${name} record has no field(s) ${unknown.join(", ")}`);
  }
  for (const f of fields) {
    const v = values[f.name];
    if (v === undefined) throw new BraidError("NATIVE_INTERNAL", `${name}.${f.name} is missing`);
    const items = typeof v === "number" ? [v] : v;
    if (items.length > f.count) {
      throw new BraidError("NATIVE_INTERNAL", `${name}.${f.name} holds at most ${f.count} values`);
    }
    items.forEach((x, i) => {
      const at = f.offset + 4 * i;
      if (f.float) view.setFloat32(at, x, true);
      else {
        if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) {
          throw new BraidError("BAD_ATTRIBUTE", `${name}.${f.name} = ${x} is not an int32`);
        }
        view.setInt32(at, x, true);
      }
    });
  }
  return bytes;
}
