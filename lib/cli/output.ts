/** Terminal output helpers: colour only on a terminal, numbers in human units. */
import { styleText } from "../deps.ts";

type Colour = "red" | "green" | "yellow" | "cyan" | "bold" | "dim";

export function paint(colour: Colour, text: string): string {
  return Deno.stdout.isTerminal() ? styleText(colour, text) : text;
}

export function fail(message: string): void {
  console.error(message);
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function flops(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GFLOP` : `${(n / 1e6).toFixed(1)} MFLOP`;
}

/** Rows of cells as aligned text columns. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd()).join(
    "\n",
  );
}
