/** Helpers the benchmarks' reports share. */

/** The median of `xs` (of an even count, the upper middle value). */
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A Markdown table of `head` and `rows`. */
export const markdownTable = (head: string[], rows: (string | number)[][]) =>
  [head, head.map(() => "---"), ...rows.map((r) => r.map(String))]
    .map((r) => `| ${r.join(" | ")} |`).join("\n");
