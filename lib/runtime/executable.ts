/**
 * The executable form of a scheduled graph on one device context: weights uploaded, an arena
 * for activations, streams and events created, and every launch lowered to a backend call.
 * `capture()` records the whole schedule into one graph: the inputs' copies from page-locked host
 * buffers, the worker streams forked from the capture stream with events, the schedule, the join
 * back into the capture stream, and the outputs' copies back into page-locked host buffers.
 */
import type { Backend, DeviceInfo, Handle, HostBuffer } from "../../ffi/backend.ts";
import { ALIGN, type Resources, Weights } from "./resources.ts";
import { encodeRecord } from "../../ffi/params.ts";
import { engineOf } from "../../ffi/conv_algorithms.ts";
import { BraidError } from "../errors.ts";
import { DTYPE_SIZE, type Graph, numel, type Value } from "../ir/graph.ts";
import type { MemoryPlan } from "../memory/planner.ts";
import type { Schedule } from "../schedule/schedule.ts";
import { planWorkspaces } from "../memory/workspaces.ts";
import { type Call, lowerNode, type Precision } from "./lower.ts";
import { TuningCache } from "./tuning.ts";
import { Random } from "../util/random.ts";
import { envChoice } from "../platform.ts";

/**
 * Which executables run their schedule eagerly before their first capture (#warmUp): each one,
 * or only the first of a graph's weights on their context (BRAID_WARM_UP=once, the default; each).
 * The later ones of a tuning (auto's trial executables) issue the same ops with the same
 * algorithms, whose plans the first one's warm-up built; one whose convolutions' algorithms
 * differ (the tuning cache learned another choice meanwhile) warms up again.
 */
export function warmUpFromEnv(): "each" | "once" {
  return envChoice("BRAID_WARM_UP", ["once", "each"]);
}

/**
 * Host time this thread's executables spent in their warm-ups (#warmUp), ms, since the last
 * takeWarmUpMs(): what a model variant's first use on a context costs (every op's library plan
 * built there). A pooled tune's workers report it per job.
 */
let warmUpMs = 0;

/** This thread's warm-up time since the last take, ms (the count starts afresh). */
export function takeWarmUpMs(): number {
  const taken = warmUpMs;
  warmUpMs = 0;
  return taken;
}

/** The most scratch one conv algorithm may use while it is being tuned. */
const TUNING_WORKSPACE = 256 * 2 ** 20;

export interface ExecutableOptions {
  precision: Precision;
  device: DeviceInfo;
  /** Where measured choices are looked up and recorded. */
  tuning: TuningCache;
  /** Measure missing choices (else the backend's heuristic is used). */
  tune: boolean;
  /** SM budget the session runs under (the whole device when not partitioned). */
  smBudget: number;
  /** Memory plans write Concat inputs straight into their output where they can. */
  concatInPlace: boolean;
  /**
   * The convolutions measured while preparing one session (their tuning keys) and the time spent
   * measuring them, ms: shared by all its executables (the stage timer's measures them first).
   */
  convTuning: { measured: Set<string>; ms: number };
}

/**
 * The host copies a schedule is issued with: inputs and outputs, the outputs alone (the inputs
 * copied in before it), or none (the kernels alone).
 */
export type Copies = "all" | "outputs" | "none";

/** Ops that take their scratch from the stream they run on when not given a workspace (CUDA). */
const STREAM_SCRATCH = new Set(["braid_conv2d", "braid_gemm", "braid_matmul"]);

/** Whether a call uses scratch memory: a workspace of its own, or its stream's. */
const usesScratch = (call: Call) =>
  call.kind === "op" &&
  (STREAM_SCRATCH.has(call.symbol) || call.tensors.some((v) => v.startsWith("#workspace")));

interface Step {
  stream: Handle;
  waits: Handle[];
  record?: Handle;
  issue?: () => void; // absent for views and in-place concats
  /** The first launch on a worker stream that reads a graph input: it waits for the copies. */
  awaitsInputs?: boolean;
}

