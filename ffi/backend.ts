/**
 * The typed Backend over the C ABI: u64 handles in, BraidErrors out. One `unwrap` turns every
 * non-zero status into a BraidError carrying the status's code and the library's message.
 * Results come back through small reusable buffers, so no pointer objects are needed.
 *
 * This class is runtime-neutral: it calls the bound functions of ffi/symbols.ts through a
 * BraidLibrary, which ffi/library.ts gets from the Deno binding (backend_deno.ts, Deno.dlopen)
 * or the Node one (backend_node.ts, koffi). Both take the same JS values (i32 as number, u64 as
 * bigint, buffers as typed arrays), so the typed layer, its status table and unwrap are written
 * once and behave identically on both runtimes. `Backend.open(kind)` is the loader.
 */
import { BraidError, type BraidErrorCode } from "../lib/errors.ts";
import { type BackendKind, type BraidLibrary, openLibrary } from "./library.ts";
import { envChoice } from "../lib/platform.ts";
import { profiled, profilingCalls } from "./call_profile.ts";

/**
 * How a CUDA context allocates device buffers: BRAID_ALLOC, else pool (stream-ordered). The CUDA
 * library reads the variable itself: its default (POOL_BY_DEFAULT in csrc/cuda/memory.cu) is
 * this list's first value.
 */
export function allocationFromEnv(): "direct" | "pool" {
  return envChoice("BRAID_ALLOC", ["pool", "direct"]);
}

/**
 * How a CUDA context bound to a partition uses it: BRAID_PARTITION_BINDING, else `streams` (the
 * partition's streams, the primary context current on every thread). `current` (experimental):
 * the partition's green context is made current on the thread that bound the context, for every
 * call made there (one thread per partition). The CUDA library reads the variable itself; its
 * default (binding_current_from_env in csrc/cuda/partition.cu) is this list's first value.
 */
export function partitionBindingFromEnv(): "streams" | "current" {
  return envChoice("BRAID_PARTITION_BINDING", ["streams", "current"]);
}

/**
 * Which legacy cuDNN algorithms braid_conv2d_tune times: BRAID_CONV_FIND, else `heuristic` (those
 * cuDNN's heuristic ranks first, running nothing); `find`: those
 * cudnnFindConvolutionForwardAlgorithmEx measures fastest. The CUDA library reads the variable
 * itself (ranked_by_heuristic in csrc/cuda/conv.cu); its default is this list's first value.
 */
export function convFindFromEnv(): "find" | "heuristic" {
  return envChoice("BRAID_CONV_FIND", ["heuristic", "find"]);
}

/**
 * Which legacy cuDNN algorithms braid_conv2d_tune times beside the engine configurations:
 * BRAID_CONV_LEGACY, else `all`; `implicit`: the implicit GEMMs only, the others (GEMM, FFT,
 * Winograd) for a convolution where no engine configuration could be timed (an option: ~10% faster
 * tuning, the schedules the same, but concurrent tuning's ratio to sequential higher:
 * bench/NOTES.md v0.24). The CUDA library reads the variable itself (implicit_gemms_first in
 * csrc/cuda/conv.cu); its default is this list's first value.
 */
export function convLegacyFromEnv(): "all" | "implicit" {
  return envChoice("BRAID_CONV_LEGACY", ["all", "implicit"]);
}

/**
 * Which of the cuDNN engine configurations targeted at a partition's SMs braid_conv2d_tune times
 * there: BRAID_CONV_TARGETED, else `lean` (fused ranks 0–1 and plain rank 1, the ones that win:
 * bench/NOTES.md v0.24, v0.25); `all`: the heuristic's fused ranks 0–2 and plain ranks 0–1. The
 * whole device's are timed either way. The CUDA library reads the variable itself (lean_targets
 * in csrc/cuda/conv.cu); its default is this list's first value.
 */
export function convTargetedFromEnv(): "all" | "lean" {
  return envChoice("BRAID_CONV_TARGETED", ["lean", "all"]);
}

