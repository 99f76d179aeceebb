/**
 * The operator DAG of a graph: nodes by index, edges from producer to consumer, a topological
 * order, reachability as bitsets, the transitive reduction, the critical path and the width.
 */
import type { Graph } from "../ir/graph.ts";
import { topologicalOrder } from "../ir/validate.ts";

export interface Dag {
  size: number;
  preds: number[][];
  succs: number[][];
  /** A topological order of node indices. */
  order: number[];
}

export function buildDag(graph: Graph): Dag {
  const producer = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const preds = graph.nodes.map((n) => [
    ...new Set(n.inputs.flatMap((v) => (producer.has(v) ? [producer.get(v)!] : []))),
  ]);
  const succs: number[][] = graph.nodes.map(() => []);
  preds.forEach((ps, i) => ps.forEach((p) => succs[p].push(i)));
  return { size: graph.nodes.length, preds, succs, order: topologicalOrder(graph) };
}

/** A fixed-size set of small integers. */
export class BitSet {
  readonly words: Uint32Array;
  constructor(readonly size: number) {
    this.words = new Uint32Array((size + 31) >>> 5);
  }
  add(i: number): void {
    this.words[i >>> 5] |= 1 << (i & 31);
  }
  has(i: number): boolean {
    return (this.words[i >>> 5] & (1 << (i & 31))) !== 0;
  }
  union(other: BitSet): void {
    for (let w = 0; w < this.words.length; w++) this.words[w] |= other.words[w];
  }
  count(): number {
    let c = 0;
    for (let w of this.words) {
      for (; w; w &= w - 1) c++;
    }
    return c;
  }
  *[Symbol.iterator](): IterableIterator<number> {
    for (let w = 0; w < this.words.length; w++) {
      for (let bits = this.words[w]; bits; bits &= bits - 1) {
        yield (w << 5) + 31 - Math.clz32(bits & -bits);
      }
    }
  }
}

/** descendants[i]: every node reachable from i by one or more edges. */
export function reachability(dag: Dag): BitSet[] {
  const reach = Array.from({ length: dag.size }, () => new BitSet(dag.size));
  for (let k = dag.order.length - 1; k >= 0; k--) {
    const i = dag.order[k];
    for (const s of dag.succs[i]) {
      reach[i].add(s);
      reach[i].union(reach[s]);
    }
  }
  return reach;
}

/** Successor lists with every edge implied by a longer path removed. */
export function transitiveReduction(dag: Dag, reach: BitSet[] = reachability(dag)): number[][] {
  return dag.succs.map((succs) =>
    succs.filter((s) => !succs.some((t) => t !== s && reach[t].has(s)))
  );
}

/** The heaviest path through the DAG under per-node weights (unit weights by default). */
export function criticalPath(
  dag: Dag,
  weight: (node: number) => number = () => 1,
): { length: number; path: number[] } {
  const best = new Array<number>(dag.size).fill(0);
  const via = new Array<number>(dag.size).fill(-1);
  for (const i of dag.order) {
    let start = 0;
    for (const p of dag.preds[i]) {
      if (best[p] > start) {
        start = best[p];
        via[i] = p;
      }
    }
    best[i] = start + weight(i);
  }
  let end = -1;
  for (let i = 0; i < dag.size; i++) if (end < 0 || best[i] > best[end]) end = i;
  const path: number[] = [];
  for (let i = end; i >= 0; i = via[i]) path.unshift(i);
  return { length: end < 0 ? 0 : best[end], path };
}

/**
 * Each node's slack under per-node weights: how much later it could start without lengthening the
 * critical path (0 on it): critical length − (longest path into it + longest path from it); and
 * that critical length.
 */
export function slack(
  dag: Dag,
  weight: (node: number) => number,
): { slack: number[]; length: number } {
  const into = new Array<number>(dag.size).fill(0);
  const from = new Array<number>(dag.size).fill(0);
  for (const v of dag.order) {
    for (const p of dag.preds[v]) into[v] = Math.max(into[v], into[p] + weight(p));
  }
  for (const v of [...dag.order].reverse()) {
    from[v] = weight(v) + Math.max(0, ...dag.succs[v].map((s) => from[s]));
  }
  const length = Math.max(0, ...from);
  return { slack: from.map((f, v) => Math.max(0, length - into[v] - f)), length };
}

/**
 * Maximum bipartite matching between "out" and "in" copies of the nodes over the given edges
 * (Hopcroft–Karp). matchOut[i] = j means i → j is matched.
 */
export function maximumMatching(size: number, edges: number[][]): number[] {
  const matchOut = new Array<number>(size).fill(-1);
  const matchIn = new Array<number>(size).fill(-1);
  const dist = new Array<number>(size);
  const bfs = (): boolean => {
    const queue: number[] = [];
    let found = false;
    for (let i = 0; i < size; i++) {
      dist[i] = matchOut[i] < 0 ? 0 : Infinity;
      if (matchOut[i] < 0) queue.push(i);
    }
    for (let q = 0; q < queue.length; q++) {
      const i = queue[q];
      for (const j of edges[i]) {
        const k = matchIn[j];
        if (k < 0) found = true;
        else if (dist[k] === Infinity) {
          dist[k] = dist[i] + 1;
          queue.push(k);
        }
      }
    }
    return found;
  };
  const dfs = (i: number): boolean => {
    for (const j of edges[i]) {
      const k = matchIn[j];
      if (k < 0 || (dist[k] === dist[i] + 1 && dfs(k))) {
        matchOut[i] = j;
        matchIn[j] = i;
        return true;
      }
    }
    dist[i] = Infinity;
    return false;
  };
  while (bfs()) {
    for (let i = 0; i < size; i++) if (matchOut[i] < 0) dfs(i);
  }
  return matchOut;
}

/** The width: the largest set of pairwise independent nodes (Dilworth: n − matching on closure). */
export function width(dag: Dag, reach: BitSet[] = reachability(dag)): number {
  const closure = reach.map((r) => [...r]);
  const matched = maximumMatching(dag.size, closure).filter((j) => j >= 0).length;
  return dag.size - matched;
}
