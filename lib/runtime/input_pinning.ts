/**
 * Caller arrays page-locked in place, so run() copies a reused input straight from the caller's
 * memory instead of through a staging copy (for a 1 MB input, 35–120 µs of host time a call).
 * An array is page-locked the second time it is passed (a fresh array each call is only ever
 * copied: locking costs more than one copy), and the `keep` most recently used arrays of each
 * input stay locked (double buffering keeps its two); an older one is unlocked. Memory the driver
 * will not lock (already locked elsewhere, or sharing a page with memory that is), or that may
 * change its pages (a resizable buffer's), goes on being copied. A locked array is held until it
 * is unlocked: the driver must never keep memory that was freed locked. The session's release unlocks what is left (its Resources hold the registrations).
 */
import type { Backend, Handle, HostBuffer } from "../../ffi/backend.ts";
import { BraidError } from "../errors.ts";
import type { Resources } from "./resources.ts";

/** One locked array: its registration (in the session's Resources) and the view it covers. */
interface Locked {
  readonly registration: { address: Handle; data: HostBuffer };
  readonly buffer: ArrayBufferLike;
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** How an array was seen before, by the byte range of its buffer it views. */
type Seen = "once" | "refused";

export class InputPinning {
  readonly #seen = new WeakMap<ArrayBufferLike, Map<string, Seen>>();
  /** Per input, the locked arrays, least recently used first. */
  readonly #locked = new Map<string, Locked[]>();
  /** Arrays locked so far (and still locked or not), for reports and tests. */
  lockedCount = 0;

  constructor(readonly resources: Resources, readonly keep = 2) {}

  get #backend(): Backend {
    return this.resources.backend;
  }

  /**
   * Whether run() can copy input `name` straight from `data`: true when `data` is locked, or has
   * now been locked on its second use.
   */
  direct(name: string, data: HostBuffer): boolean {
    const locked = this.#locked.get(name) ?? [];
    this.#forgetDetached(locked);
    const at = locked.findIndex((l) => sameView(l, data));
    if (at >= 0) {
      locked.push(...locked.splice(at, 1));
      return true;
    }
    const range = `${data.byteOffset}:${data.byteLength}`;
    const seen = this.#seen.get(data.buffer) ?? new Map<string, Seen>();
    this.#seen.set(data.buffer, seen);
    const before = seen.get(range);
    if (before === undefined) seen.set(range, "once");
    if (before !== "once" || !lockable(data)) return false;
    const registration = this.#lock(data);
    if (!registration) {
      seen.set(range, "refused");
      return false;
    }
    seen.delete(range);
    locked.push({ registration, buffer: data.buffer, ...viewOf(data) });
    this.#locked.set(name, locked);
    this.lockedCount++;
    while (locked.length > this.keep) this.#unlock(locked.shift()!);
    return true;
  }

  #lock(data: HostBuffer): Locked["registration"] | undefined {
    const { ctx } = this.resources;
    let address: Handle;
    try {
      address = this.#backend.hostRegister(ctx, data);
    } catch (e) {
      // Refused by the driver: the array is copied as before. Anything else is a real failure.
      const refused = ["NATIVE_INVALID_ARGUMENT", "NATIVE_UNSUPPORTED"];
      if (e instanceof BraidError && refused.includes(e.code)) return undefined;
      throw e;
    }
    const registration = { address, data };
    this.resources.registrations.push(registration);
    return registration;
  }

  #unlock({ registration }: Locked): void {
    const { resources } = this;
    resources.registrations = resources.registrations.filter((r) => r !== registration);
    this.#backend.hostUnregister(resources.ctx, registration.address);
  }

  /** A locked array whose buffer was detached (transferred) since is unlocked at once. */
  #forgetDetached(locked: Locked[]): void {
    for (let i = locked.length - 1; i >= 0; i--) {
      if (locked[i].buffer.byteLength === 0) this.#unlock(locked.splice(i, 1)[0]);
    }
  }
}

/**
 * A resizable or growable buffer may give pages back to the system when it shrinks and take fresh
 * ones when it grows again: locked pages would then no longer be the ones the array reads.
 */
const lockable = (data: HostBuffer) => {
  const buffer = data.buffer as ArrayBufferLike & { resizable?: boolean; growable?: boolean };
  return data.byteLength > 0 && !buffer.resizable && !buffer.growable;
};

const viewOf = (data: HostBuffer) => ({ byteOffset: data.byteOffset, byteLength: data.byteLength });

const sameView = (l: Locked, data: HostBuffer) =>
  l.buffer === data.buffer && l.byteOffset === data.byteOffset &&
  l.byteLength === data.byteLength;