/**
 * How braid_conv2d_tune times a candidate's captured graph: BRAID_CONV_TIMING, else `warm` (an
 * untimed replay first, then two timed together); `upload` (measured no faster: bench/NOTES.md
 * v0.21): the graph uploaded, then each of two replays timed apart and the faster kept. The CUDA
 * library reads the variable itself (timing_by_upload in csrc/cuda/conv.cu); its default is this
 * list's first value.
 */
export function convTimingFromEnv(): "warm" | "upload" {
  return envChoice("BRAID_CONV_TIMING", ["warm", "upload"]);
}

/**
 * Checks every switch the native library reads as it makes a context or tunes a convolution
 * (BRAID_ALLOC, BRAID_CONV_FIND, BRAID_CONV_LEGACY, BRAID_CONV_TARGETED, BRAID_CONV_TIMING): a bad
 * value is a BAD_OPTION naming the values, before the library would read it.
 */
export function checkNativeSwitches(): void {
  allocationFromEnv();
  convFindFromEnv();
  convLegacyFromEnv();
  convTargetedFromEnv();
  convTimingFromEnv();
}

/**
 * The backend a device option names: "auto" is CUDA when its library loads and has a GPU, else the
 * CPU (the embedded default); any other name is a BAD_OPTION.
 */
export function openBackend(device: "auto" | BackendKind = "auto"): Backend {
  if (!["auto", "cpu", "cuda"].includes(device)) {
    throw new BraidError("BAD_OPTION", `device must be "auto", "cpu" or "cuda", got "${device}"`);
  }
  if (device !== "auto") return Backend.open(device);
  try {
    const cuda = Backend.open("cuda");
    if (cuda.deviceCount() > 0) return cuda;
  } catch {
    // No CUDA library or no GPU.
  }
  return Backend.open("cpu");
}

export const ABI_VERSION = 7;

/** braid_status → BraidError code. */
const STATUS_CODES: Record<number, BraidErrorCode> = {
  1: "NATIVE_INVALID_ARGUMENT",
  2: "NATIVE_OUT_OF_MEMORY",
  3: "NATIVE_INVALID_HANDLE",
  4: "NATIVE_UNSUPPORTED",
  5: "NATIVE_CUDA",
  6: "NATIVE_CUDNN",
  7: "NATIVE_CUBLAS",
  8: "NATIVE_CAPTURE",
  9: "NATIVE_INTERNAL",
};

export interface DeviceInfo {
  name: string;
  backend: BackendKind;
  /** CUDA multiprocessors, or CPU threads. */
  multiprocessors: number;
  totalMemory: number;
  freeMemory: number;
  computeCapability: number;
  l2Bytes: number;
  runtimeVersion: number;
  libraryVersion: number;
}

/** Operator entry points taking (ctx, stream, params, ...tensor addresses). */
export type OpSymbol =
  | "braid_conv2d"
  | "braid_batchnorm"
  | "braid_unary"
  | "braid_binary"
  | "braid_pool2d"
  | "braid_global_avgpool"
  | "braid_strided_copy"
  | "braid_gemm"
  | "braid_matmul"
  | "braid_softmax"
  | "braid_layernorm"
  | "braid_gather";

/** How a device splits into partitions of a requested size (braid_partition_query). */
export interface PartitionSplit {
  /** SMs of each group: the request rounded up to the device's granularity. */
  smsPerGroup: number;
  /** Disjoint groups of that size the device holds. */
  groups: number;
  deviceSms: number;
  /** The smallest partition the device allows (with these flags). */
  smallest: number;
}

/** A partition's facts (braid_partition_info). */
export interface PartitionInfo {
  sms: number;
  group: number;
  device: number;
  flags: number;
  /** Contexts bound to it plus streams in it. */
  users: number;
}

export type Handle = bigint;
export type HostBuffer = Float32Array | Int32Array | Uint8Array;

/** Caller memory page-locked through hostRegister, by address, in every backend of the process. */
const callerLocks = new Map<
  Handle,
  { backend: Backend; ctx: Handle; data: HostBuffer; unlocked: boolean }
>();

