/**
 * braid's cuDNN engine plans (csrc/cuda/conv_engine.cu) built by a real cuDNN, without a GPU:
 * build/engine_probe runs the plan code against cuDNN's description of an H200. It needs cuDNN
 * 9.8+ to build (`make engine-probe CUDNN_HOME=...`); where it is not built (CI has no cuDNN) the
 * tests are skipped with the reason printed. `make test-gpu` builds it, and on a GPU the tests
 * use the device's own description (`engine_probe --dump-device`).
 */
import { convLines, runProbe } from "../bench/engine_probe.ts";
import { GPU } from "./gpu/gpu.ts";
import { assert } from "./deps.ts";

const PROBE = "build/engine_probe";
const built = await Deno.stat(PROBE).then(() => true, () => false);
if (!built) {
  console.log(
    `skipped engine-probe tests: ${PROBE} is not built (needs cuDNN 9.8+: make engine-probe ` +
      "CUDNN_HOME=<cuDNN with include/ and lib/>) (engine_probe_test.ts)",
  );
}

/**
 * The device description: the GPU's own where there is one, else the H200's in bench/. A cuDNN
 * that cannot describe its GPU (braid then aims no heuristic at a partition: engine_device) leaves
 * nothing to check; that is printed, and undefined returned.
 */
async function deviceFile(): Promise<string | undefined> {
  if (!GPU.available) return "bench/devices/h200-cudnn.json";
  const { code, stdout, stderr } = await new Deno.Command(PROBE, { args: ["--dump-device"] })
    .output();
  if (code !== 0) {
    console.log(`  no device description to check: ${new TextDecoder().decode(stderr).trim()}`);
    return undefined;
  }
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(file, new TextDecoder().decode(stdout));
  return file;
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `[engine-probe] ${name}`, ignore: !built, fn });

const fusable = (line: string) => {
  const fields = line.split(" ");
  const activation = Number(fields[17]);
  return activation === 0 || activation === 1;
};

// googlenet, and resnet50's and squeezenet's stride-2 convolutions whose last input row falls
// between strides (an implied end padding of -1, given to cuDNN as none).
test("every googlenet, resnet50, squeezenet1_1 convolution has whole-device plans", async () => {
  const lines = ["googlenet", "resnet50", "squeezenet1_1"].flatMap(convLines);
  const device = await deviceFile();
  if (!device) return;
  const { rows } = await runProbe(lines, { device, targets: [0] });
  for (const line of lines) {
    const conv = line.split(" ")[0];
    for (const graph of fusable(line) ? ["plain", "fused"] : ["plain"]) {
      const first = rows.find((r) => r.conv === conv && r.graph === graph && r.rank === 0);
      assert.ok(first?.ok, `${conv} ${graph}: ${first?.text ?? "not tried"}`);
      assert.match(first!.text, /^engine \d+ /);
    }
  }
});

test("a 32-SM budget has plans for every convolution, seen as a 32-SM green context", async () => {
  const lines = convLines("inception_v3");
  const device = await deviceFile();
  if (!device) return;
  const { header, rows } = await runProbe(lines, { device, targets: [32] });
  const planned = rows.filter((r) => r.rank === 0 && r.graph === "plain" && r.ok).length;
  console.log(`  ${header}: ${planned} of ${lines.length} with a 32-SM plan`);
  // Where this cuDNN makes no partition view of its device, the tuner's targets find none either.
  if (/green contexts/.test(header)) assert.equal(planned, lines.length);
  // Seen as the whole device (a cuDNN that cannot describe its device), cuDNN 9.24 lists no
  // configuration for such a target; each missing one is the clear error the tuner skips.
  const { rows: whole } = await runProbe(lines, { device, targets: [32], partitionViews: false });
  for (const r of whole.filter((r) => !r.ok)) {
    assert.match(r.text, /usable for this convolution|cudnnBackendFinalize/, r.text);
  }
});
