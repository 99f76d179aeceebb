/** The command line, run as a user would: zoo → info → run, tune, and usage errors. */
import { assert } from "./deps.ts";
import { TuningCache } from "../lib/runtime/tuning.ts";

const main = new URL("../lib/cli/main.ts", import.meta.url).pathname;

async function braid(...args: string[]) {
  return await braidWith({}, ...args);
}

/** braid with more environment variables set. */
async function braidWith(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", main, ...args],
    env: { NO_COLOR: "1", ...env },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("cli: zoo, info and run on squeezenet1_1", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/squeezenet.braid`;
  const zoo = await braid("zoo", "squeezenet1_1", "-o", file);
  assert.equal(zoo.code, 0, zoo.stderr);
  assert.match(zoo.stdout, /1,235,496 parameters/);

  const info = await braid("info", file);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /parameters\s+1,235,496/);
  assert.match(info.stdout, /critical path\s+\d+ ops/);
  assert.match(info.stdout, /maximum width\s+\d+ ops/);

  const run = await braid("run", file, "--device", "cpu", "--runs", "2");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /top-5/);
  assert.equal(run.stdout.match(/class\s+\d+\s+p=/g)?.length, 5);
  assert.match(run.stdout, /latency: median [\d.]+ ms/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli: schedule draws one bar per op of the scheduled graph", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/squeezenet.braid`;
  assert.equal((await braid("zoo", "squeezenet1_1", "-o", file)).code, 0);
  const out = await braid(
    "schedule",
    file,
    "--scheduler",
    "opara",
    "--device",
    "cpu",
    "--svg",
    `${dir}/t.svg`,
  );
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /scheduler\s+opara: \d+ streams/);
  const bars = Number(/\((\d+) bars\)/.exec(out.stdout)![1]);
  const svg = await Deno.readTextFile(`${dir}/t.svg`);
  assert.equal(svg.match(/<rect class="op"/g)?.length, bars);
  const bad = await braid("schedule", file, "--scheduler", "magic");
  assert.equal(bad.code, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli: errors are one line with a code, and a non-zero exit", async () => {
  const missing = await braid("info", "/nonexistent/model.braid");
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /\[MALFORMED_FILE\] cannot read model file \/nonexistent\/model\.braid/,
  );
  const unknown = await braid("zoo", "alexnet", "-o", "/tmp/x.braid");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /alexnet/);
  const usage = await braid("frobnicate");
  assert.equal(usage.code, 2);
});

Deno.test("cli: tune writes the tuning cache and reports per model; partitions need a GPU", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/squeezenet.braid`;
    assert.equal((await braid("zoo", "squeezenet1_1", "-o", file)).code, 0);
    const cache = `${dir}/tuning.json`;
    const json = `${dir}/run.json`;
    const ok = await braid("tune", file, "--device", "cpu", "--cache", cache, "--json", json);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /tuned squeezenet1_1 in the whole device \(\d+ SMs\)/);
    assert.match(ok.stdout, /1 model tuned one after another: [\d.]+ s wall/);
    await TuningCache.load(cache); // a valid cache file
    const run = JSON.parse(await Deno.readTextFile(json));
    assert.equal(run.mode, "sequential");
    assert.equal(run.results.length, 1);
    assert.equal(run.results[0].model, "squeezenet1_1");
    assert.equal(run.results[0].partition, undefined);

    const cpu = await braid("tune", file, "--sms", "16", "--device", "cpu", "--cache", cache);
    assert.equal(cpu.code, 1);
    assert.match(cpu.stderr, /\[NATIVE_UNSUPPORTED\].*no SM partitions/);

    const zero = await braid("tune", file, "--sms", "0", "--cache", cache);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /\[USAGE\] --sms/);

    const twice = await braid("tune", file, file, "--device", "cpu", "--cache", cache);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /\[USAGE\] .*squeezenet\.braid is named twice/);

    // A switch's typo stops the tune before any work, not when its step comes.
    const badSwitch = await braidWith(
      { BRAID_TRIAL_TIMING: "sometimes" },
      "tune",
      file,
      "--device",
      "cpu",
      "--cache",
      cache,
    );
    assert.equal(badSwitch.code, 1);
    assert.match(badSwitch.stderr, /\[BAD_OPTION\] BRAID_TRIAL_TIMING is "sometimes"/);

    const other = `${dir}/squeezenet-copy.braid`;
    await Deno.copyFile(file, other);
    const noSms = await braid("tune", file, other, "--concurrent", "--device", "cpu");
    assert.equal(noSms.code, 2);
    assert.match(noSms.stderr, /--concurrent needs --sms/);

    const groups = await braid("tune", file, file, "--group", "1", "--device", "cpu");
    assert.equal(groups.code, 2);
    assert.match(groups.stderr, /--group applies to one model/);

    const concurrent = await braid(
      "tune",
      file,
      other,
      "--concurrent",
      "--sms",
      "16",
      "--device",
      "cpu",
      "--cache",
      cache,
    );
    assert.equal(concurrent.code, 1);
    assert.match(concurrent.stderr, /\[NATIVE_UNSUPPORTED\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: both ways of ending the process leave the same files, output and exit code", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/squeezenet.braid`;
    assert.equal((await braid("zoo", "squeezenet1_1", "-o", file)).code, 0);
    const ends: Record<string, { stdout: string; entries: number; results: number }> = {};
    for (const mode of ["fast", "teardown"]) {
      const cache = `${dir}/${mode}.json`;
      const json = `${dir}/${mode}-run.json`;
      const args = ["tune", file, "--device", "cpu", "--cache", cache, "--json", json];
      const out = await braidWith({ BRAID_EXIT: mode }, ...args);
      assert.equal(out.code, 0, out.stderr);
      const run = JSON.parse(await Deno.readTextFile(json)); // written whole before the exit
      assert.ok(run.endedAtMs >= run.startedAtMs + run.wallMs, "the run ended after its wall");
      ends[mode] = {
        stdout: out.stdout.replace(/[\d.]+ m?s\b/g, "T").replaceAll(mode, "MODE"),
        entries: (await TuningCache.load(cache)).size, // saved whole before the exit
        results: run.results.length,
      };
      // An error still ends with its own code and message, either way.
      const missing = await braidWith({ BRAID_EXIT: mode }, "info", `${dir}/none.braid`);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /\[MALFORMED_FILE\]/);
    }
    assert.equal(ends.fast.results, 1);
    assert.deepEqual(ends.fast, ends.teardown);
    const bad = await braidWith({ BRAID_EXIT: "later" }, "zoo");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\[BAD_OPTION\] BRAID_EXIT is "later"; use fast or teardown/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