export class Backend {
  readonly #lib: BraidLibrary;
  readonly #slot = new BigUint64Array(1);
  readonly #i32 = new Int32Array(1);
  readonly #f32 = new Float32Array(1);
  readonly #message = new Uint8Array(2048);

  private constructor(readonly kind: BackendKind, lib: BraidLibrary) {
    this.#lib = lib;
  }

  /**
   * Opens a backend's library (in Deno or Node: see ffi/library.ts) and checks its ABI version;
   * with BRAID_PROFILE_CALLS=1 the backend returned times its calls (ffi/call_profile.ts).
   */
  static open(kind: BackendKind): Backend {
    const backend = new Backend(kind, openLibrary(kind));
    const version = backend.abiVersion();
    if (version !== ABI_VERSION) {
      throw new BraidError(
        "ABI_MISMATCH",
        `libbraid_${kind}.so has ABI version ${version}; this braid needs ${ABI_VERSION}. Rebuild it.`,
      );
    }
    return profilingCalls() ? profiled(backend) : backend;
  }

  /** Throws the library's last error unless `status` is 0. */
  unwrap(status: number, call: string): void {
    if (status === 0) return;
    this.#lib.symbols.braid_last_error(this.#message, this.#message.length);
    const end = this.#message.indexOf(0);
    const text = new TextDecoder().decode(this.#message.subarray(0, end < 0 ? undefined : end));
    throw new BraidError(
      STATUS_CODES[status] ?? "NATIVE_UNKNOWN",
      `${call} failed (status ${status}): ${text || "no message"}`,
    );
  }

  get #sym() {
    return this.#lib.symbols;
  }