export class Executable {
  readonly weightBytes: number;
  readonly kernelLaunches: number;
  /** Convolutions whose algorithm was measured now, and found in the cache. */
  readonly tuned = { measured: 0, cached: 0, engines: 0, enginesTargeted: 0 };
  readonly #steps: Step[];
  readonly #address = new Map<string, bigint>();
  readonly #streams: Handle[];
  readonly #forkJoin: Handle[];
  /** Recorded on the capture stream once the inputs are copied in. */
  readonly #inputsCopied: Handle;
  /** The stream whose launch writes each graph output, where its copy out is issued. */
  readonly #outputStream = new Map<string, Handle>();
  /** Each launch's lowered call, and the launch index of each node. */
  readonly #calls: Call[];
  readonly #launchOf = new Map<number, number>();
  /** composeGroups()' templates, by node (and group, for a node with a workspace). */
  readonly #templates = new Map<string, Handle | undefined>();
  readonly #valueAddress: (v: string) => bigint;
  /** Whether the schedule has run once outside a capture (see #warmUp). */
  #warmed = false;
  readonly #weights: Weights;
  /** Page-locked host buffers of the graph inputs and outputs, as typed arrays. */
  readonly hostInputs = new Map<string, Float32Array | Int32Array>();
  readonly hostOutputs = new Map<string, Float32Array | Int32Array>();

  constructor(
    readonly backend: Backend,
    readonly resources: Resources,
    readonly graph: Graph,
    readonly shapes: Map<string, Value>,
    readonly schedule: Schedule,
    readonly plan: MemoryPlan,
    options: ExecutableOptions,
    /** Weights already on the device (shared by trial executables), else uploaded here. */
    weights: Weights = new Weights(backend, resources, graph),
  ) {
    const { ctx } = resources;
    this.weightBytes = weights.bytes;
    this.#weights = weights;
    for (const [name, at] of weights.address) this.#address.set(name, at);
    const arena = this.#alloc(Math.max(plan.arenaBytes, ALIGN));

    // Streams: logical stream 0 is the context's default stream, the capture stream.
    this.#streams = [0n];
    for (let s = 1; s < schedule.streams; s++) {
      const stream = backend.streamCreate(ctx, schedule.priorities?.[s] ?? 0);
      resources.streams.push(stream);
      this.#streams.push(stream);
    }
    const events = Array.from({ length: schedule.events }, () => this.#event());
    this.#forkJoin = this.#streams.map(() => this.#event());
    this.#inputsCopied = this.#event();

    const address = (v: string): bigint => {
      if (v === "") return 0n;
      const root = plan.rootOf(v);
      const known = this.#address.get(root);
      if (known !== undefined) return known;
      const offset = plan.offsetOf(v);
      if (offset === undefined) {
        throw new BraidError("BAD_NODE", `value "${v}" has no storage`);
      }
      return arena + BigInt(offset);
    };
    this.#address.set("", 0n);
    this.#valueAddress = address;
    const calls = schedule.launches.map((l) =>
      lowerNode(graph.nodes[l.node], shapes, options.precision)
    );
    this.#calls = calls;
    schedule.launches.forEach((l, i) => this.#launchOf.set(l.node, i));
    if (backend.kind === "cuda") {
      this.#chooseConvAlgorithms(
        calls,
        address,
        arena,
        options,
      );
    }
    let kernels = 0;
    const inputs = new Set(graph.inputs);
    const readsInputs = (node: number) =>
      graph.nodes[node].inputs.some((v) => v !== "" && inputs.has(plan.rootOf(v)));
    const awaiting = new Set<number>(); // worker streams with an input reader already
    this.#steps = schedule.launches.map((launch, i) => {
      const stream = this.#streams[launch.stream];
      const issue = this.#issuer(calls[i], stream, address);
      if (issue) kernels++;
      const awaitsInputs = launch.stream !== 0 && !awaiting.has(launch.stream) &&
        readsInputs(launch.node);
      if (awaitsInputs) awaiting.add(launch.stream);
      for (const v of graph.nodes[launch.node].outputs) this.#outputStream.set(v, stream);
      return {
        stream,
        waits: launch.waits.map((e) => events[e]),
        record: launch.record === undefined ? undefined : events[launch.record],
        issue,
        awaitsInputs,
      };
    });
    this.kernelLaunches = kernels;
    for (const name of [...graph.inputs, ...graph.outputs]) this.#address.set(name, address(name));
    for (const name of graph.inputs) this.hostInputs.set(name, this.#hostTensor(name));
    for (const name of graph.outputs) this.hostOutputs.set(name, this.#hostTensor(name));
  }

  #hostTensor(name: string): Float32Array | Int32Array {
    const { dtype, shape } = this.shapes.get(name)!;
    const count = numel(shape);
    const { address, buffer } = this.backend.hostAlloc(
      this.resources.ctx,
      Math.max(ALIGN, count * DTYPE_SIZE[dtype]),
    );
    this.resources.hostBuffers.push(address);
    return dtype === "int32"
      ? new Int32Array(buffer, 0, count)
      : new Float32Array(buffer, 0, count);
  }

