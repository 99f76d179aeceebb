// `make demo`'s googlenet top-5 from Node; run where build/googlenet.braid is (`make demo` writes it).
import { loadModel, Session } from "@braid/braid";
import { Random } from "@braid/braid/random";
const session = await Session.create(await loadModel("build/googlenet.braid"), { device: "cpu" });
const { logits } = await session.run({ input: new Random(1).floats(3 * 224 * 224, 0, 1) });
const max = Math.max(...logits), exp = Array.from(logits, (v) => Math.exp(v - max));
const sum = exp.reduce((a, b) => a + b), ranked = exp.map((e, i) => [i, e / sum]);
ranked.sort((a, b) => b[1] - a[1]).slice(0, 5)
  .forEach(([i, p]) => console.log(`  class ${String(i).padStart(4)}  p=${p.toFixed(5)}`));