  #handle(status: number, call: string): Handle {
    this.unwrap(status, call);
    return this.#slot[0];
  }

  abiVersion(): number {
    this.unwrap(this.#sym.braid_abi_version(this.#i32), "braid_abi_version");
    return this.#i32[0];
  }

  deviceCount(): number {
    this.unwrap(this.#sym.braid_device_count(this.#i32), "braid_device_count");
    return this.#i32[0];
  }

  /**
   * A context on `device`. The CUDA library reads BRAID_ALLOC as it makes one (`pool`, the default:
   * the context's device buffers come from a stream-ordered memory pool of its own; `direct`,
   * cudaMalloc), and BRAID_CONV_FIND, BRAID_CONV_LEGACY, BRAID_CONV_TARGETED and BRAID_CONV_TIMING
   * as it tunes a convolution; their values are checked here on every backend.
   */
  contextCreate(device = 0): Handle {
    checkNativeSwitches();
    return this.#handle(this.#sym.braid_context_create(device, this.#slot), "braid_context_create");
  }

  contextDestroy(ctx: Handle): void {
    this.unwrap(this.#sym.braid_context_destroy(ctx), "braid_context_destroy");
  }

  deviceInfo(ctx: Handle): DeviceInfo {
    const name = new Uint8Array(256);
    const info = new BigInt64Array(8);
    this.unwrap(this.#sym.braid_device_info(ctx, name, name.length, info), "braid_device_info");
    const n = Number;
    return {
      name: new TextDecoder().decode(name.subarray(0, Math.max(0, name.indexOf(0)))),
      backend: info[4] === 1n ? "cuda" : "cpu",
      multiprocessors: n(info[0]),
      totalMemory: n(info[1]),
      freeMemory: n(info[2]),
      computeCapability: n(info[3]),
      l2Bytes: n(info[5]),
      runtimeVersion: n(info[6]),
      libraryVersion: n(info[7]),
    };
  }

  bufferAlloc(ctx: Handle, bytes: number): Handle {
    return this.#handle(
      this.#sym.braid_buffer_alloc(ctx, BigInt(bytes), this.#slot),
      `braid_buffer_alloc(${bytes} bytes)`,
    );
  }

  bufferFree(ctx: Handle, address: Handle): void {
    this.unwrap(this.#sym.braid_buffer_free(ctx, address), "braid_buffer_free");
  }

  /** Page-locked host memory, as an ArrayBuffer over it (valid until hostFree). */
  hostAlloc(ctx: Handle, bytes: number): { address: Handle; buffer: ArrayBuffer } {
    const address = this.#handle(
      this.#sym.braid_host_alloc(ctx, BigInt(bytes), this.#slot),
      `braid_host_alloc(${bytes} bytes)`,
    );
    // Allocation time only: the hot path passes typed arrays over this buffer as plain buffers.
    return { address, buffer: this.#lib.view(address, bytes) };
  }

  hostFree(ctx: Handle, address: Handle): void {
    this.unwrap(this.#sym.braid_host_free(ctx, address), "braid_host_free");
  }

  /**
   * Page-locks the caller's memory under `data` in place, so copies from it run asynchronously
   * without a staging copy; returns the registration's address. `data` must stay alive, and
   * attached, until hostUnregister. Memory the driver will not lock (locked already, or a page of
   * it; none left) throws NATIVE_INVALID_ARGUMENT, NATIVE_UNSUPPORTED or NATIVE_OUT_OF_MEMORY,
   * and can still be copied from as before.
   */
  hostRegister(ctx: Handle, data: HostBuffer): Handle {
    const address = this.#handle(
      this.#sym.braid_host_register(ctx, data, BigInt(data.byteLength), this.#slot),
      `braid_host_register(${data.byteLength} bytes)`,
    );
    callerLocks.set(address, { backend: this, ctx, data, unlocked: false });
    return address;
  }

  /** Unlocks memory hostRegister locked (a no-op once a host copy found its buffer detached). */
  hostUnregister(ctx: Handle, address: Handle): void {
    const lock = callerLocks.get(address);
    if (lock?.unlocked && lock.ctx === ctx) {
      callerLocks.delete(address);
      return;
    }
    this.#unregister(ctx, address);
    callerLocks.delete(address);
  }

  #unregister(ctx: Handle, address: Handle): void {
    this.unwrap(this.#sym.braid_host_unregister(ctx, address), "braid_host_unregister");
  }

  /**
   * Unlocks, at once, caller memory whose buffer was detached since it was locked (transferred,
   * or a WebAssembly memory grown): its bytes may be freed, and a copy at their addresses would
   * otherwise read the pages locked before. Runs before every host copy.
   */
  static #unlockDetached(): void {
    for (const [address, lock] of callerLocks) {
      if (lock.unlocked || lock.data.buffer.byteLength > 0) continue;
      lock.unlocked = true;
      try {
        lock.backend.#unregister(lock.ctx, address);
      } catch { /* the context is gone or broken: nothing else to do for its lock */ }
    }
  }

  memcpyH2D(ctx: Handle, stream: Handle, dst: Handle, src: HostBuffer): void {
    if (callerLocks.size > 0) Backend.#unlockDetached();
    const status = this.#sym.braid_memcpy_h2d(ctx, stream, dst, src, BigInt(src.byteLength));
    this.unwrap(status, "braid_memcpy_h2d");
  }

  memcpyD2H(ctx: Handle, stream: Handle, dst: HostBuffer, src: Handle): void {
    if (callerLocks.size > 0) Backend.#unlockDetached();
    const status = this.#sym.braid_memcpy_d2h(ctx, stream, dst, src, BigInt(dst.byteLength));
    this.unwrap(status, "braid_memcpy_d2h");
  }

  memcpyD2D(ctx: Handle, stream: Handle, dst: Handle, src: Handle, bytes: number): void {
    const status = this.#sym.braid_memcpy_d2d(ctx, stream, dst, src, BigInt(bytes));
    this.unwrap(status, "braid_memcpy_d2d");
  }

  streamCreate(ctx: Handle, priority = 0): Handle {
    return this.#handle(
      this.#sym.braid_stream_create(ctx, priority, this.#slot),
      "braid_stream_create",
    );
  }

  streamDestroy(ctx: Handle, stream: Handle): void {
    this.unwrap(this.#sym.braid_stream_destroy(ctx, stream), "braid_stream_destroy");
  }

  streamSynchronize(ctx: Handle, stream: Handle): void {
    this.unwrap(this.#sym.braid_stream_synchronize(ctx, stream), "braid_stream_synchronize");
  }

  eventCreate(ctx: Handle): Handle {
    return this.#handle(this.#sym.braid_event_create(ctx, this.#slot), "braid_event_create");
  }

  eventDestroy(ctx: Handle, event: Handle): void {
    this.unwrap(this.#sym.braid_event_destroy(ctx, event), "braid_event_destroy");
  }

  eventRecord(ctx: Handle, event: Handle, stream: Handle): void {
    this.unwrap(this.#sym.braid_event_record(ctx, event, stream), "braid_event_record");
  }

  /**
   * Records the event like eventRecord; inside a capture it becomes part of the graph, which
   * records it each time it runs, so eventElapsed can time parts of a graph once it has run.
   */
  eventRecordTiming(ctx: Handle, event: Handle, stream: Handle): void {
    this.unwrap(
      this.#sym.braid_event_record_timing(ctx, event, stream),
      "braid_event_record_timing",
    );
  }

  streamWaitEvent(ctx: Handle, stream: Handle, event: Handle): void {
    this.unwrap(this.#sym.braid_stream_wait_event(ctx, stream, event), "braid_stream_wait_event");
  }

  /** Blocks until the event's recorded work is done. */
  eventSynchronize(ctx: Handle, event: Handle): void {
    this.unwrap(this.#sym.braid_event_synchronize(ctx, event), "braid_event_synchronize");
  }

  /** Milliseconds between two completed events. */
  eventElapsed(ctx: Handle, start: Handle, end: Handle): number {
    this.unwrap(this.#sym.braid_event_elapsed(ctx, start, end, this.#f32), "braid_event_elapsed");
    return this.#f32[0];
  }

  captureBegin(ctx: Handle, stream: Handle): void {
    this.unwrap(this.#sym.braid_capture_begin(ctx, stream), "braid_capture_begin");
  }

  captureEnd(ctx: Handle, stream: Handle): Handle {
    return this.#handle(this.#sym.braid_capture_end(ctx, stream, this.#slot), "braid_capture_end");
  }

  /** Ends a capture as a template: a part for graphCompose(), not launchable itself. */
  captureEndTemplate(ctx: Handle, stream: Handle): Handle {
    return this.#handle(
      this.#sym.braid_capture_end_template(ctx, stream, this.#slot),
      "braid_capture_end_template",
    );
  }

  /**
   * A graph of independent chains of templates, run at once (each chain's templates one after
   * another), built without issuing their work again. The templates stay valid.
   */
  graphCompose(ctx: Handle, chains: Handle[][]): Handle {
    const parts = BigUint64Array.from(chains.flat());
    const lengths = Int32Array.from(chains, (chain) => chain.length);
    return this.#handle(
      this.#sym.braid_graph_compose(ctx, parts, lengths, chains.length, this.#slot),
      "braid_graph_compose",
    );
  }

  graphLaunch(ctx: Handle, graph: Handle, stream: Handle): void {
    this.unwrap(this.#sym.braid_graph_launch(ctx, graph, stream), "braid_graph_launch");
  }

  graphDestroy(ctx: Handle, graph: Handle): void {
    this.unwrap(this.#sym.braid_graph_destroy(ctx, graph), "braid_graph_destroy");
  }

  /**
   * Waits for a stream's work without blocking this thread (the wait runs on another one), then
   * reports its status as streamSynchronize does. While it is pending, the stream and its context
   * must stay alive.
   */
  async streamWait(ctx: Handle, stream: Handle): Promise<void> {
    const status = await this.#sym.braid_stream_wait(ctx, stream);
    // Returns at once now; reports a device fault (or a gather's bad index) with its message.
    this.streamSynchronize(ctx, stream);
    if (status !== 0) {
      throw new BraidError(
        STATUS_CODES[status] ?? "NATIVE_UNKNOWN",
        `braid_stream_wait failed (status ${status}); its message stayed on the waiting thread`,
      );
    }
  }

  /** The SM budget of a stream's work: its partition's SMs, else the device's. */
  streamSms(ctx: Handle, stream: Handle): number {
    this.unwrap(this.#sym.braid_stream_sms(ctx, stream, this.#i32), "braid_stream_sms");
    return this.#i32[0];
  }

  partitionQuery(device: number, sms: number, flags: number): PartitionSplit {
    const out = new Int32Array(4);
    this.unwrap(
      this.#sym.braid_partition_query(device, sms, flags, out),
      `braid_partition_query(${sms} SMs)`,
    );
    return { smsPerGroup: out[0], groups: out[1], deviceSms: out[2], smallest: out[3] };
  }

  /** Creates a partition; returns its handle and actual SM count. */
  partitionCreate(
    device: number,
    sms: number,
    group: number,
    flags: number,
  ): { handle: Handle; sms: number } {
    const status = this.#sym.braid_partition_create(
      device,
      sms,
      group,
      flags,
      this.#slot,
      this.#i32,
    );
    this.unwrap(status, `braid_partition_create(${sms} SMs, group ${group})`);
    return { handle: this.#slot[0], sms: this.#i32[0] };
  }

  partitionDestroy(partition: Handle): void {
    this.unwrap(this.#sym.braid_partition_destroy(partition), "braid_partition_destroy");
  }

  partitionInfo(partition: Handle): PartitionInfo {
    const out = new Int32Array(5);
    this.unwrap(this.#sym.braid_partition_info(partition, out), "braid_partition_info");
    return { sms: out[0], group: out[1], device: out[2], flags: out[3], users: out[4] };
  }

  partitionStreamCreate(ctx: Handle, partition: Handle, priority = 0): Handle {
    return this.#handle(
      this.#sym.braid_partition_stream_create(ctx, partition, priority, this.#slot),
      "braid_partition_stream_create",
    );
  }

  /**
   * Binds a fresh context to a partition (0n: the whole device). The CUDA library reads
   * BRAID_PARTITION_BINDING as it binds one; its value is checked here on every backend.
   */
  contextSetPartition(ctx: Handle, partition: Handle): void {
    partitionBindingFromEnv();
    this.unwrap(
      this.#sym.braid_context_set_partition(ctx, partition),
      "braid_context_set_partition",
    );
  }

  /** The SM ids that ran a probe kernel of `blocks` blocks on the stream, ascending. */
  smProbe(ctx: Handle, stream: Handle, blocks = 4096, maxSms = 1024): number[] {
    const seen = new Uint8Array(maxSms);
    this.unwrap(
      this.#sym.braid_sm_probe(ctx, stream, blocks, seen, seen.length, this.#i32),
      "braid_sm_probe",
    );
    return [...seen.keys()].filter((i) => seen[i] !== 0);
  }

  /** Calls one operator entry point. `tensors` are device addresses (0n for an absent one). */
  op(name: OpSymbol, ctx: Handle, stream: Handle, params: Uint8Array, tensors: Handle[]): void {
    // deno-lint-ignore no-explicit-any
    const fn = this.#sym[name] as (...args: any[]) => number;
    this.unwrap(fn(ctx, stream, params, ...tensors), name);
  }

  /** Measures conv algorithms: the fastest one's id, workspace bytes and milliseconds. */
  conv2dTune(
    ctx: Handle,
    stream: Handle,
    params: Uint8Array,
    tensors: Handle[],
  ): { algorithm: number; workspaceBytes: number; ms: number } {
    const out = new Int32Array(2);
    const [x, w, bias, residual, y, workspace] = tensors;
    const status = this.#sym.braid_conv2d_tune(
      ctx,
      stream,
      params,
      x,
      w,
      bias,
      residual,
      y,
      workspace,
      out,
      this.#f32,
    );
    this.unwrap(status, "braid_conv2d_tune");
    return { algorithm: out[0], workspaceBytes: out[1], ms: this.#f32[0] };
  }

  concat(
    ctx: Handle,
    stream: Handle,
    params: Uint8Array,
    inputs: BigUint64Array,
    y: Handle,
  ): void {
    this.unwrap(this.#sym.braid_concat(ctx, stream, params, inputs, y), "braid_concat");
  }
}
