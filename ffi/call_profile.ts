/**
 * BRAID_PROFILE_CALLS=1: the host time of every backend call, added up by method (operators by
 * their entry point) in each thread (each worker has its own). A diagnostic of where tuning's
 * time goes: `braid tune` reports it per model, and a pooled tune per kind of job. A call costs
 * a few hundred nanoseconds more while it is on.
 */
import { envChoice } from "../lib/platform.ts";

/** Host time, ms, by backend method ("op braid_conv2d" for an operator). */
export type CallTimes = Record<string, number>;

/** This thread's calls since the last takeCallTimes(). */
const calls: CallTimes = {};

/** Whether backends opened now time their calls (BRAID_PROFILE_CALLS). */
export function profilingCalls(): boolean {
  return envChoice("BRAID_PROFILE_CALLS", ["0", "1"]) === "1";
}

/** `backend` with every method call's host time added to `into` (this thread's record). */
export function profiled<T extends object>(backend: T, into: CallTimes = calls): T {
  return new Proxy(backend, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const start = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          const name = prop === "op" ? `op ${String(args[0])}` : String(prop);
          into[name] = (into[name] ?? 0) + performance.now() - start;
        }
      };
    },
  });
}

/** This thread's call times since the last take, ms (the record starts afresh). */
export function takeCallTimes(): CallTimes {
  const taken = { ...calls };
  for (const name of Object.keys(calls)) delete calls[name];
  return taken;
}

/** Adds `times` into `total`. */
export function addCallTimes(total: CallTimes, times: CallTimes): void {
  for (const [name, ms] of Object.entries(times)) total[name] = (total[name] ?? 0) + ms;
}
