/**
 * The runtime-specific services the library core needs, kept in one place so that the core
 * stays free of Deno-only APIs (the npm build swaps this file for a Node version).
 */
export function readFile(path: string): Promise<Uint8Array> {
  return Deno.readFile(path);
}

export function writeFile(path: string, bytes: Uint8Array): Promise<void> {
  return Deno.writeFile(path, bytes);
}

export function env(name: string): string | undefined {
  return Deno.env.get(name);
}