  /** Device address of a graph input or output. */
  addressOf(value: string): bigint {
    return this.#address.get(value)!;
  }

  /**
   * Issues the whole schedule (eagerly, or inside a capture) with the copies `copies` names: the
   * input copies from the page-locked `hostInputs` and the output copies into `hostOutputs`
   * ("all"), the output copies alone (the inputs copied in beforehand with copyInput), or none.
   */
  issue(copies: Copies = "all"): void {
    this.#fork(copies);
    for (const step of this.#steps) this.#issueStep(step, copies === "all");
    this.#join(copies);
  }

  /**
   * Copies a graph input in from `data` on the default stream, ahead of a schedule issued (or a
   * graph captured) with the output copies alone. Asynchronous from page-locked memory.
   */
  copyInput(name: string, data: HostBuffer): void {
    this.backend.memcpyH2D(this.resources.ctx, 0n, this.#address.get(name)!, data);
  }

  /**
   * Issues the schedule eagerly with a device event before and after every launch, and returns
   * each launch's start and end in milliseconds since the input copies began.
   */
  issueTimed(): { startMs: number[]; endMs: number[] } {
    const { backend } = this;
    const ctx = this.resources.ctx;
    const origin = backend.eventCreate(ctx);
    const marks = this.#steps.map(() => [backend.eventCreate(ctx), backend.eventCreate(ctx)]);
    try {
      backend.eventRecord(ctx, origin, 0n);
      this.#fork();
      this.#steps.forEach((step, i) => this.#issueStep(step, true, marks[i]));
      this.#join();
      backend.streamSynchronize(ctx, 0n);
      const since = (e: Handle) => backend.eventElapsed(ctx, origin, e);
      return { startMs: marks.map(([b]) => since(b)), endMs: marks.map(([, a]) => since(a)) };
    } finally {
      for (const e of [origin, ...marks.flat()]) backend.eventDestroy(ctx, e);
    }
  }

  /**
   * Forks the worker streams from the capture stream, then copies the inputs in there: only the
   * launches that read an input wait for the copies (stream order on the capture stream, the
   * `inputsCopied` event elsewhere), so a worker stream's first kernel hangs on no copy it does
   * not need.
   */
  #fork(copies: Copies = "all"): void {
    const { backend } = this;
    const ctx = this.resources.ctx;
    if (this.#streams.length > 1) {
      backend.eventRecord(ctx, this.#forkJoin[0], 0n);
      for (const s of this.#streams.slice(1)) backend.streamWaitEvent(ctx, s, this.#forkJoin[0]);
    }
    if (copies !== "all") return;
    for (const [name, host] of this.hostInputs) {
      backend.memcpyH2D(ctx, 0n, this.#address.get(name)!, host);
    }
    if (this.#streams.length > 1) backend.eventRecord(ctx, this.#inputsCopied, 0n);
  }

  /** One launch: its waits, its kernel (between two timing events, if given), its record. */
  #issueStep(step: Step, inputsCopied: boolean, timing?: Handle[]): void {
    const { backend } = this;
    const ctx = this.resources.ctx;
    if (inputsCopied && step.awaitsInputs) {
      backend.streamWaitEvent(ctx, step.stream, this.#inputsCopied);
    }
    for (const e of step.waits) backend.streamWaitEvent(ctx, step.stream, e);
    if (timing) backend.eventRecord(ctx, timing[0], step.stream);
    step.issue?.();
    if (timing) backend.eventRecord(ctx, timing[1], step.stream);
    if (step.record) backend.eventRecord(ctx, step.record, step.stream);
  }

  /**
   * Copies each output out on the stream that wrote it (so the copy waits for that launch alone),
   * then joins every worker stream back into the capture stream.
   */
  #join(copies: Copies = "all"): void {
    const { backend } = this;
    const ctx = this.resources.ctx;
    for (const [name, host] of copies === "none" ? [] : this.hostOutputs) {
      const stream = this.#outputStream.get(name) ?? 0n;
      backend.memcpyD2H(ctx, stream, host, this.#address.get(name)!);
    }
    this.#streams.slice(1).forEach((s, i) => {
      backend.eventRecord(ctx, this.#forkJoin[i + 1], s);
      backend.streamWaitEvent(ctx, 0n, this.#forkJoin[i + 1]);
    });
  }

  /**
   * On a GPU, runs the schedule once eagerly before its first capture, so each operator's library
   * plan (cuDNN execution plans, cuBLASLt heuristics) is built, and its kernels loaded, outside
   * the capture: the capture then only records launches. The arena's contents are whatever it
   * holds (zero-filled when allocated). With BRAID_WARM_UP=once, an executable whose weights
   * another one has warmed up already, with the same convolution algorithms, skips it
   * (warmUpFromEnv).
   */
  #warmUp(): void {
    if (this.#warmed || this.backend.kind === "cpu") return;
    this.#warmed = true;
    const weights = this.#weights;
    const convs = this.#calls.flatMap((c) =>
      c.kind === "op" && c.symbol === "braid_conv2d" ? [JSON.stringify(c.values)] : []
    );
    const planned = weights.warmed && convs.every((conv) => weights.warmedConvs.has(conv));
    if (planned && warmUpFromEnv() === "once") return;
    const started = performance.now();
    this.issue("none");
    this.backend.streamSynchronize(this.resources.ctx, 0n);
    warmUpMs += performance.now() - started;
    weights.warmed = true;
    for (const conv of convs) weights.warmedConvs.add(conv);
  }

  /** Captures the schedule, with the copies `copies` names (issue), into one graph; its handle. */
  capture(copies: Copies = "all"): Handle {
    this.#warmUp();
    const graph = this.#captured(() => this.issue(copies));
    this.resources.graphs.push(graph);
    return graph;
  }

  /**
   * What `issue` launches, captured from `stream` (default: the default stream): an executable
   * graph, or a template for composing. A failed capture's graph is destroyed and the failure
   * rethrown.
   */
  #captured(issue: () => void, template = false, stream: Handle = 0n): Handle {
    const { backend } = this;
    const ctx = this.resources.ctx;
    const end = () =>
      template ? backend.captureEndTemplate(ctx, stream) : backend.captureEnd(ctx, stream);
    backend.captureBegin(ctx, stream);
    try {
      issue();
    } catch (e) {
      try {
        backend.graphDestroy(ctx, end());
      } catch { /* the capture is already broken; the original error matters */ }
      throw e;
    }
    return end();
  }

  /**
   * Captures only some nodes, as one IOS stage: group g runs in order on `streams[g]`, its
   * convolutions using `workspaces[g]` as scratch (at least `workspaceBytes` bytes), forked from
   * and joined into the capture stream with `events` (one more than there are groups). The
   * schedule's own streams, waits and the input and output copies are left out: the groups of a
   * stage are independent, and their inputs are whatever the arena holds. Returns the graph.
   */
  captureGroups(
    groups: number[][],
    streams: Handle[],
    events: Handle[],
    workspaces: bigint[],
  ): Handle {
    return this.#captured(this.#stageIssuer(groups, streams, events, workspaces));
  }

  /**
   * Several IOS stages captured into one graph, one after another as captureGroups() captures
   * each, with a timing record (Backend.eventRecordTiming) of `marks[k]` before stage k and of
   * `marks[stages.length]` after the last: once the graph has run, stage k's time is the time
   * between marks k and k + 1.
   */
  captureTimedStages(
    stages: number[][][],
    streams: Handle[],
    events: Handle[],
    workspaces: bigint[],
    marks: Handle[],
  ): Handle {
    const { backend } = this;
    const ctx = this.resources.ctx;
    const issuers = stages.map((groups) => this.#stageIssuer(groups, streams, events, workspaces));
    return this.#captured(() => {
      issuers.forEach((issue, k) => {
        backend.eventRecordTiming(ctx, marks[k], 0n);
        issue();
      });
      backend.eventRecordTiming(ctx, marks[stages.length], 0n);
    });
  }

  /** Issues one stage's groups, forked from and joined into the capture stream (0n). */
  #stageIssuer(
    groups: number[][],
    streams: Handle[],
    events: Handle[],
    workspaces: bigint[],
  ): () => void {
    const { backend } = this;
    const ctx = this.resources.ctx;
    this.#warmUp();
    const issuers = groups.map((group, g) =>
      group.map((node) =>
        this.#issuer(this.#callOf(node), streams[g], this.#addressWith(workspaces[g]))
      )
    );
    return () => {
      backend.eventRecord(ctx, events[0], 0n);
      groups.forEach((_, g) => {
        backend.streamWaitEvent(ctx, streams[g], events[0]);
        for (const issue of issuers[g]) issue?.();
        backend.eventRecord(ctx, events[g + 1], streams[g]);
        backend.streamWaitEvent(ctx, 0n, events[g + 1]);
      });
    };
  }

  /**
   * The same stage graph as captureGroups(), put together from each node's template instead of
   * issuing the nodes again: a node is captured once, on its group's stream, and its work, its
   * library's host-side set-up included, is reused by every stage it is in. A node that uses
   * scratch memory is captured once per group: the chains run at once, and each group has its
   * own scratch (its workspace, and its stream's, which matrix products and convolutions without
   * a workspace use). The templates live until the resources are released.
   */
  composeGroups(groups: number[][], streams: Handle[], workspaces: bigint[]): Handle {
    this.#warmUp();
    const chains = groups.map((group, g) =>
      group.flatMap((node) => this.#template(node, g, streams[g], workspaces[g]) ?? [])
    );
    return this.backend.graphCompose(this.resources.ctx, chains);
  }

  /** A node's work captured as a template (none for a node that launches nothing). */
  #template(node: number, group: number, stream: Handle, workspace: bigint): Handle | undefined {
    const call = this.#callOf(node);
    const key = usesScratch(call) ? `${node}/${group}` : `${node}`;
    if (this.#templates.has(key)) return this.#templates.get(key);
    const issue = this.#issuer(call, stream, this.#addressWith(workspace));
    const template = issue && this.#captured(issue, true, stream);
    if (template) this.resources.graphs.push(template);
    this.#templates.set(key, template);
    return template;
  }

  /** A node's lowered call (BAD_NODE for a node the schedule does not launch). */
  #callOf(node: number): Call {
    const launch = this.#launchOf.get(node);
    if (launch === undefined) throw new BraidError("BAD_NODE", `node ${node} is not launched`);
    return this.#calls[launch];
  }

  /** Value addresses, with a stage group's workspace in place of the convolutions' own. */
  #addressWith(workspace: bigint): (v: string) => bigint {
    return (v) => v.startsWith("#workspace") ? workspace : this.#valueAddress(v);
  }

