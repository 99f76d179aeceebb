/**
 * The Deno side of the Node tests (`make test-node` runs it before `node --test`): runs googlenet
 * on the CPU backend in Deno and writes what the npm package must reproduce under Node, into the
 * folder given (default build/node-test/, git-ignored, never in the package):
 *   input.f32, <scheduler>.logits.f32   the seeded input of `make demo` and the raw output bytes
 *   expected.json                       file names, report figures, and `make demo`'s top-5 lines
 * The model is build/googlenet.braid, the zoo file `make demo` writes (written here if missing).
 */
import { loadModel, Session } from "../../mod.ts";
import { randomInputs } from "../../lib/cli/run.ts";

const root = new URL("../../", import.meta.url);
const path = (relative: string) => decodeURIComponent(new URL(relative, root).pathname);
const out = Deno.args[0] ?? path("build/node-test");
const model = path("build/googlenet.braid");
const SCHEDULERS = ["auto", "opara"] as const;

// `make demo` itself (it writes the model file when missing): its top-5 lines.
const demo = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "lib/cli/main.ts",
    "demo",
  ],
  cwd: path("."),
  env: { NO_COLOR: "1" },
  stderr: "inherit",
}).output();
const demoLines = new TextDecoder().decode(demo.stdout).split("\n");
if (!demo.success) throw new Error(`braid demo failed:\n${demoLines.join("\n")}`);
const demoTop5 = demoLines.filter((line) => /^ {2}class +\d+ {2}p=/.test(line));
if (demoTop5.length !== 5) throw new Error(`no top-5 in braid demo's output:\n${demoLines}`);

await Deno.mkdir(out, { recursive: true });
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const figures = (s: Session) => {
  const { scheduler, ops, kernelLaunches, streams, events, arenaBytes, weightBytes } = s.report();
  return { scheduler, ops, kernelLaunches, streams, events, arenaBytes, weightBytes };
};

using loaded = await loadModel(model);
const runs = [];
let input: { name: string; file: string } | undefined;
for (const scheduler of SCHEDULERS) {
  using session = await Session.create(loaded, { device: "cpu", scheduler });
  const inputs = randomInputs(session); // seed 1, as `make demo`
  const [name] = Object.keys(inputs);
  if (!input) {
    input = { name, file: "input.f32" };
    await Deno.writeFile(`${out}/${input.file}`, bytesOf(inputs[name]));
  }
  const output = session.outputs[0].name;
  const result = await session.run(inputs);
  const file = `${scheduler}.logits.f32`;
  await Deno.writeFile(`${out}/${file}`, bytesOf(result[output]));
  runs.push({ scheduler, output, file, report: figures(session) });
}

const expected = { model, input, runs, demoTop5 };
await Deno.writeTextFile(`${out}/expected.json`, JSON.stringify(expected, null, 2) + "\n");
console.log(`expected outputs for the Node tests: ${out} (${runs.length} runs)`);
