/**
 * Caller arrays page-locked in place (SessionOptions.pinInputs), so run() copies a reused input
 * straight from the caller's memory instead of through a staging copy (for a 1 MB input, 35–120
 * µs of host time a call).
 *
 * An array is locked the second time it is given for an input: a fresh array each call is only
 * ever copied, as locking costs more than one copy. Each input keeps at most `keep` arrays locked;
 * a further array displaces the least recently used one only once that one has gone unused for
 * `idleCalls` calls of the input, so arrays used in turn (triple buffering) do not lock and unlock
 * over and over: the extra ones are copied. Memory the driver will not lock (locked already, or
 * sharing a page with memory that is; none left), or that may trade its pages (a resizable
 * buffer's), is copied too, and tried again only after one of this session's arrays is unlocked.
 *
 * A locked array is held until it is unlocked, so its memory is not freed while locked. A buffer
 * detached meanwhile (transferred) is unlocked by the next host copy of any session
 * (Backend.hostRegister). The session's release unlocks what is left (its Resources hold the
 * registrations, for the finalizer).
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
  /** The input's call count when it was last given. */
  lastUse: number;
}

/** What an input has seen: its locked arrays (least recently used first) and calls so far. */
interface InputState {
  calls: number;
  locked: Locked[];
  /**
   * Arrays given once and not locked, by buffer and byte range: -1 when seen once, else the
   * unlock count when the driver refused to lock it (tried again after a later unlock).
   */
  seen: WeakMap<ArrayBufferLike, Map<string, number>>;
}

/** The view of a buffer an array is, as a key. */
const rangeOf = (data: HostBuffer) => `${data.byteOffset}:${data.byteLength}`;

export class InputPinning {
  readonly #inputs = new Map<string, InputState>();
  /** Arrays unlocked so far: a refusal older than the last unlock may no longer hold. */
  #unlocks = 0;

  constructor(readonly resources: Resources, readonly keep = 2, readonly idleCalls = 64) {
    if (keep < 1) throw new BraidError("BAD_OPTION", `keep ${keep}: at least one array`);
  }

  get #backend(): Backend {
    return this.resources.backend;
  }

  /**
   * Whether run() can copy input `name` straight from `data`: true when `data` is locked, or has
   * now been locked on its second use.
   */
  direct(name: string, data: HostBuffer): boolean {
    const input = this.#input(name);
    const calls = ++input.calls;
    const { locked } = input;
    for (let i = locked.length - 1; i >= 0; i--) {
      if (locked[i].buffer.byteLength === 0) this.#unlock(locked.splice(i, 1)[0]); // detached
    }
    const hit = locked.find((l) =>
      l.buffer === data.buffer && l.byteOffset === data.byteOffset &&
      l.byteLength === data.byteLength
    );
    if (hit) {
      hit.lastUse = calls;
      if (hit !== locked.at(-1)) locked.push(...locked.splice(locked.indexOf(hit), 1));
      return true;
    }
    const seen = input.seen.get(data.buffer) ?? new Map<string, number>();
    input.seen.set(data.buffer, seen);
    const range = rangeOf(data);
    const before = seen.get(range);
    if (before === undefined || (before >= 0 && before === this.#unlocks)) {
      if (before === undefined) seen.set(range, -1);
      return false;
    }
    if (!lockable(data)) return false;
    if (locked.length >= this.keep) {
      if (calls - locked[0].lastUse <= this.idleCalls) return false; // all in use: copy
      this.#unlock(locked.shift()!);
    }
    const registration = this.#lock(data);
    if (!registration) {
      seen.set(range, this.#unlocks);
      return false;
    }
    seen.delete(range);
    locked.push({ registration, buffer: data.buffer, ...viewOf(data), lastUse: calls });
    return true;
  }

  /** Unlocks every array and lets go of it (the session is being disposed). */
  release(): void {
    for (const { locked } of this.#inputs.values()) locked.forEach((l) => this.#unlock(l));
    this.#inputs.clear();
  }

  #input(name: string): InputState {
    let input = this.#inputs.get(name);
    if (!input) this.#inputs.set(name, input = { calls: 0, locked: [], seen: new WeakMap() });
    return input;
  }

  /** Locks `data`; undefined where it cannot be (copied instead: this is only a speed-up). */
  #lock(data: HostBuffer): Locked["registration"] | undefined {
    let address: Handle;
    try {
      address = this.#backend.hostRegister(this.resources.ctx, data);
    } catch (e) {
      if (e instanceof BraidError) return undefined;
      throw e;
    }
    const registration = { address, data };
    this.resources.registrations.push(registration);
    return registration;
  }

  /**
   * Unlocks an array once the work that may still read it is done (a failed run leaves its copy
   * unsynchronised). If unlocking fails, the registration stays with the session's resources,
   * holding the array, and their release tries again.
   */
  #unlock({ registration }: Locked): void {
    const { resources } = this;
    this.#unlocks++;
    try {
      this.#backend.streamSynchronize(resources.ctx, 0n);
    } catch { /* the stream's failure is the next call's to report */ }
    try {
      this.#backend.hostUnregister(resources.ctx, registration.address);
    } catch {
      return;
    }
    resources.registrations = resources.registrations.filter((r) => r !== registration);
  }
}

const viewOf = (data: HostBuffer) => ({ byteOffset: data.byteOffset, byteLength: data.byteLength });

/**
 * A resizable or growable buffer may give pages back to the system when it shrinks and take fresh
 * ones when it grows again: locked pages would then no longer be the ones the array reads.
 */
const lockable = (data: HostBuffer) => {
  const buffer = data.buffer as ArrayBufferLike & { resizable?: boolean; growable?: boolean };
  return data.byteLength > 0 && !buffer.resizable && !buffer.growable;
};