  /** Whether a node launches a kernel (views and in-place concats launch none). */
  launchesKernel(node: number): boolean {
    const launch = this.#launchOf.get(node);
    return launch !== undefined && this.#steps[launch].issue !== undefined;
  }

  /** The most workspace any one convolution uses, in bytes. */
  get maxWorkspaceBytes(): number {
    let most = 0;
    for (const c of this.#calls) {
      if (c.kind === "op" && c.symbol === "braid_conv2d") {
        most = Math.max(most, c.values.workspace_bytes as number);
      }
    }
    return most;
  }

  /**
   * Picks each convolution's algorithm from the tuning cache, measuring the missing ones, then
   * gives the convolutions workspaces, shared by those that are ordered.
   */
  #chooseConvAlgorithms(
    calls: Call[],
    address: (v: string) => bigint,
    arena: bigint,
    options: ExecutableOptions,
  ): void {
    const { backend } = this;
    const ctx = this.resources.ctx;
    const convs = calls.flatMap((
      c,
      i,
    ) => (c.kind === "op" && c.symbol === "braid_conv2d" ? [i] : []));
    if (convs.length === 0) return;
    const keyOf = (c: Extract<Call, { kind: "op" }>) => {
      const { algorithm: _a, workspace_bytes: _w, ...signature } = c.values;
      return TuningCache.key(options.device, options.smBudget, "conv2d", JSON.stringify(signature));
    };
    let scratch: bigint | undefined;
    try {
      for (const i of convs) {
        const call = calls[i] as Extract<Call, { kind: "op" }>;
        const key = keyOf(call);
        let choice = options.tuning.get(key);
        if (choice && options.convTuning.measured.has(key)) this.tuned.measured++;
        else if (choice) this.tuned.cached++;
        else if (options.tune) {
          const started = performance.now();
          if (scratch === undefined) {
            scratch = backend.bufferAlloc(ctx, TUNING_WORKSPACE);
            this.#fillRandom(arena, this.plan.arenaBytes);
            this.#zeroIndexInputs(address);
          }
          const values = { ...call.values, workspace_bytes: TUNING_WORKSPACE };
          const tensors = call.tensors.map((v, k) => (k === 5 ? scratch! : address(v)));
          choice = backend.conv2dTune(ctx, 0n, encodeRecord("conv2d", values), tensors);
          options.tuning.set(key, choice);
          options.convTuning.measured.add(key);
          options.convTuning.ms += performance.now() - started;
          this.tuned.measured++;
        }
        if (choice) {
          const engine = engineOf(choice.algorithm);
          if (engine) this.tuned.engines++;
          if (engine && engine.smTarget > 0) this.tuned.enginesTargeted++;
          call.values = {
            ...call.values,
            algorithm: choice.algorithm,
            workspace_bytes: choice.workspaceBytes,
          };
        }
      }
    } finally {
      if (scratch !== undefined) backend.bufferFree(ctx, scratch);
    }
    // Workspaces, shared by convolutions that are ordered (lib/memory/workspaces.ts).
    const need = new Map(convs.map((i) => {
      const values = (calls[i] as Extract<Call, { kind: "op" }>).values;
      return [i, values.workspace_bytes as number];
    }));
    const plan = planWorkspaces(this.schedule, need);
    plan.bytes.forEach((bytes, k) => this.#address.set(`#workspace${k}`, this.#alloc(bytes)));
    for (const [i, slot] of plan.slotOf) {
      (calls[i] as Extract<Call, { kind: "op" }>).tensors[5] = `#workspace${slot}`;
    }
  }

  /**
   * Zeroes the integer graph inputs (gather indices) of an arena just filled with random floats
   * for the conv tuner (which reads floats only): a replay or warm-up run before the first real
   * input then reads valid indices.
   */
  #zeroIndexInputs(address: (v: string) => bigint): void {
    const ctx = this.resources.ctx;
    for (const name of this.graph.inputs) {
      const { dtype, shape } = this.shapes.get(name)!;
      if (!dtype.startsWith("int")) continue;
      this.backend.memcpyH2D(
        ctx,
        0n,
        address(name),
        new Uint8Array(DTYPE_SIZE[dtype] * numel(shape)),
      );
    }
    this.backend.streamSynchronize(ctx, 0n);
  }

  /** Fills device bytes with seeded random floats, so nothing is timed on zeros. */
  #fillRandom(address: bigint, bytes: number): void {
    const chunk = new Random(12345).floats(Math.min(bytes, 4 * 2 ** 20) / 4);
    for (let at = 0; at < bytes; at += chunk.byteLength) {
      const n = Math.min(chunk.byteLength, bytes - at);
      const part = new Uint8Array(chunk.buffer, 0, n);
      this.backend.memcpyH2D(this.resources.ctx, 0n, address + BigInt(at), part);
    }
    this.backend.streamSynchronize(this.resources.ctx, 0n);
  }

  #alloc(bytes: number): bigint {
    return this.resources.alloc(bytes);
  }

  #event(): Handle {
    const e = this.backend.eventCreate(this.resources.ctx);
    this.resources.events.push(e);
    return e;
  }

  #issuer(call: Call, stream: Handle, address: (v: string) => bigint): (() => void) | undefined {
    const { backend } = this;
    const ctx = this.resources.ctx;
    switch (call.kind) {
      case "view":
        return undefined;
      case "concat": {
        if (this.plan.elided.has(call.output)) return undefined; // done in place
        const inputs = BigUint64Array.from(call.inputs.map(address));
        const y = address(call.output);
        return () => backend.concat(ctx, stream, call.params, inputs, y);
      }
      case "op": {
        const tensors = call.tensors.map(address);
        const params = encodeRecord(call.record, call.values);
        return () => backend.op(call.symbol, ctx, stream, params, tensors);
      }
    }
  }
}
