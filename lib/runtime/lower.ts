/**
 * Lowering: one graph node → one backend call (entry point, parameter record, tensor operands).
 * This is the only place that knows how an op's attributes map onto braid.h's records.
 */
import { BraidError } from "../errors.ts";
import { type Node, numel, stridesOf, type Value } from "../ir/graph.ts";
import {
  type Activation,
  type AttrsByOp,
  type FusedActivation,
  opSpec,
  sliceRange,
} from "../ir/ops.ts";
import {
  encodeRecord,
  MAX_CONCAT,
  MAX_RANK,
  type RecordName,
  type RecordValues,
} from "../../ffi/params.ts";
import type { OpSymbol } from "../../ffi/backend.ts";

export const ACTIVATION_CODE: Record<Activation, number> = {
  none: 0,
  relu: 1,
  clamp: 2,
  sigmoid: 3,
  tanh: 4,
  gelu: 5,
};
const BINARY_CODE = { Add: 0, Sub: 1, Mul: 2, Div: 3 } as const;

/** A lowered node. Tensor operands are value names ("" for an absent optional one). */
export type Call =
  | { kind: "op"; symbol: OpSymbol; record: RecordName; values: RecordValues; tensors: string[] }
  | { kind: "concat"; params: Uint8Array; inputs: string[]; output: string }
  | { kind: "view" };

const act = (a: FusedActivation) => ({
  activation: ACTIVATION_CODE[a.activation],
  act_min: a.actMin,
  act_max: a.actMax,
});

const op = (
  symbol: OpSymbol,
  record: RecordName,
  values: RecordValues,
  tensors: string[],
): Call => ({ kind: "op", symbol, record, values, tensors });

/** Numerics a session asks for: TF32 for convolutions and for matrix products. */
export interface Precision {
  convTf32: boolean;
  matmulTf32: boolean;
}

