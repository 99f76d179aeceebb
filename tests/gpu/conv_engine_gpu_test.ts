/**
 * Convolutions on cuDNN engine configurations (csrc/cuda/conv_engine.cu): every configuration
 * braid can name (fused epilogue or not, the heuristic's first ranks, the whole device or a
 * 32-SM target) computes what the CPU backend computes, in strict fp32 and TF32, on the whole
 * device and inside a 32-SM partition (where the heuristic may list none for the target); the
 * tuner's choice among them and the legacy algorithms runs too; and ids that cannot apply are
 * clear errors.
 */
import { Backend, type Handle } from "../../ffi/backend.ts";
import { engineAlgorithm, engineOf } from "../../ffi/conv_algorithms.ts";
import { encodeRecord } from "../../ffi/params.ts";
import { BraidError } from "../../lib/errors.ts";
import { Random } from "../../lib/util/random.ts";
import { Partition } from "../../mod.ts";
import { assert } from "../deps.ts";
import { withEnvSync } from "../helpers.ts";
import { BASE_SEED, cuda, evalInProcess, expectClose, gpuSuite } from "./gpu.ts";
import { CONV, Device } from "./scenario.ts";

const gpuTest = gpuSuite("conv_engine_gpu_test.ts");

const WORKSPACE_BYTES = 64 << 20;
const TOLERANCE = { strict: 1e-5, tf32: 3e-3 };

type Record = typeof CONV;
interface Case {
  name: string;
  record: Record;
  bias: boolean;
  residual: boolean;
}

const CASES: Case[] = [
  { name: "3x3 pad 1, bias, relu", record: CONV, bias: true, residual: false },
  {
    name: "1x1 16→12 on 14x14, bias, residual, no activation",
    record: {
      ...CONV,
      c: 16,
      h: 14,
      w: 14,
      k: 12,
      oh: 14,
      ow: 14,
      kh: 1,
      kw: 1,
      pad_top: 0,
      pad_left: 0,
      activation: 0,
    },
    bias: true,
    residual: true,
  },
  {
    name: "3x3 groups=2 stride 2, no bias, no activation",
    record: {
      ...CONV,
      c: 8,
      h: 9,
      w: 9,
      k: 8,
      oh: 5,
      ow: 5,
      stride_h: 2,
      stride_w: 2,
      groups: 2,
      activation: 0,
    },
    bias: false,
    residual: false,
  },
  {
    // ResNet's downsample: the last input row and column fall between strides (implied end
    // padding -1), which cuDNN's graph is told as none.
    name: "1x1 stride 2 8→16 on 14x14, bias, relu",
    record: {
      ...CONV,
      c: 8,
      h: 14,
      w: 14,
      k: 16,
      oh: 7,
      ow: 7,
      kh: 1,
      kw: 1,
      stride_h: 2,
      stride_w: 2,
      pad_top: 0,
      pad_left: 0,
    },
    bias: true,
    residual: false,
  },
  {
    name: "3x3 64→64 on 28x28, bias, tanh (not fusable: conv alone + braid's pass)",
    record: { ...CONV, c: 64, h: 28, w: 28, k: 64, oh: 28, ow: 28, activation: 4 },
    bias: true,
    residual: false,
  },
];

const sizes = (r: Record) => ({
  x: r.n * r.c * r.h * r.w,
  w: r.k * (r.c / r.groups) * r.kh * r.kw,
  y: r.n * r.k * r.oh * r.ow,
});

/** The case's operands on a backend, filled from one seed. */
function operands(d: Device, c: Case, seed: number) {
  const n = sizes(c.record);
  const rng = new Random(seed);
  const [x, w, bias, residual, y] = [n.x, n.w, c.record.k, n.y, n.y].map((count) => d.alloc(count));
  d.upload(x, rng.floats(n.x));
  d.upload(w, rng.floats(n.w, -0.3, 0.3));
  d.upload(bias, rng.floats(c.record.k, -0.2, 0.2));
  d.upload(residual, rng.floats(n.y));
  const tensors = [x, w, c.bias ? bias : 0n, c.residual ? residual : 0n, y];
  return { tensors, y, count: n.y };
}

function cpuReference(c: Case, seed: number): Float32Array {
  const d = new Device(Backend.open("cpu"));
  try {
    const { tensors, y, count } = operands(d, c, seed);
    d.op("braid_conv2d", "conv2d", { ...c.record, algorithm: 0 }, [...tensors, 0n]);
    return d.download(y, count);
  } finally {
    d.close();
  }
}

/** One case's operands on the device, its CPU answer and a workspace of WORKSPACE_BYTES. */
interface Prepared {
  d: Device;
  tensors: Handle[];
  y: Handle;
  count: number;
  want: Float32Array;
  workspace: Handle;
}

