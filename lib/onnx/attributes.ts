/** Typed access to an ONNX node's attributes, with errors that name the node. */
import { BraidError } from "../errors.ts";
import {
  type AttributeProto,
  AttributeType,
  type NodeProto,
  type TensorProto,
  toNumber,
} from "./proto.ts";

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(AttributeType).map(([k, v]) => [v, k]),
);

export class NodeAttributes {
  readonly #byName = new Map<string, AttributeProto>();

  /** `what` names the node in messages, e.g. `node "conv1" (Conv)`. */
  constructor(node: NodeProto, readonly what: string) {
    for (const a of node.attribute) this.#byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  #get(name: string, type: number): AttributeProto | undefined {
    const a = this.#byName.get(name);
    if (a && a.type !== type) {
      throw new BraidError(
        "BAD_ATTRIBUTE",
        `${this.what}: attribute "${name}" is ${TYPE_NAMES[a.type] ?? a.type}, expected ` +
          TYPE_NAMES[type],
      );
    }
    return a;
  }

  #missing(name: string): never {
    throw new BraidError("BAD_ATTRIBUTE", `${this.what}: attribute "${name}" is missing`);
  }

  int(name: string, fallback?: number): number {
    const a = this.#get(name, AttributeType.INT);
    if (a) return toNumber(a.i);
    return fallback ?? this.#missing(name);
  }

  ints(name: string, fallback?: number[]): number[] {
    const a = this.#get(name, AttributeType.INTS);
    if (a) return a.ints.map(toNumber);
    return fallback ?? this.#missing(name);
  }

  float(name: string, fallback?: number): number {
    const a = this.#get(name, AttributeType.FLOAT);
    if (a) return a.f;
    return fallback ?? this.#missing(name);
  }

  floats(name: string, fallback?: number[]): number[] {
    const a = this.#get(name, AttributeType.FLOATS);
    if (a) return [...a.floats];
    return fallback ?? this.#missing(name);
  }

  string(name: string, fallback?: string): string {
    const a = this.#get(name, AttributeType.STRING);
    if (a) return new TextDecoder().decode(a.s);
    return fallback ?? this.#missing(name);
  }

  tensor(name: string): TensorProto | undefined {
    return this.#get(name, AttributeType.TENSOR)?.t;
  }
}
