/** `braid zoo NAME -o FILE.braid`: writes a built-in model. */
import { BraidError } from "../errors.ts";
import { parameterCount } from "../analysis/cost.ts";
import { buildZooModel, ZOO, zooNames } from "../models/index.ts";
import { saveModel } from "../runtime/model.ts";
import { bytes, count, table } from "./output.ts";

export async function zoo(
  name: string | undefined,
  output: string | undefined,
  batch: number,
  seed?: number,
): Promise<number> {
  if (!name) {
    const rows = [["model", "parameters", "input", "description"]];
    for (const n of zooNames()) {
      const m = ZOO[n];
      rows.push([n, count(m.parameters), `[${m.inputShape}]`, m.description]);
    }
    console.log(table(rows));
    return 0;
  }
  if (!output) throw new BraidError("USAGE", "usage: braid zoo NAME -o FILE.braid");
  const graph = buildZooModel(name, { batch, seed });
  const size = await saveModel(graph, output);
  console.log(
    `wrote ${output}: ${name}, ${count(parameterCount(graph))} parameters, ${bytes(size)}`,
  );
  return 0;
}