/**
 * Runs `body` on every case, on a fresh CUDA context (bound to `bind`, if given, so its stream 0
 * runs in that partition); `salt` varies the seeds between tests.
 */
function withCases(
  bind: Partition | undefined,
  salt: number,
  body: (c: Case, p: Prepared) => void,
) {
  const backend = cuda();
  const d = new Device(backend);
  try {
    if (bind) backend.contextSetPartition(d.ctx, bind.native.handle);
    const workspace = d.alloc(WORKSPACE_BYTES / 4);
    for (const c of CASES) {
      const seed = (BASE_SEED ^ c.name.length * salt) >>> 0;
      body(c, { d, ...operands(d, c, seed), want: cpuReference(c, seed), workspace });
    }
  } finally {
    d.close();
  }
}

/**
 * Runs `body` with BRAID_CONV_STRICT=1: braid_conv2d then fails where an engine's plan cannot be
 * built or run, instead of quietly running the heuristic's plan in its place as sessions do.
 */
function strictly<T>(body: () => T): T {
  return withEnvSync({ BRAID_CONV_STRICT: "1" }, body);
}

/**
 * Runs every engine id a session there could run on one device (stream 0 of `bind`'s partition,
 * if given), strictly: the whole device's configurations, and inside a partition those targeted at
 * its SMs too (a budget's configurations never run elsewhere).
 */
function checkEngines(bind?: Partition): { ran: number; missing: string[] } {
  let ran = 0;
  const missing: string[] = [];
  strictly(() =>
    withCases(bind, 7919, (c, { d, tensors, y, count, want, workspace }) => {
      const fusable = c.record.activation === 0 || c.record.activation === 1;
      for (const tf32 of [0, 1]) {
        for (const smTarget of bind ? [0, bind.sms] : [0]) {
          for (const fused of fusable ? [false, true] : [false]) {
            for (const rank of [0, 1]) {
              const algorithm = engineAlgorithm({ fused, rank, smTarget });
              const what = `${c.name}: ${fused ? "fused" : "conv only"} rank ${rank}, ` +
                `target ${smTarget}, ${tf32 ? "TF32" : "strict"}${
                  bind ? `, in ${bind.sms} SMs` : ""
                }`;
              const record = {
                ...c.record,
                algorithm,
                workspace_bytes: WORKSPACE_BYTES,
                allow_tf32: tf32,
              };
              d.upload(y, new Float32Array(count));
              try {
                d.op("braid_conv2d", "conv2d", record, [...tensors, workspace]);
              } catch (e) {
                // The heuristic may list fewer usable configurations than the rank asks for (for
                // an SM target, none at all where cuDNN cannot describe the device as a partition
                // sees it: engine_device), or one whose plan cuDNN then refuses to build; either
                // is a clear error, and any other failure is a bug. A targeted configuration may
                // also be refused by cuDNN anywhere on its way (heuristic, plan, execution): that
                // is reported, not failed, and the tuner drops such candidates alike. Rank 0 of
                // the convolution alone for the whole device always runs.
                assert.ok(e instanceof BraidError, String(e));
                const clear = (e.code === "NATIVE_UNSUPPORTED" &&
                  /usable for this convolution/.test(e.message)) ||
                  (e.code === "NATIVE_CUDNN" &&
                    (smTarget > 0 || /cudnnBackendFinalize execution plan/.test(e.message)));
                assert.ok(clear, `${what}: ${e.code}: ${e.message}`);
                if (e.code === "NATIVE_CUDNN") console.log(`    ${what}: ${e.message}`);
                assert.ok(
                  fused || rank > 0 || smTarget > 0,
                  `${what}: no configuration at all: ${e.message}`,
                );
                missing.push(what);
                continue;
              }
              expectClose(
                d.download(y, count),
                want,
                tf32 ? TOLERANCE.tf32 : TOLERANCE.strict,
                what,
              );
              ran++;
            }
          }
        }
      }
    })
  );
  return { ran, missing };
}

gpuTest("cuDNN engine configurations match the CPU backend (whole device)", () => {
  const { ran, missing } = checkEngines();
  console.log(`  ${ran} engine runs matched; not listed by the heuristic: ${missing.length}`);
  for (const m of missing) console.log(`    ${m}`);
  assert.ok(ran >= 2 * 2 * CASES.length, `only ${ran} engine configurations ran`);
});

