/**
 * Which cuDNN engine configurations braid's conv tuner would find for a zoo model's
 * convolutions, per SM target, on a machine without the GPU (cuDNN 9.8+ builds plans for a
 * device described in JSON; csrc/tools/engine_probe.cu does it through braid's own plan code).
 *
 *   make engine-probe CUDNN_HOME=... CUBLAS_HOME=...
 *   deno run -A bench/engine_probe.ts [--models googlenet,inception_v3] [--targets 0,16,32,64]
 *     [--device bench/devices/h200-cudnn.json] [--whole-device] [--lines]
 *
 * The device file is the H200's properties in cuDNN's JSON (CUDNN_ATTR_DEVICEPROP_JSON_
 * REPRESENTATION; `build/engine_probe --dump-device` writes a GPU's own). An SM budget below the
 * whole device is seen as a green context of that many SMs, as braid's tuner sees it where cuDNN
 * can describe its device; `--whole-device` sees it as the whole device (an older cuDNN). Prints,
 * per target and graph
 * (the convolution alone, or with its epilogue fused), how many of the model's distinct
 * convolutions get a plan at rank 0, 1 and 2, and the engines of rank 0.
 */
import { parseArgs } from "../lib/deps.ts";
import { buildZooModel } from "../mod.ts";
import { inferShapes } from "../lib/ir/validate.ts";
import { optimize } from "../lib/passes/mod.ts";
import { graphVariants } from "../lib/runtime/prepare.ts";
import { lowerNode } from "../lib/runtime/lower.ts";

const FIELDS = [
  "n c h w k oh ow kh kw stride_h stride_w pad_top pad_left dilation_h dilation_w groups",
  "activation allow_tf32",
].join(" ").split(" ");

/** The distinct conv2d records of a zoo model (both graph variants), as the probe's lines. */
export function convLines(model: string): string[] {
  const lines = new Map<string, string>();
  for (const graph of graphVariants(optimize(buildZooModel(model)), "auto", true)) {
    const shapes = inferShapes(graph);
    for (const node of graph.nodes) {
      if (node.op !== "Conv2d") continue;
      const call = lowerNode(node, shapes, { convTf32: true, matmulTf32: false });
      if (call.kind !== "op") continue;
      const [, , bias, residual] = call.tensors;
      const fields = FIELDS.map((f) => call.values[f]).join(" ");
      const key = `${fields} ${bias ? 1 : 0} ${residual ? 1 : 0}`;
      if (!lines.has(key)) lines.set(key, `${model}#${lines.size} ${key}`);
    }
  }
  return [...lines.values()];
}

/** One plan the probe tried: its convolution, SM target, graph, rank, and what came of it. */
export interface ProbeRow {
  conv: string;
  target: number;
  graph: "plain" | "fused";
  rank: number;
  ok: boolean;
  text: string;
}

/** Runs build/engine_probe (or `probe`) on the lines; its stderr header and its rows. */
export async function runProbe(
  lines: string[],
  { device, targets, partitionViews = true, probe = "build/engine_probe" }: {
    device: string;
    targets: number[];
    /** SM budgets seen as green contexts of that many SMs (false: as the whole device). */
    partitionViews?: boolean;
    probe?: string;
  },
): Promise<{ header: string; rows: ProbeRow[] }> {
  const child = new Deno.Command(probe, {
    args: [device, ...targets.map(String), ...(partitionViews ? [] : ["--whole-device"])],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const header = new TextDecoder().decode(stderr).trim();
  if (code !== 0) throw new Error(`${probe} exited with ${code}: ${header}`);
  const rows = new TextDecoder().decode(stdout).trim().split("\n").map((line) => {
    const [conv, target, graph, rank, ok, text] = line.split("\t");
    return {
      conv,
      target: Number(target),
      graph: graph as "plain" | "fused",
      rank: Number(rank),
      ok: ok === "ok",
      text,
    };
  });
  return { header, rows };
}

/** The markdown table of one model's rows: per target and graph, plans at each rank. */
export function probeTable(rows: ProbeRow[], targets: number[]): string[] {
  const out = [
    "| target | graph | tried | rank 0 | rank 1 | rank 2 | rank-0 engines |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const target of targets) {
    for (const graph of ["plain", "fused"]) {
      const mine = rows.filter((r) => r.target === target && r.graph === graph);
      const ok = (rank: number) => mine.filter((r) => r.rank === rank && r.ok).length;
      const engines = new Map<string, number>();
      for (const r of mine.filter((r) => r.rank === 0 && r.ok)) {
        const engine = r.text.match(/^engine \d+/)?.[0] ?? r.text;
        engines.set(engine, (engines.get(engine) ?? 0) + 1);
      }
      const tried = mine.filter((r) => r.rank === 0).length;
      const list = [...engines].map(([e, n]) => `${e} ×${n}`).join(", ") || "none";
      out.push(`| ${target} | ${graph} | ${tried} | ${ok(0)} | ${ok(1)} | ${ok(2)} | ${list} |`);
    }
  }
  return out;
}

if (import.meta.main) {
  const args = parseArgs({
    args: Deno.args,
    options: {
      models: { type: "string", default: "googlenet,inception_v3" },
      targets: { type: "string", default: "0,16,32,64" },
      device: { type: "string", default: "bench/devices/h200-cudnn.json" },
      "whole-device": { type: "boolean", default: false },
      probe: { type: "string", default: "build/engine_probe" },
      lines: { type: "boolean", default: false },
    },
  });
  const targets = args.values.targets.split(",").map(Number);
  const partitionViews = !args.values["whole-device"];
  for (const model of args.values.models.split(",")) {
    const lines = convLines(model);
    const { header, rows } = await runProbe(lines, {
      device: args.values.device,
      targets,
      partitionViews,
      probe: args.values.probe,
    });
    if (args.values.lines) {
      rows.forEach((r) =>
        console.log([r.conv, r.target, r.graph, r.rank, r.ok, r.text].join("\t"))
      );
    }
    console.log(`\n${model}: ${lines.length} distinct convolutions (${header})`);
    probeTable(rows, targets).forEach((line) => console.log(line));
  }
}
