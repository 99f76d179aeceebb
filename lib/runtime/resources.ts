/**
 * The native resources of a session or a trial, freed together (also by the finalizer), and a
 * graph's weights uploaded into one device buffer.
 */
import type { Backend, Handle, HostBuffer } from "../../ffi/backend.ts";
import { DTYPE_SIZE, type Graph, numel } from "../ir/graph.ts";

/** Device tensors start on 256-byte boundaries. */
export const ALIGN = 256;

/** Native resources, freed together (also by the finalizer). */
export class Resources {
  buffers: Handle[] = [];
  hostBuffers: Handle[] = [];
  streams: Handle[] = [];
  events: Handle[] = [];
  graphs: Handle[] = [];
  /**
   * Caller memory page-locked in place, with the array over it: held until it is unregistered,
   * so the finalizer does not free it while locked (a buffer transferred away is another matter:
   * Backend unlocks it at the next host copy).
   */
  registrations: { address: Handle; data: HostBuffer }[] = [];

  /** Device bytes allocated through alloc(). */
  deviceBytes = 0;

  /** `ownsContext`: release() destroys the context too (false for a trial executable's). */
  constructor(readonly backend: Backend, readonly ctx: Handle, readonly ownsContext = true) {}

  /** Takes over another set of resources (on the same context), which is left empty. */
  adopt(other: Resources): void {
    this.buffers.push(...other.buffers);
    this.hostBuffers.push(...other.hostBuffers);
    this.streams.push(...other.streams);
    this.events.push(...other.events);
    this.graphs.push(...other.graphs);
    this.registrations.push(...other.registrations);
    this.deviceBytes += other.deviceBytes;
    other.buffers = [];
    other.hostBuffers = [];
    other.streams = [];
    other.events = [];
    other.graphs = [];
    other.registrations = [];
    other.deviceBytes = 0;
  }

  /** Device memory freed with the rest. */
  alloc(bytes: number): Handle {
    const address = this.backend.bufferAlloc(this.ctx, bytes);
    this.buffers.push(address);
    this.deviceBytes += bytes;
    return address;
  }

  /** Frees everything (and the context if owned); keeps going past individual failures. */
  release(): void {
    const b = this.backend, ctx = this.ctx;
    const attempt = (f: () => void) => {
      try {
        f();
      } catch { /* best effort: the context is destroyed last anyway */ }
    };
    for (const g of this.graphs) attempt(() => b.graphDestroy(ctx, g));
    for (const e of this.events) attempt(() => b.eventDestroy(ctx, e));
    for (const s of this.streams) attempt(() => b.streamDestroy(ctx, s));
    for (const buf of this.buffers) attempt(() => b.bufferFree(ctx, buf));
    for (const buf of this.hostBuffers) attempt(() => b.hostFree(ctx, buf));
    for (const { address } of this.registrations) attempt(() => b.hostUnregister(ctx, address));
    if (this.ownsContext) attempt(() => b.contextDestroy(ctx));
    this.graphs = [];
    this.events = [];
    this.streams = [];
    this.buffers = [];
    this.hostBuffers = [];
    this.registrations = [];
  }
}

/** A graph's weights on the device: one buffer, each tensor 256-byte aligned. */
export class Weights {
  readonly address = new Map<string, bigint>();
  readonly bytes: number;
  /**
   * Whether an executable of these weights has run every op once eagerly on their context, so
   * each op's library plan is built there and its kernels are loaded (Executable's warm-up).
   */
  warmed = false;
  /** The convolutions those warm-ups ran (their parameter records, algorithm included). */
  readonly warmedConvs = new Set<string>();

  constructor(backend: Backend, resources: Resources, graph: Graph) {
    const offsets = new Map<string, number>();
    let bytes = 0;
    for (const [name, t] of graph.initializers) {
      offsets.set(name, bytes);
      bytes += Math.ceil((numel(t.shape) * DTYPE_SIZE[t.dtype]) / ALIGN) * ALIGN;
    }
    this.bytes = bytes;
    const base = resources.alloc(Math.max(bytes, ALIGN));
    for (const [name, t] of graph.initializers) {
      const at = base + BigInt(offsets.get(name)!);
      this.address.set(name, at);
      const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      backend.memcpyH2D(resources.ctx, 0n, at, data);
    }
    backend.streamSynchronize(resources.ctx, 0n);
  }
}