gpuTest("cuDNN engine configurations match the CPU backend inside a 32-SM partition", () => {
  using partition = Partition.create({ sms: 32, device: "cuda" });
  const { ran, missing } = checkEngines(partition);
  // Whether the 32-SM targets have configurations depends on the cuDNN: one that can describe
  // the device as a green context sees it lists them (engine_device), an older one may not. The
  // whole device's configurations run here as everywhere.
  console.log(`  ${ran} engine runs matched; not listed by the heuristic: ${missing.length}`);
  for (const m of missing) console.log(`    ${m}`);
  assert.ok(ran >= 2 * 2 * CASES.length, `only ${ran} engine configurations ran`);
});

gpuTest("the tuner's choice runs and matches; its engines are the budget's or the device's", () => {
  using partition = Partition.create({ sms: 32, device: "cuda" });
  const kinds: string[] = [];
  for (const bind of [undefined, partition]) {
    withCases(bind, 104729, (c, { d, tensors, y, count, want, workspace }) => {
      const record = { ...c.record, workspace_bytes: WORKSPACE_BYTES, allow_tf32: 1 };
      const choice = d.backend.conv2dTune(d.ctx, 0n, encodeRecord("conv2d", record), [
        ...tensors,
        workspace,
      ]);
      const engine = engineOf(choice.algorithm);
      const where = bind ? `${bind.sms} SMs` : "whole";
      const picked = engine
        ? ` (engine rank ${engine.rank}${engine.fused ? " fused" : ""} @${engine.smTarget})`
        : "";
      kinds.push(`${where} ${c.name}: ${choice.algorithm}${picked}, ${choice.ms.toFixed(4)} ms`);
      // In a partition the tuner times the configurations targeted at its SMs and the whole
      // device's; on the whole device only the latter.
      if (engine) {
        assert.ok([0, bind?.sms ?? 0].includes(engine.smTarget), kinds.at(-1));
      }
      const chosen = {
        ...record,
        algorithm: choice.algorithm,
        workspace_bytes: choice.workspaceBytes,
      };
      d.op("braid_conv2d", "conv2d", chosen, [
        ...tensors,
        choice.workspaceBytes > 0 ? workspace : 0n,
      ]);
      expectClose(d.download(y, count), want, TOLERANCE.tf32, kinds.at(-1)!);
    });
  }
  for (const k of kinds) console.log(`  ${k}`);
});

gpuTest("engine ids that cannot apply are clear errors, and the context goes on", () => {
  const d = new Device(cuda());
  try {
    const c = CASES.find((c) => c.record.activation === 4)!; // tanh: cuDNN's graph cannot fuse it
    const { tensors } = operands(d, c, BASE_SEED);
    const run = (algorithm: number, workspace: Handle = 0n) => () =>
      d.op("braid_conv2d", "conv2d", { ...c.record, algorithm }, [...tensors, workspace]);
    const fused = engineAlgorithm({ fused: true, rank: 0, smTarget: 0 });
    assert.throws(
      run(fused),
      (e: unknown) =>
        e instanceof BraidError && e.code === "NATIVE_INVALID_ARGUMENT" &&
        /fuses the epilogue/.test(e.message),
    );
    assert.throws(
      run(12),
      (e: unknown) =>
        e instanceof BraidError && e.code === "NATIVE_INVALID_ARGUMENT" &&
        /algorithm 12 is not one of this backend's/.test(e.message),
    );
    run(-1)(); // still usable
  } finally {
    d.close();
  }
});

/**
 * Tunes squeezenet1_1's convolutions (the sequential scheduler) in a process of its own, as the
 * CUDA library reads its switches once a process: on the whole device, or in an `sms`-SM
 * partition; with BRAID_TRACE_CONV_TUNE on and `env` set. Returns the trace (the process's stderr)
 * and the algorithm of each convolution choice cached.
 */
async function tuneSqueezenetInProcess(
  env: { [name: string]: string },
  sms?: number,
): Promise<{ trace: string; choices: number[] }> {
  const mod = new URL("../../mod.ts", import.meta.url).href;
  const script = `const { buildZooModel, Partition, Session, TuningCache } = await import("${mod}");
const tuning = new TuningCache();
const partition = ${sms ?? 0} > 0 ? Partition.create({ sms: ${
    sms ?? 0
  }, device: "cuda" }) : undefined;
try {
  const graph = buildZooModel("squeezenet1_1");
  const session = await Session.create(graph, {
    device: "cuda", partition, scheduler: "sequential", tuning,
  });
  session[Symbol.dispose]();
} finally {
  partition?.[Symbol.dispose]();
}
console.log(JSON.stringify(tuning.toJSON().entries));`;
  const { code, stdout, stderr } = await evalInProcess(script, {
    ...env,
    BRAID_TRACE_CONV_TUNE: "1",
  });
  assert.equal(code, 0, stderr);
  const entries: { [key: string]: { algorithm: number } } = JSON.parse(
    stdout.trim().split("\n").at(-1)!,
  );
  const choices = Object.entries(entries).filter(([key]) => key.includes("|conv2d|"))
    .map(([, choice]) => choice.algorithm);
  assert.ok(choices.length > 0, "no convolution choice cached");
  return { trace: stderr, choices };
}

