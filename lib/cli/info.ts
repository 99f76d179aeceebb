/** `braid info FILE.braid`: what a model holds and how much parallelism its graph has. */
import { graphFlops, parameterCount } from "../analysis/cost.ts";
import { buildDag, criticalPath, reachability, width } from "../analysis/dag.ts";
import { opCost } from "../analysis/cost.ts";
import { validateGraph } from "../ir/validate.ts";
import { loadModel } from "../runtime/model.ts";
import { count, flops, table } from "./output.ts";

export async function info(path: string): Promise<number> {
  using model = await loadModel(path);
  const graph = model.graph;
  const shapes = validateGraph(graph);
  const dag = buildDag(graph);
  const reach = reachability(dag);
  const unit = criticalPath(dag);
  const byCost = criticalPath(dag, (i) => opCost(graph.nodes[i], shapes).flops);
  const totalFlops = graphFlops(graph, shapes);
  const ops = new Map<string, number>();
  for (const n of graph.nodes) ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
  const io = (names: string[]) =>
    names.map((n) => `${n} ${shapes.get(n)!.dtype}[${shapes.get(n)!.shape}]`).join(", ");
  console.log(table([
    ["model", graph.name],
    ["inputs", io(graph.inputs)],
    ["outputs", io(graph.outputs)],
    ["ops", `${count(graph.nodes.length)} (${[...ops].map(([k, v]) => `${k} ${v}`).join(", ")})`],
    ["parameters", count(parameterCount(graph))],
    ["FLOPs", flops(totalFlops)],
    [
      "critical path",
      `${unit.length} ops; by FLOPs ${flops(byCost.length)} ` +
      `(${(100 * byCost.length / Math.max(1, totalFlops)).toFixed(1)}% of all)`,
    ],
    ["maximum width", `${width(dag, reach)} ops`],
  ]));
  return 0;
}
