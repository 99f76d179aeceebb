/** The Node versions of the platform helpers (lib/platform.ts chooses them outside Deno). */
import { open, readFile as read, writeFile as write } from "node:fs/promises";
import process from "node:process";

export async function readFile(path: string): Promise<Uint8Array> {
  const bytes = await read(path);
  // A plain Uint8Array at offset 0, as Deno.readFile gives: weights are aligned views on it, and
  // a Buffer from Node's pool may start anywhere in a shared ArrayBuffer.
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? new Uint8Array(bytes.buffer, 0, bytes.byteLength)
    : new Uint8Array(bytes);
}

/** platform.ts's readSharedFile. */
export async function readSharedFile(path: string): Promise<Uint8Array> {
  const file = await open(path);
  try {
    const { size } = await file.stat();
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    for (let at = 0; at < size;) {
      const { bytesRead } = await file.read(bytes, at, size - at, at);
      if (bytesRead === 0) throw new Error(`${path} ended at byte ${at} of ${size}`);
      at += bytesRead;
    }
    return bytes;
  } finally {
    await file.close();
  }
}

export function writeFile(path: string, bytes: Uint8Array): Promise<void> {
  return write(path, bytes);
}

export function env(name: string): string | undefined {
  return process.env[name];
}