gpuTest(
  "BRAID_CONV_LEGACY=implicit: the implicit GEMMs and engines timed, the other legacy algorithms deferred",
  async () => {
    const { trace, choices } = await tuneSqueezenetInProcess({ BRAID_CONV_LEGACY: "implicit" });
    const traces = trace.split("\n").filter((line) => line.startsWith("braid_conv2d_tune:"));
    assert.ok(traces.length > 0, "no tuning traced");
    // Legacy ids the switch keeps: IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM (fused or plain: 16 + a)
    // and braid's direct kernel; engine ids from 32.
    const kept = (id: number) => [0, 1, 8, 16, 17].includes(id) || id >= 32;
    let deferredUntimed = 0;
    for (const line of traces) {
      const deferred = Number(/(\d+) deferred/.exec(line)?.[1]);
      const best = Number(/best (-?\d+)/.exec(line)?.[1]);
      assert.ok(Number.isInteger(deferred) && Number.isInteger(best), line);
      if (line.includes("(not timed)")) {
        deferredUntimed++;
        assert.ok(deferred > 0 && kept(best), line);
      }
    }
    assert.ok(deferredUntimed > 0, `no convolution deferred an algorithm:\n${traces.join("\n")}`);
    const others = choices.filter((algorithm) => !kept(algorithm));
    // Another legacy algorithm is chosen only where no engine configuration could be timed.
    assert.ok(others.length <= traces.length - deferredUntimed, JSON.stringify(others));
    console.log(
      `  ${traces.length} convolutions tuned, ${deferredUntimed} with algorithms deferred; ` +
        `${choices.length - others.length} of ${choices.length} choices implicit GEMMs or engines`,
    );
  },
);

/** The engine configurations a squeezenet1_1 tuning on 32 SMs tried and chose, targeted or not. */
async function targetedOn32(env: { [name: string]: string }) {
  const { trace, choices } = await tuneSqueezenetInProcess(env, 32);
  const tried = [...trace.matchAll(/^braid_conv2d_tune candidate (-?\d+) on 32 SMs/gm)]
    .map((m) => engineOf(Number(m[1])))
    .filter((e) => e !== undefined);
  const chosen = choices.map(engineOf).filter((e) => e !== undefined && e.smTarget === 32);
  return { tried, targeted: tried.filter((e) => e.smTarget === 32), chosen };
}

const rankLabel = (e: { fused: boolean; rank: number }) =>
  `${e.fused ? "fused" : "plain"} r${e.rank}`;
const leanRank = (e: { fused: boolean; rank: number }) => e.fused ? e.rank <= 1 : e.rank === 1;

gpuTest(
  "BRAID_CONV_TARGETED: lean by default (in a partition only fused ranks 0–1 and plain rank 1 targeted), all on request",
  async () => {
    // Empty is unset: the default, whatever the test process was started with.
    const lean = await targetedOn32({ BRAID_CONV_TARGETED: "" });
    assert.ok(lean.targeted.length > 0, "no configuration targeted at 32 SMs was tried");
    assert.deepEqual(
      lean.targeted.filter((e) => !leanRank(e)).map(rankLabel),
      [],
      "only the lean ranks targeted",
    );
    // The whole device's configurations are all still tried, rank 0 among them.
    assert.ok(lean.tried.some((e) => e.smTarget === 0 && e.rank === 0), "no whole-device rank 0");
    assert.deepEqual(
      lean.chosen.filter((e) => !leanRank(e!)),
      [],
      "a choice outside the lean ranks",
    );
    const all = await targetedOn32({ BRAID_CONV_TARGETED: "all" });
    const outside = all.targeted.filter((e) => !leanRank(e));
    assert.ok(outside.length > 0, "BRAID_CONV_TARGETED=all tried only the lean ranks");
    assert.ok(all.targeted.length > lean.targeted.length);
    const ranks = (t: typeof lean.targeted) => [...new Set(t.map(rankLabel))].join(", ");
    console.log(
      `  lean: ${lean.tried.length} engine configurations tried on 32 SMs, ` +
        `${lean.targeted.length} targeted (${ranks(lean.targeted)}), ${lean.chosen.length} ` +
        `targeted chosen; all: ${all.tried.length} tried, ${all.targeted.length} targeted ` +
        `(${ranks(all.targeted)})`,
    );
  },
);
