/**
 * `braid schedule FILE --scheduler X [--svg OUT.svg]`: schedules a model and draws the timeline,
 * one lane per stream and one bar per op. On a GPU the bars are measured (device events around
 * every launch of an eager run); on the CPU they come from the H200 cost model.
 */
import type { OpCost } from "../analysis/cost.ts";
import { H200, opClass, timeline } from "../analysis/device_model.ts";
import { opSpec } from "../ir/ops.ts";
import { loadModel } from "../runtime/model.ts";
import { type DeviceOption, Session } from "../runtime/session.ts";
import { kernelCosts, type SchedulerName } from "../schedule/mod.ts";
import { type Bar, timelineSvg } from "../schedule/timeline.ts";
import { sequentialSchedule } from "../schedule/sequential.ts";
import { buildDag } from "../analysis/dag.ts";
import { inferShapes } from "../ir/validate.ts";
import { writeFile } from "../platform.ts";
import { table } from "./output.ts";

export interface ScheduleOptions {
  scheduler: SchedulerName;
  device: DeviceOption;
  batch?: number;
  svg?: string;
}

export async function schedule(path: string, options: ScheduleOptions): Promise<number> {
  using model = await loadModel(path);
  using session = await Session.create(model, {
    device: options.device,
    scheduler: options.scheduler,
    batch: options.batch,
  });
  const { graph, schedule: plan } = session;
  const report = session.report();
  const shapes = inferShapes(graph, report.batch);
  const costs: OpCost[] = kernelCosts(graph, shapes);
  const kind = (node: number): Bar["kind"] =>
    opSpec(graph.nodes[node].op).view ? "view" : opClass(costs[node], H200);
  const label = (node: number) => `${graph.nodes[node].name} (${graph.nodes[node].op})`;

  const measured = report.device.backend === "cuda";
  const bars: Bar[] = measured
    ? session.measureTimeline().map((m) => ({
      stream: m.stream,
      startUs: m.startMs * 1000,
      endUs: m.endMs * 1000,
      label: label(m.node),
      kind: kind(m.node),
    }))
    : (() => {
      const t = timeline(plan, costs, H200);
      return plan.launches.map((l, i) => ({
        stream: l.stream,
        startUs: t.start[i],
        endUs: t.end[i],
        label: label(l.node),
        kind: kind(l.node),
      }));
    })();
  const modelled = timeline(plan, costs, H200).latencyUs;
  const sequential = timeline(sequentialSchedule(buildDag(graph)), costs, H200).latencyUs;
  console.log(table([
    ["model", `${graph.name}, batch ${report.batch}`],
    ["scheduler", `${report.scheduler}: ${report.streams} streams, ${report.events} events`],
    ["kernels", String(report.kernelLaunches)],
    [
      "modelled (H200)",
      `${modelled.toFixed(1)} µs vs sequential ${sequential.toFixed(1)} µs ` +
      `(${(sequential / modelled).toFixed(2)}×)`,
    ],
    [
      "arena",
      `${report.arenaBytes} bytes (sequential plan ${report.sequentialArenaBytes}, ` +
      `no reuse ${report.noReuseBytes})`,
    ],
  ]));
  if (options.svg) {
    const source = measured
      ? `measured on ${report.device.name} (eager issue, device events)`
      : "modelled (H200 cost model)";
    const svg = timelineSvg(bars, { title: `${graph.name} · ${report.scheduler}`, source });
    await writeFile(options.svg, new TextEncoder().encode(svg));
    console.log(`wrote ${options.svg} (${bars.length} bars)`);
  }
  return 0;
}