/** Element strides of `shape` broadcast to `out` (0 along broadcast dimensions). */
function broadcastStrides(shape: number[], out: number[]): number[] {
  const strides = stridesOf(shape);
  return out.map((_, i) => {
    const j = i - (out.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : strides[j];
  });
}

function checkRank(node: Node, shape: number[], limit = MAX_RANK) {
  if (shape.length > limit) {
    throw new BraidError("SHAPE_MISMATCH", `node "${node.name}": rank ${shape.length} > ${limit}`);
  }
}

export function lowerNode(
  node: Node,
  shapes: Map<string, Value>,
  precision: Precision = { convTf32: false, matmulTf32: false },
): Call {
  const shape = (v: string) => shapes.get(v)!.shape;
  const [x] = node.inputs;
  const [y] = node.outputs;
  const out = shape(y);
  const a = node.attrs;
  if (opSpec(node.op).view) return { kind: "view" };

  switch (node.op) {
    case "Conv2d": {
      const c = a as AttrsByOp["Conv2d"];
      const [n, ch, h, w] = shape(x);
      const [k, , kh, kw] = shape(node.inputs[1]);
      return op("braid_conv2d", "conv2d", {
        n,
        c: ch,
        h,
        w,
        k,
        oh: out[2],
        ow: out[3],
        kh,
        kw,
        stride_h: c.strides[0],
        stride_w: c.strides[1],
        pad_top: c.pads[0],
        pad_left: c.pads[1],
        dilation_h: c.dilations[0],
        dilation_w: c.dilations[1],
        groups: c.groups,
        ...act(c),
        algorithm: -1,
        workspace_bytes: 0,
        allow_tf32: precision.convTf32 ? 1 : 0,
      }, [x, node.inputs[1], node.inputs[2] ?? "", node.inputs[3] ?? "", y, ""]);
    }
    case "BatchNorm": {
      const s = shape(x);
      return op("braid_batchnorm", "batchnorm", {
        n: s[0],
        c: s[1],
        spatial: numel(s.slice(2)),
        epsilon: (a as AttrsByOp["BatchNorm"]).epsilon,
      }, [...node.inputs, y]);
    }
    case "Relu":
    case "Sigmoid":
    case "Tanh":
    case "Gelu":
    case "Clamp": {
      const kind = node.op === "Clamp" ? "clamp" : (node.op.toLowerCase() as Activation);
      const clamp = a as AttrsByOp["Clamp"];
      return op("braid_unary", "unary", {
        count: numel(out),
        kind: ACTIVATION_CODE[kind],
        act_min: node.op === "Clamp" ? clamp.min : 0,
        act_max: node.op === "Clamp" ? clamp.max : 0,
      }, [x, y]);
    }
    case "Add":
    case "Sub":
    case "Mul":
    case "Div": {
      const o = out.length === 0 ? [1] : out;
      checkRank(node, o);
      return op("braid_binary", "binary", {
        kind: BINARY_CODE[node.op],
        rank: o.length,
        shape: o,
        a_strides: broadcastStrides(shape(node.inputs[0]), o),
        b_strides: broadcastStrides(shape(node.inputs[1]), o),
        ...act(a as FusedActivation),
      }, [node.inputs[0], node.inputs[1], y]);
    }
    case "MaxPool2d":
    case "AvgPool2d": {
      const p = a as AttrsByOp["AvgPool2d"];
      const [n, c, h, w] = shape(x);
      return op("braid_pool2d", "pool2d", {
        kind: node.op === "MaxPool2d" ? 0 : 1,
        n,
        c,
        h,
        w,
        oh: out[2],
        ow: out[3],
        kh: p.kernel[0],
        kw: p.kernel[1],
        stride_h: p.strides[0],
        stride_w: p.strides[1],
        pad_top: p.pads[0],
        pad_left: p.pads[1],
        pad_bottom: p.pads[2],
        pad_right: p.pads[3],
        count_include_pad: node.op === "AvgPool2d" && p.countIncludePad ? 1 : 0,
      }, [x, y]);
    }
    case "GlobalAvgPool": {
      const s = shape(x);
      return op("braid_global_avgpool", "global_avgpool", {
        outer: s[0] * s[1],
        spatial: numel(s.slice(2)),
      }, [x, y]);
    }
    case "Concat": {
      if (node.inputs.length > MAX_CONCAT) {
        throw new BraidError(
          "BAD_NODE",
          `node "${node.name}": Concat of ${node.inputs.length} inputs (at most ${MAX_CONCAT})`,
        );
      }
      const axis = (a as AttrsByOp["Concat"]).axis;
      const ax = axis < 0 ? axis + out.length : axis;
      const params = encodeRecord("concat", {
        count: node.inputs.length,
        outer: numel(out.slice(0, ax)),
        out_inner: numel(out.slice(ax)),
        inner: node.inputs.map((v) => numel(shape(v).slice(ax))),
      });
      return { kind: "concat", params, inputs: node.inputs, output: y };
    }
    case "Transpose": {
      checkRank(node, out);
      const inStrides = stridesOf(shape(x));
      const perm = (a as AttrsByOp["Transpose"]).perm;
      return op("braid_strided_copy", "strided_copy", {
        rank: Math.max(1, out.length),
        shape: out.length ? out : [1],
        strides: out.length ? perm.map((p) => inStrides[p]) : [1],
        offset: 0,
      }, [x, y]);
    }
    case "Slice": {
      checkRank(node, out);
      const s = a as AttrsByOp["Slice"];
      const inShape = shape(x);
      const strides = stridesOf(inShape);
      const steps = inShape.map(() => 1);
      let offset = 0;
      s.axes.forEach((axis, i) => {
        const d = axis < 0 ? axis + inShape.length : axis;
        const fail = (m: string): never => {
          throw new BraidError("BAD_ATTRIBUTE", `node "${node.name}": ${m}`);
        };
        const r = sliceRange(inShape[d], s.starts[i], s.ends[i], s.steps[i], fail);
        if (r.count > 0) offset += r.start * strides[d];
        steps[d] = r.step;
      });
      return op("braid_strided_copy", "strided_copy", {
        rank: Math.max(1, out.length),
        shape: out.length ? out : [1],
        strides: out.length ? strides.map((st, d) => st * steps[d]) : [1],
        offset,
      }, [x, y]);
    }
    case "Gemm": {
      const g = a as AttrsByOp["Gemm"];
      const k = shape(x).at(-1)!;
      const n = out.at(-1)!;
      return op("braid_gemm", "gemm", {
        m: numel(out) / n,
        n,
        k,
        trans_b: g.transB ? 1 : 0,
        alpha: g.alpha,
        beta: g.beta,
        ...act(g),
        allow_tf32: precision.matmulTf32 ? 1 : 0,
      }, [x, node.inputs[1], node.inputs[2] ?? "", y]);
    }
    case "MatMul": {
      const m = a as AttrsByOp["MatMul"];
      const [sa, sb] = [shape(node.inputs[0]), shape(node.inputs[1])];
      const batch = out.slice(0, -2);
      const batchStrides = (s: number[]) => {
        const matrix = s.at(-1)! * s.at(-2)!;
        return broadcastStrides(s.slice(0, -2), batch).map((st) => st * matrix);
      };
      return op("braid_matmul", "matmul", {
        batch_rank: batch.length,
        batch_shape: batch,
        a_batch_strides: batchStrides(sa),
        b_batch_strides: batchStrides(sb),
        m: out.at(-2)!,
        n: out.at(-1)!,
        k: sa.at(-1)!,
        trans_b: m.transB ? 1 : 0,
        alpha: m.alpha,
        allow_tf32: precision.matmulTf32 ? 1 : 0,
      }, [node.inputs[0], node.inputs[1], y]);
    }
    case "Softmax": {
      const axis = (a as AttrsByOp["Softmax"]).axis;
      const ax = axis < 0 ? axis + out.length : axis;
      return op("braid_softmax", "softmax", {
        outer: numel(out.slice(0, ax)),
        axis: out[ax],
        inner: numel(out.slice(ax + 1)),
      }, [x, y]);
    }
    case "LayerNorm": {
      const l = a as AttrsByOp["LayerNorm"];
      const ax = l.axis < 0 ? l.axis + out.length : l.axis;
      return op("braid_layernorm", "layernorm", {
        rows: numel(out.slice(0, ax)),
        cols: numel(out.slice(ax)),
        epsilon: l.epsilon,
      }, [x, node.inputs[1], node.inputs[2], y]);
    }
    case "Gather": {
      const data = shape(x);
      const indices = shapes.get(node.inputs[1])!;
      if (indices.dtype !== "int32") {
        throw new BraidError(
          "INPUT_TYPE",
          `node "${node.name}": indices "${indices.name}" must be int32 at run time`,
        );
      }
      const axis = (a as AttrsByOp["Gather"]).axis;
      const ax = axis < 0 ? axis + data.length : axis;
      return op("braid_gather", "gather", {
        outer: numel(data.slice(0, ax)),
        axis: data[ax],
        inner: numel(data.slice(ax + 1)),
        count: numel(indices.shape),
      }, [x, node.inputs[1], y]);
    }
    default:
      throw new BraidError("UNKNOWN_OP", `node "${node.name}": no lowering for op "${node.op}"`);
  }
}
