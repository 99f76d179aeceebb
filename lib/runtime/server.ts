/**
 * Server: several sessions serving requests concurrently from one thread, each with its own
 * request queue. Put each session on its own partition and the models share the GPU spatially,
 * on disjoint SMs; leave them on the whole GPU with `exclusive: true` and they time-share it,
 * one request on the device at a time, the baseline spatial sharing is measured against.
 *
 * ```ts
 * const [a, b] = Partition.split(2, { sms: 64 });
 * const server = new Server([
 *   { name: "googlenet", session: await Session.create(googlenet, { partition: a }) },
 *   { name: "resnet50", session: await Session.create(resnet50, { partition: b }) },
 * ]);
 * const { outputs, latencyMs } = await server.submit("googlenet", { input });
 * console.log(server.report()); // throughput, p50 and p99 latency per model and overall
 * ```
 *
 * A lane takes its requests in order: it copies the inputs into the session's page-locked
 * buffers, replays the captured graph with launchAsync() (the wait for the device runs on another
 * thread, so the other lanes go on issuing), and copies the outputs out. A request's latency runs
 * from submit() to its outputs, queueing included. The server does not own the sessions.
 */
import { BraidError, check } from "../errors.ts";
import type { HostTensor, Session } from "./session.ts";

export interface ServerLane {
  name: string;
  session: Session;
}

export interface ServerOptions {
  /** One request on the device at a time across all lanes: time-sharing (default false). */
  exclusive?: boolean;
}

export interface Reply {
  outputs: Record<string, HostTensor>;
  /** From submit() to the outputs, ms. */
  latencyMs: number;
}

export interface LaneReport {
  name: string;
  /** Requests completed since the server started (or was reset). */
  requests: number;
  /** Completed requests per second of the report's wall time. */
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** The SM budget the lane's session runs with, and its partition (if any). */
  smBudget: number;
  partition?: { sms: number; group: number };
}

export interface ServerReport {
  /** Wall time from the start (or reset) to the last completion, ms. */
  wallMs: number;
  requests: number;
  throughput: number;
  lanes: LaneReport[];
}

interface Request {
  inputs: Record<string, HostTensor>;
  submitted: number;
  resolve: (reply: Reply) => void;
  reject: (error: unknown) => void;
}

class Lane {
  readonly queue: Request[] = [];
  readonly latencies: number[] = [];
  running = false;
  constructor(readonly name: string, readonly session: Session) {}
}

/** The p-th percentile (0..100) of samples, by nearest rank. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export class Server {
  readonly #lanes = new Map<string, Lane>();
  readonly #exclusive: boolean;
  /** The time-sharing turn: the request on the device now (exclusive mode). */
  #turn: Promise<void> = Promise.resolve();
  #started = performance.now();
  #last = this.#started;
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(lanes: ServerLane[], options: ServerOptions = {}) {
    check(lanes.length > 0, "BAD_OPTION", () => "a server needs at least one session");
    for (const { name, session } of lanes) {
      check(!this.#lanes.has(name), "BAD_OPTION", () => `two sessions are named "${name}"`);
      this.#lanes.set(name, new Lane(name, session));
    }
    check(
      new Set(lanes.map((l) => l.session)).size === lanes.length,
      "BAD_OPTION",
      () => "each lane needs its own session (a session runs one request at a time)",
    );
    this.#exclusive = options.exclusive ?? false;
  }

  get names(): string[] {
    return [...this.#lanes.keys()];
  }

  /** Queues a request for the named session; resolves with its outputs and latency. */
  submit(name: string, inputs: Record<string, HostTensor>): Promise<Reply> {
    const lane = this.#lanes.get(name);
    if (!lane) {
      return Promise.reject(
        new BraidError("BAD_OPTION", `no session named "${name}" (have: ${this.names.join(", ")})`),
      );
    }
    if (this.#closed) {
      return Promise.reject(new BraidError("DISPOSED", "this server was closed"));
    }
    return new Promise<Reply>((resolve, reject) => {
      lane.queue.push({ inputs, submitted: performance.now(), resolve, reject });
      if (!lane.running) this.#drainLane(lane);
    });
  }

  async #drainLane(lane: Lane): Promise<void> {
    lane.running = true;
    const { session } = lane;
    while (lane.queue.length > 0) {
      const request = lane.queue.shift()!;
      try {
        const io = session.io;
        for (const [input, data] of Object.entries(request.inputs)) {
          const host = io.inputs[input];
          if (!host) {
            throw new BraidError("INPUT_MISSING", `"${input}" is not an input of ${lane.name}`);
          }
          if (host.length !== data.length) {
            throw new BraidError(
              "INPUT_SIZE",
              `input "${input}" of ${lane.name} has ${data.length} elements; it needs ${host.length}`,
            );
          }
          host.set(data);
        }
        await this.#onDevice(() => session.launchAsync());
        const outputs: Record<string, HostTensor> = {};
        for (const [output, host] of Object.entries(io.outputs)) outputs[output] = host.slice();
        const done = performance.now();
        const latencyMs = done - request.submitted;
        lane.latencies.push(latencyMs);
        this.#last = Math.max(this.#last, done);
        request.resolve({ outputs, latencyMs });
      } catch (e) {
        request.reject(e);
      }
    }
    lane.running = false;
    if ([...this.#lanes.values()].every((l) => !l.running)) {
      for (const wake of this.#idle.splice(0)) wake();
    }
  }

  /** Runs `launch` now, or, time-sharing, once the request before it has left the device. */
  #onDevice(launch: () => Promise<void>): Promise<void> {
    if (!this.#exclusive) return launch();
    const turn = this.#turn.then(launch);
    this.#turn = turn.catch(() => {});
    return turn;
  }

  /** Resolves once every queue is empty. */
  drain(): Promise<void> {
    if ([...this.#lanes.values()].every((l) => !l.running)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Forgets the latencies so far; the next report's wall time starts now. */
  reset(): void {
    for (const lane of this.#lanes.values()) lane.latencies.length = 0;
    this.#started = this.#last = performance.now();
  }

  /** Throughput and latency percentiles, per session and overall, since the start or reset. */
  report(): ServerReport {
    const wallMs = this.#last - this.#started;
    const perSecond = (n: number) => (wallMs > 0 ? (1000 * n) / wallMs : 0);
    const lanes = [...this.#lanes.values()].map((lane): LaneReport => {
      const info = lane.session.report();
      return {
        name: lane.name,
        requests: lane.latencies.length,
        throughput: perSecond(lane.latencies.length),
        p50Ms: percentile(lane.latencies, 50),
        p99Ms: percentile(lane.latencies, 99),
        meanMs: lane.latencies.reduce((a, b) => a + b, 0) / (lane.latencies.length || NaN),
        smBudget: info.smBudget,
        partition: info.partition,
      };
    });
    const requests = lanes.reduce((n, l) => n + l.requests, 0);
    return { wallMs, requests, throughput: perSecond(requests), lanes };
  }

  /** Stops taking requests; resolves once the queued ones are done. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }
}
