/**
 * The braid command line:  deno task braid <command> …
 *   zoo NAME -o FILE.braid      write a built-in model
 *   info FILE.braid             ops, parameters, FLOPs, critical path, width
 *   run FILE.braid              run once on random input: top-5 and latency
 *   schedule FILE.braid         schedule it and draw the timeline (--svg)
 *   demo                        googlenet end to end (what `make demo` runs)
 *   import FILE.onnx -o FILE.braid   convert an ONNX model (--check: CUDA against the CPU)
 *   tune FILE.braid …           tune for an SM budget (--sms N) into a tuning-cache file
 */
import { parseArgs } from "../deps.ts";
import { BraidError } from "../errors.ts";
import { info } from "./info.ts";
import { demo, run } from "./run.ts";
import { zoo } from "./zoo.ts";
import { schedule } from "./schedule.ts";
import { importCommand } from "./import.ts";
import { DEFAULT_CACHE, tune } from "./tune.ts";
import { isSchedulerName, SCHEDULERS } from "../schedule/mod.ts";
import { fail, paint } from "./output.ts";
import { exitProcess, fastExit } from "./exit.ts";

const USAGE = `usage: braid <command> [options]

commands:
  zoo [NAME] -o FILE.braid [--batch N] [--seed S]   write a zoo model (no NAME: list them)
  info FILE.braid                                   ops, parameters, FLOPs, critical path, width
  run FILE.braid [--device cpu|cuda|auto] [--batch N] [--runs K] [--eager] [--scheduler S]
                                                    run on seeded random input: top-5, latency
  schedule FILE.braid --scheduler S [--svg OUT.svg] [--device D] [--batch N]
                                                    schedule and draw the timeline
                                                    (S: sequential, opara, nimble, ios, auto)
  demo [--device cpu|cuda|auto] [--runs K]          googlenet end to end
  import FILE.onnx -o FILE.braid [--batch N] [--shape NAME=D0,D1,...] [--check] [--scheduler S]
                                                    convert an ONNX model; --check runs it on
                                                    CUDA and on the CPU and compares
  tune FILE.braid … [--sms N] [--group G] [--fine] [--cache PATH] [--concurrent] [--json OUT]
                                                    tune inside an N-SM partition (default: the
                                                    whole GPU) and save to the tuning cache
                                                    (default ${DEFAULT_CACHE}); --concurrent
                                                    tunes them at once, with a worker on every
                                                    N-SM partition sharing their stages
`;

/**
 * Runs one command; returns its exit code. `exiting`: the process exits right after (run as a
 * script), so `tune` leaves its native state at the end to the driver instead of freeing it.
 */
export async function main(args: string[], { exiting = false } = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      batch: { type: "string" },
      seed: { type: "string" },
      device: { type: "string" },
      runs: { type: "string" },
      eager: { type: "boolean" },
      scheduler: { type: "string" },
      svg: { type: "string" },
      sms: { type: "string" },
      group: { type: "string" },
      fine: { type: "boolean" },
      cache: { type: "string" },
      concurrent: { type: "boolean" },
      json: { type: "string" },
      quiet: { type: "boolean" },
      check: { type: "boolean" },
      shape: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 2;
  }
  const int = (name: "batch" | "seed" | "runs" | "sms" | "group", fallback: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < (name === "seed" || name === "group" ? 0 : 1)) {
      throw new BraidError("USAGE", `--${name} must be a positive integer, got "${raw}"`);
    }
    return n;
  };
  const device = (values.device ?? "auto") as "auto" | "cpu" | "cuda";
  const scheduler = values.scheduler ?? "auto";
  if (!isSchedulerName(scheduler)) {
    throw new BraidError(
      "USAGE",
      `--scheduler must be one of ${Object.keys(SCHEDULERS).join(", ")}, got "${scheduler}"`,
    );
  }
  switch (command) {
    case "zoo":
      return await zoo(rest[0], values.output, int("batch", 1), int("seed", 0) || undefined);
    case "info":
      return await info(need(rest[0], "info FILE.braid"));
    case "run":
      return await run(need(rest[0], "run FILE.braid"), {
        device,
        batch: values.batch === undefined ? undefined : int("batch", 1),
        runs: int("runs", 10),
        eager: values.eager ?? false,
        scheduler,
      });
    case "schedule":
      return await schedule(need(rest[0], "schedule FILE.braid --scheduler S [--svg OUT.svg]"), {
        scheduler,
        device,
        batch: values.batch === undefined ? undefined : int("batch", 1),
        svg: values.svg,
      });
    case "demo":
      return await demo({ device, runs: int("runs", 10) });
    case "tune":
      return await tune(rest, {
        sms: values.sms === undefined ? undefined : int("sms", 1),
        group: values.group === undefined ? undefined : int("group", 0),
        fine: values.fine ?? false,
        batch: values.batch === undefined ? undefined : int("batch", 1),
        cache: values.cache ?? DEFAULT_CACHE,
        scheduler,
        device,
        concurrent: values.concurrent ?? false,
        json: values.json,
        quiet: values.quiet ?? false,
        exiting,
      });
    case "import":
      return await importCommand(need(rest[0], "import FILE.onnx -o FILE.braid"), {
        output: values.output,
        batch: values.batch === undefined ? undefined : int("batch", 1),
        shapes: values.shape,
        check: values.check ?? false,
        scheduler,
      });
    default:
      throw new BraidError("USAGE", `unknown command "${command}"\n${USAGE}`);
  }
}

function need(value: string | undefined, usage: string): string {
  if (!value) throw new BraidError("USAGE", `usage: braid ${usage}`);
  return value;
}

if (import.meta.main) {
  let code: number;
  try {
    fastExit(); // a bad BRAID_EXIT fails before any work
    code = await main(Deno.args, { exiting: true });
  } catch (e) {
    if (!(e instanceof BraidError)) throw e;
    fail(`${paint("red", "error")} [${e.code}] ${e.message}`);
    code = e.code === "USAGE" ? 2 : 1;
  }
  exitProcess(code);
}
