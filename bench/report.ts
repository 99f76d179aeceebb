/** Helpers the benchmarks' reports share. */

/** The median of `xs` (of an even count, the upper middle value). */
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A Markdown table of `head` and `rows`. */
export const markdownTable = (head: string[], rows: (string | number)[][]) =>
  [head, head.map(() => "---"), ...rows.map((r) => r.map(String))]
    .map((r) => `| ${r.join(" | ")} |`).join("\n");

/**
 * The variables that change what a run measures (braid's switches, the driver's hardware queues),
 * as this process sees them: recorded in each result file, so that a file says how it was made.
 */
export function runEnvironment(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject())
      .filter(([name]) => name.startsWith("BRAID_") || name === "CUDA_DEVICE_MAX_CONNECTIONS")
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}
