/**
 * The tuning cache: measured choices (a conv's algorithm and workspace), keyed by everything that
 * can change the answer: device name, SM budget, runtime and library versions, and the op's full
 * signature (its parameter record, batch included). Saved to and loaded from a JSON file.
 */
import { BraidError } from "../errors.ts";
import { readFile, writeFile } from "../platform.ts";
import type { DeviceInfo } from "../../ffi/backend.ts";

export interface ConvChoice {
  algorithm: number;
  workspaceBytes: number;
  ms: number;
}

const FORMAT = "braid-tuning/1";

export class TuningCache {
  readonly #entries = new Map<string, ConvChoice>();

  get size(): number {
    return this.#entries.size;
  }

  /** The key of an op signature on a device under an SM budget. */
  static key(device: DeviceInfo, smBudget: number, op: string, signature: string): string {
    return [
      device.name,
      `sms=${smBudget}`,
      `runtime=${device.runtimeVersion}`,
      `library=${device.libraryVersion}`,
      op,
      signature,
    ].join("|");
  }

  get(key: string): ConvChoice | undefined {
    return this.#entries.get(key);
  }

  set(key: string, choice: ConvChoice): void {
    this.#entries.set(key, choice);
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  toJSON(): { format: string; entries: Record<string, ConvChoice> } {
    return { format: FORMAT, entries: Object.fromEntries(this.#entries) };
  }

  static fromJSON(text: string, source = "<memory>"): TuningCache {
    let data: { format?: unknown; entries?: Record<string, ConvChoice> };
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new BraidError("MALFORMED_FILE", `${source}: not JSON (${(e as Error).message})`);
    }
    if (data?.format !== FORMAT || typeof data.entries !== "object" || data.entries === null) {
      throw new BraidError("MALFORMED_FILE", `${source}: not a ${FORMAT} tuning cache`);
    }
    const cache = new TuningCache();
    for (const [key, c] of Object.entries(data.entries)) {
      const valid = Number.isInteger(c?.algorithm) && Number.isInteger(c?.workspaceBytes) &&
        c.workspaceBytes >= 0 && typeof c.ms === "number";
      if (!valid) throw new BraidError("MALFORMED_FILE", `${source}: bad entry "${key}"`);
      cache.set(key, { algorithm: c.algorithm, workspaceBytes: c.workspaceBytes, ms: c.ms });
    }
    return cache;
  }

  static async load(path: string): Promise<TuningCache> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch {
      return new TuningCache(); // no file yet: start empty
    }
    return TuningCache.fromJSON(new TextDecoder().decode(bytes), path);
  }

  async save(path: string): Promise<void> {
    await writeFile(path, new TextEncoder().encode(JSON.stringify(this.toJSON(), null, 1)));
  }
}
