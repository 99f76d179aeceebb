/**
 * Partition: a set of SMs of one GPU that a session's work is confined to (a CUDA green
 * context). The device splits into equal groups of at least `sms` SMs, rounded up to its
 * granularity (8 SMs on Hopper; 2 with `fine`); a partition is one group of that split, so
 * partitions of the same size and different groups never share an SM, in one process or in
 * several.
 *
 * ```ts
 * using a = Partition.create({ sms: 64, group: 0 });
 * using b = Partition.create({ sms: 64, group: 1 });
 * using s1 = await Session.create(googlenet, { partition: a });
 * using s2 = await Session.create(resnet50, { partition: b });
 * ```
 *
 * Sessions on a partition run every kernel there, size their grids and cuBLASLt's SM target
 * for it, and use the tuning-cache entries of its SM budget. A partition outlives its sessions:
 * dispose them first. The CPU backend has none (NATIVE_UNSUPPORTED), nor does a CUDA driver
 * without green contexts.
 */
import { type Backend, type Handle, openBackend, type PartitionSplit } from "../../ffi/backend.ts";
import { BraidError, check } from "../errors.ts";

/** braid.h's BRAID_PARTITION_FINE. */
const FINE = 1;

export interface PartitionOptions {
  /** At least this many SMs; the device rounds up to its granularity (see `sms` after). */
  sms: number;
  /** Which group of the device's split into groups of that size (default 0). */
  group?: number;
  /** Finer granularity (2 SMs on Hopper), giving up large thread clusters. */
  fine?: boolean;
  /** Device index (default 0). */
  deviceIndex?: number;
  /** "auto" (default): CUDA when its library loads and has a GPU, else the CPU (no partitions). */
  device?: "auto" | "cuda" | "cpu";
}

/** Checks a request before anything is asked of the device; `deviceSms` when known. */
export function checkPartitionRequest(
  options: Pick<PartitionOptions, "sms" | "group">,
  deviceSms?: number,
): void {
  const { sms, group = 0 } = options;
  check(
    Number.isInteger(sms) && sms >= 1,
    "BAD_OPTION",
    () => `a partition needs a positive whole number of SMs, got ${sms}`,
  );
  check(
    deviceSms === undefined || sms <= deviceSms,
    "BAD_OPTION",
    () => `a partition of ${sms} SMs is out of range: the device has ${deviceSms} SMs`,
  );
  check(
    Number.isInteger(group) && group >= 0,
    "BAD_OPTION",
    () => `a partition's group must be a whole number >= 0, got ${group}`,
  );
}

interface Native {
  backend: Backend;
  handle: Handle;
}

const registry = new FinalizationRegistry<Native>(({ backend, handle }) => {
  try {
    backend.partitionDestroy(handle);
  } catch { /* still in use by a leaked context: nothing more to do at exit */ }
});

export class Partition {
  #native: Native | undefined;
  /** SMs of this partition (the request rounded up). */
  readonly sms: number;
  /** Its group in the device's split. */
  readonly group: number;
  /** SMs asked for. */
  readonly requested: number;
  readonly fine: boolean;
  readonly deviceIndex: number;

  private constructor(native: Native, sms: number, options: Required<PartitionOptions>) {
    this.#native = native;
    this.sms = sms;
    this.group = options.group;
    this.requested = options.sms;
    this.fine = options.fine;
    this.deviceIndex = options.deviceIndex;
  }

  /** How the device splits into groups of at least `sms` SMs. */
  static query(options: Omit<PartitionOptions, "group">): PartitionSplit {
    checkPartitionRequest(options);
    const backend = openBackend(options.device);
    return backend.partitionQuery(options.deviceIndex ?? 0, options.sms, options.fine ? FINE : 0);
  }

  /** Creates a partition (about 2 ms: a green context). */
  static create(options: PartitionOptions): Partition {
    checkPartitionRequest(options);
    const full: Required<PartitionOptions> = {
      group: 0,
      fine: false,
      deviceIndex: 0,
      device: "auto",
      ...options,
    };
    const backend = openBackend(full.device);
    const { handle, sms } = backend.partitionCreate(
      full.deviceIndex,
      full.sms,
      full.group,
      full.fine ? FINE : 0,
    );
    const native = { backend, handle };
    const partition = new Partition(native, sms, full);
    registry.register(partition, native, partition);
    return partition;
  }

  /** `count` disjoint partitions of at least `sms` SMs each: groups 0 … count-1 of one split. */
  static split(count: number, options: Omit<PartitionOptions, "group">): Partition[] {
    check(
      Number.isInteger(count) && count >= 1,
      "BAD_OPTION",
      () => `count must be a positive integer, got ${count}`,
    );
    const { groups, smsPerGroup, deviceSms } = Partition.query(options);
    check(
      count <= groups,
      "BAD_OPTION",
      () =>
        `${count} partitions of ${options.sms} SMs do not fit: the device's ${deviceSms} SMs ` +
        `split into ${groups} groups of ${smsPerGroup}`,
    );
    const made: Partition[] = [];
    try {
      for (let group = 0; group < count; group++) {
        made.push(Partition.create({ ...options, group }));
      }
    } catch (e) {
      for (const p of made) p[Symbol.dispose]();
      throw e;
    }
    return made;
  }

  #live(): Native {
    if (!this.#native) throw new BraidError("DISPOSED", "this partition was disposed");
    return this.#native;
  }

  /** @internal The backend and native handle, for sessions created on it. */
  get native(): Native {
    return this.#live();
  }

  /** Contexts bound to it plus streams in it, right now. */
  get users(): number {
    const { backend, handle } = this.#live();
    return backend.partitionInfo(handle).users;
  }

  get disposed(): boolean {
    return this.#native === undefined;
  }

  /** Destroys the green context. Throws (and stays alive) while sessions still use it. */
  [Symbol.dispose](): void {
    const native = this.#native;
    if (!native) return;
    native.backend.partitionDestroy(native.handle);
    this.#native = undefined;
    registry.unregister(this);
  }
}
