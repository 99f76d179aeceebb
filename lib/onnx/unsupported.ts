/**
 * Nodes braid cannot run, collected over the whole walk and reported in one BraidError
 * (UNKNOWN_OP): each op type with its count and node names (and the reason, where there is one).
 */
import { BraidError } from "../errors.ts";
import type { NodeProto, ValueInfoProto } from "./proto.ts";

/** Unsupported nodes by op type. */
export type UnsupportedNodes = Map<string, { node: string; reason?: string }[]>;

export function addUnsupported(
  unsupported: UnsupportedNodes,
  op: string,
  node: string,
  reason?: string,
): void {
  const list = unsupported.get(op) ?? [];
  list.push({ node, reason });
  unsupported.set(op, list);
}

/** A node that reads an output its producer could not give is reported with that producer. */
export function reportUnproducedUses(
  nodes: NodeProto[],
  outputs: ValueInfoProto[],
  notProduced: Set<string>,
  unsupported: UnsupportedNodes,
) {
  const reported = new Set([...unsupported.values()].flat().map((u) => u.node));
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output) producer.set(o, n);
  const uses = [...nodes.flatMap((n) => n.input), ...outputs.map((o) => o.name)];
  for (const value of uses) {
    if (!notProduced.has(value)) continue;
    const p = producer.get(value);
    if (!p || reported.has(p.name || p.opType)) continue;
    const k = p.output.indexOf(value);
    reported.add(p.name || p.opType);
    addUnsupported(unsupported, p.opType, p.name || p.opType, `output ${k} ("${value}") is used`);
  }
}

export function unsupportedError(source: string, unsupported: UnsupportedNodes): BraidError {
  const nodes = [...unsupported.values()].reduce((s, l) => s + l.length, 0);
  const lines = [...unsupported.entries()].map(([op, list]) => {
    const shown = list.slice(0, 8).map((u) => `"${u.node}"${u.reason ? ` (${u.reason})` : ""}`);
    const more = list.length > 8 ? `, and ${list.length - 8} more` : "";
    return `  ${op} ×${list.length}: ${shown.join(", ")}${more}`;
  });
  return new BraidError(
    "UNKNOWN_OP",
    `${source}: braid cannot run ${nodes} node${nodes === 1 ? "" : "s"} of ` +
      `${unsupported.size} op type${unsupported.size === 1 ? "" : "s"}:\n${lines.join("\n")}`,
  );
}
